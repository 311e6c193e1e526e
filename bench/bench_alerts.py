"""Alert latency: a batch published at the edge -> the alert at a webhook receiver and on MQTT.

The KPI service runs as its own process (``takt kpi run`` with the engine enabled) against
a real Mosquitto, while a generator publishes 1,000 events/s of background production
(100-event batches, 10 per second, 20 stations, 40 workers). Every 100 ms a probe batch
carries one defective unit for a new worker, which raises at once (rule ``probe``). The
baseline, measured in the same run, is the broker round trip of the very same probe
batches to a plain subscriber: the ratio says what the engine adds on top of MQTT.
Target: p99 <= 250 ms to both the webhook and MQTT.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import random
import secrets
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from takt_cli.localservices import free_port, influxd, mosquitto
from takt_wire import Batch, UnitEvent, encode_batch
from takt_wire.topics import events_topic

LOAD_EVENTS_PER_S = 1_000
BATCH = 100
PROBES = 150
PROBE_EVERY_S = 0.1
TARGET_P99_MS = 250.0

RULES = """
channels:
  bus: {{type: mqtt}}
  hook: {{type: webhook, url: "{hook}", secret_env: TAKT_BENCH_HOOK_SECRET}}
rules:
  - {{id: probe, metric: defect_rate, scope: worker, lines: [LP], window: {{minutes: 1}},
     min_samples: 1, warning: 50, clear: 10, cooldown_s: 0, channels: [bus, hook]}}
  - {{id: defects, metric: defect_rate, scope: worker, window: {{minutes: 10}}, min_samples: 20,
     warning: 10, clear: 5, for_s: 60, channels: [bus, hook]}}
  - {{id: station-defects, metric: defect_rate, scope: station, window: {{units: 200}},
     min_samples: 50, warning: 8, clear: 4, channels: [bus]}}
  - {{id: stalled, metric: no_output, scope: station, window: {{minutes: 5}}, warning: 3,
     clear: 0.5, channels: [bus]}}
  - {{id: down, metric: down_time, scope: line, window: {{minutes: 15}}, warning: 20,
     clear: 5, channels: [bus]}}
"""


def _percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    if not ordered:
        return {"p50_ms": float("nan"), "p99_ms": float("nan"), "max_ms": float("nan")}
    cuts = statistics.quantiles(ordered, n=100, method="inclusive")
    return {
        "p50_ms": round(cuts[49] * 1000, 1),
        "p99_ms": round(cuts[98] * 1000, 1),
        "max_ms": round(ordered[-1] * 1000, 1),
    }


class Seq:
    def __init__(self) -> None:
        self.value = 0
        self.lock = threading.Lock()

    def next(self) -> int:
        with self.lock:
            self.value += 1
            return self.value


def _unit(
    seq: Seq, line: str, station: str, worker: str, outcome: str, agent: str = "bench"
) -> UnitEvent:
    return UnitEvent(
        site="s1",
        line=line,
        station=station,
        device=f"d-{station}",
        worker=worker,
        ts=datetime.now(UTC),
        agent=agent,  # the agent of the batch and topic: the engine's admission checks it
        boot="b1",
        seq=seq.next(),
        outcome=outcome,
        defect_code="scratch" if outcome == "defect" else None,
    )


def _client(port: int) -> mqtt.Client:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.connect("127.0.0.1", port)
    client.loop_start()
    return client


def main() -> dict[str, object]:
    work = Path(tempfile.mkdtemp(prefix="bench-alerts-"))
    received_hook: dict[str, float] = {}
    received_mqtt: dict[str, float] = {}
    received_raw: dict[str, float] = {}
    sent: dict[str, float] = {}

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            arrived = time.perf_counter()
            doc = json.loads(body)
            if doc["type"] == "alert.raised" and doc["alert"]["line"] == "LP":
                received_hook.setdefault(doc["alert"]["worker"], arrived)
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            return

    hook = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=hook.serve_forever, daemon=True).start()
    rules = work / "rules.yaml"
    rules.write_text(RULES.format(hook=f"http://127.0.0.1:{hook.server_address[1]}/hook"))

    with mosquitto(work / "mosquitto") as broker, influxd(work / "influxd") as db:
        port = free_port()
        env = {
            **os.environ,
            "TAKT_KPI_STATE_DIR": str(work / "state"),
            "TAKT_KPI_SECRET_KEY": secrets.token_hex(16),
            "TAKT_KPI_INFLUX__URL": db.url,
            "TAKT_KPI_INFLUX__DATABASE": "bench",
            "TAKT_ALERTS_ENABLED": "true",
            "TAKT_ALERTS_RULES_FILE": str(rules),
            "TAKT_ALERTS_STATE_DB": str(work / "state" / "alerts.sqlite"),
            "TAKT_ALERTS_MQTT_PORT": str(broker.port),
            "TAKT_ALERTS_TICK_S": "1",
            "TAKT_BENCH_HOOK_SECRET": "bench-secret",
        }
        takt = Path(sys.executable).with_name("takt")
        log = (work / "kpi.log").open("wb")
        proc = subprocess.Popen(
            [str(takt), "kpi", "run", "--port", str(port)], env=env, stdout=log, stderr=log
        )
        try:
            deadline = time.monotonic() + 60
            while True:
                with contextlib.suppress(httpx.HTTPError):  # not listening yet
                    if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).is_success:
                        break
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        f"KPI service did not start: {(work / 'kpi.log').read_text()}"
                    )
                time.sleep(0.1)

            listener = _client(broker.port)
            ready: queue.Queue[bool] = queue.Queue()

            def on_message(_c: object, _u: object, msg: mqtt.MQTTMessage) -> None:
                arrived = time.perf_counter()
                if "/alerts/" in msg.topic:
                    doc = json.loads(msg.payload)
                    if doc["type"] == "alert.raised" and doc["alert"]["line"] == "LP":
                        received_mqtt.setdefault(doc["alert"]["worker"], arrived)
                elif msg.topic.endswith("/events/probe"):
                    batch = json.loads(msg.payload)
                    received_raw.setdefault(batch["events"][0]["worker"], arrived)

            listener.on_message = on_message
            listener.on_subscribe = lambda *_: ready.put(True)
            listener.subscribe([("takt/v1/s1/alerts/#", 1), ("takt/v1/s1/events/probe", 1)])
            ready.get(timeout=10)

            seq = Seq()
            stop = threading.Event()
            load_sent = [0]

            def load() -> None:
                producer = _client(broker.port)
                rng = random.Random(7)
                period = BATCH / LOAD_EVENTS_PER_S
                next_at = time.perf_counter()
                while not stop.is_set():
                    events = []
                    for _ in range(BATCH):
                        n = rng.randrange(40)
                        outcome = "defect" if rng.random() < 0.02 else "good"
                        events.append(_unit(seq, "L1", f"S{n % 20}", f"W{n}", outcome))
                    batch = Batch(
                        agent="bench", boot="b1", sent_at=datetime.now(UTC), events=events
                    )
                    producer.publish(events_topic("s1", "bench"), encode_batch(batch), qos=1)
                    load_sent[0] += BATCH
                    next_at += period
                    time.sleep(max(0.0, next_at - time.perf_counter()))
                producer.disconnect()
                producer.loop_stop()

            loader = threading.Thread(target=load, name="load", daemon=True)
            loader.start()
            time.sleep(3)  # warm up under load
            prober = _client(broker.port)
            started = time.perf_counter()
            for i in range(PROBES):
                worker = f"P{i}"
                event = _unit(seq, "LP", "SP", worker, "defect", agent="probe")
                batch = Batch(agent="probe", boot="b1", sent_at=datetime.now(UTC), events=[event])
                payload = encode_batch(batch)
                sent[worker] = time.perf_counter()
                prober.publish(events_topic("s1", "probe"), payload, qos=1)
                time.sleep(PROBE_EVERY_S)
            elapsed = time.perf_counter() - started
            time.sleep(2)  # let the last alerts arrive
            stop.set()
            loader.join(10)
            load_rate = load_sent[0] / (elapsed + 5)
            prober.disconnect()
            listener.disconnect()
        finally:
            proc.terminate()
            proc.wait(30)
            hook.shutdown()

    hook_lat = [received_hook[w] - t for w, t in sent.items() if w in received_hook]
    mqtt_lat = [received_mqtt[w] - t for w, t in sent.items() if w in received_mqtt]
    raw_lat = [received_raw[w] - t for w, t in sent.items() if w in received_raw]
    webhook, bus, base = _percentiles(hook_lat), _percentiles(mqtt_lat), _percentiles(raw_lat)
    return {
        "background_events_per_s": round(load_rate),
        "probes": PROBES,
        "alerts_at_webhook": len(hook_lat),
        "alerts_on_mqtt": len(mqtt_lat),
        "webhook_latency": webhook,
        "mqtt_alert_latency": bus,
        "baseline_broker_round_trip": base,
        "ratio_webhook_p99_to_broker_p99": round(webhook["p99_ms"] / base["p99_ms"], 1),
        "ratio_mqtt_p99_to_broker_p99": round(bus["p99_ms"] / base["p99_ms"], 1),
        "target_p99_ms": TARGET_P99_MS,
        "meets_target": max(webhook["p99_ms"], bus["p99_ms"]) <= TARGET_P99_MS
        and len(hook_lat) == len(mqtt_lat) == PROBES,
    }


if __name__ == "__main__":
    print(json.dumps(main(), indent=2))
