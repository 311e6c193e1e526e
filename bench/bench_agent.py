"""Edge agent: events/s from the outbox to a real Mosquitto at QoS 1, and agent memory.

Batched publishing (takt_wire Batch, many events per message, window flow
control) is compared with one message per event through the same code path
(batch size 1), in the same run. Both measure the whole delivery loop: events
leave the outbox only when a confirmer (standing in for the collector: it reads
the sequence numbers of each batch and confirms them on the agent's acks topic)
has confirmed them. Memory is the resident set of a real
``takt agent run`` reading 100 simulated MQTT stations.

The payload micro-benchmark times the building of one batch message from outbox
rows (historical flags, envelope, no broker) with takt_wire's encoder, against
the previous version's f-string splicing, kept here as the baseline of the same run.
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.agentkit import (
    Confirmer,
    counter_payload,
    counter_topic,
    mqtt_stations,
    rss_mb,
    write_gateway,
)
from edge_agent.batching import compose
from edge_agent.config import BrokerConfig, GatewayConfig, PublishConfig, StationConfig
from edge_agent.metrics import AgentMetrics
from edge_agent.outbox import Outbox
from edge_agent.publisher import Publisher
from takt_cli.localservices import free_port, mosquitto
from takt_wire import UnitEvent, encode_event

EVENT = UnitEvent(
    site="plant1",
    line="L1",
    station="S01",
    device="plc-1",
    worker="w0042",
    ts=datetime(2026, 11, 23, 8, 0, 0, 123000, tzinfo=UTC),
    agent="bench",
    boot="b1",
    seq=0,
    outcome="good",
    count=1,
    cycle_s=31.5,
)


def _config(port: int, batch: int, window: int) -> GatewayConfig:
    return GatewayConfig(
        agent_id="bench",
        site="plant1",
        broker=BrokerConfig(port=port, allow_anonymous=True),
        publish=PublishConfig(batch_max_events=batch, window=window, historical_after_s=3600),
        stations=[
            StationConfig.model_validate(
                {
                    "id": "S01",
                    "line": "L1",
                    "profile": "takt-sim-counter",
                    "connection": {"type": "mqtt"},
                }
            )
        ],
    )


async def _drain(folder: Path, port: int, events: int, batch: int, window: int) -> float:
    box = Outbox(folder / f"outbox-{batch}.db", agent="bench", boot="b1", synchronous="NORMAL")
    for start in range(0, events, 10_000):
        box.commit([EVENT] * min(10_000, events - start), {})
    publisher = Publisher(_config(port, batch, window), box, AgentMetrics(), "b1")
    task = asyncio.create_task(publisher.run())
    for _ in range(1000):  # bench only: wait for the first CONNACK
        if publisher.connected:
            break
        await asyncio.sleep(0.01)
    started = time.perf_counter()
    publisher.notify()
    ok = await publisher.flush(within_s=300)
    elapsed = time.perf_counter() - started
    task.cancel()
    box.close()
    if not ok:
        raise RuntimeError("outbox did not drain")
    return events / elapsed


def _fstring_payload(
    rows: list[tuple[int, float, str]], agent: str, boot: str, now: float, after_s: float
) -> bytes:
    """The previous version's batch building (hand-made JSON text rows, spliced flag,
    f-string envelope), kept as the baseline."""
    late = now - after_s
    parts: list[str] = []
    size = 0
    historical = 0
    for _seq, happened, body in rows:
        flagged = happened < late
        if flagged:
            body = body[:-1] + ',"historical":true}'
        if parts and size + len(body) > 512 * 1024:
            break
        parts.append(body)
        size += len(body) + 1
        historical += flagged
    used = rows[: len(parts)]
    assert used and historical >= 0
    sent_at = datetime.fromtimestamp(now, UTC).isoformat().replace("+00:00", "Z")
    return (
        f'{{"v":1,"agent":"{agent}","boot":"{boot}",'
        f'"sent_at":"{sent_at}","events":[{",".join(parts)}]}}'
    ).encode()


def _payload_micro(batch: int = 1000, rounds: int = 200, repeats: int = 5) -> dict[str, float]:
    """Events/s through batch building alone, old and new, best of ``repeats``."""
    now = time.time()
    old_body = json.dumps(
        EVENT.model_dump(mode="json", exclude_none=True, exclude={"v", "historical"}),
        separators=(",", ":"),
    )
    new_body = encode_event(EVENT)
    # one event in ten waited too long and is flagged historical
    ages = [3600.0 if i % 10 == 0 else 0.0 for i in range(batch)]
    old_rows = [(i, now - ages[i], old_body) for i in range(batch)]
    new_rows = [(i, now - ages[i], new_body) for i in range(batch)]
    best_old = best_new = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        for _ in range(rounds):
            _fstring_payload(old_rows, "bench", "b1", now, 30.0)
        best_old = min(best_old, time.perf_counter() - started)
        started = time.perf_counter()
        for _ in range(rounds):
            compose(
                new_rows,
                agent="bench",
                boot="b1",
                now=now,
                historical_after_s=30.0,
                max_bytes=512 * 1024,
            )
        best_new = min(best_new, time.perf_counter() - started)
    return {"old": batch * rounds / best_old, "new": batch * rounds / best_new}


def _rss_of_agent(
    folder: Path, port: int, stations: int = 100, seconds: float = 8.0
) -> dict[str, Any]:
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    path = write_gateway(folder, port, mqtt_stations(stations, port), "bench-mem")
    takt = str(Path(sys.executable).parent / "takt")
    proc = subprocess.Popen(
        [takt, "agent", "run", "--config", str(path)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    device = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311)
    device.connect("127.0.0.1", port)
    device.loop_start()
    time.sleep(2.0)
    sent = 0
    deadline = time.monotonic() + seconds
    t = 1763884800000
    n = 0
    while time.monotonic() < deadline:
        t += 1000
        n += 1
        for i in range(stations):
            device.publish(counter_topic(i), counter_payload(i, n, t), qos=1)
            sent += 1
        time.sleep(0.1)
    memory = rss_mb(proc.pid)
    proc.send_signal(signal.SIGTERM)
    proc.wait(30)
    device.disconnect()
    device.loop_stop()
    return memory | {"device_messages": sent}


def main() -> dict[str, object]:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        broker = mosquitto(folder / "broker", port=free_port()).start()
        try:
            confirmer = Confirmer(broker.port)
            time.sleep(0.5)
            try:
                batched = asyncio.run(_drain(folder, broker.port, 200_000, 1000, 8))
                single = asyncio.run(_drain(folder, broker.port, 20_000, 1, 20))
            finally:
                confirmer.close()
            memory = _rss_of_agent(folder, broker.port)
        finally:
            broker.stop()
    payload = _payload_micro()
    return {
        "batched_events_per_s": round(batched),
        "one_message_per_event_events_per_s": round(single),
        "ratio_batched_vs_single": round(batched / single, 1),
        "target_events_per_s": 20_000,
        "agent_100_stations_rss_mb": memory["rss_mb"],
        "agent_100_stations_peak_rss_mb": memory["peak_rss_mb"],
        "target_rss_mb": 60,
        "device_messages_during_memory_run": memory["device_messages"],
        "payload_build_takt_wire_events_per_s": round(payload["new"]),
        "payload_build_fstring_baseline_events_per_s": round(payload["old"]),
        "ratio_payload_build_takt_wire_vs_fstring": round(payload["new"] / payload["old"], 2),
    }
