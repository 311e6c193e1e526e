"""Agent memory: resident set of a real ``takt agent run``, steady over time (#18 target 2).

Three runs, each a real agent process reading simulated devices while a stand-in
collector confirms its batches (so the outbox drains as in production):

- 100 MQTT stations, one counter message per station per second (target <= 60 MB);
- 1,000 MQTT stations, the same, for ``--minutes`` (default 2; the issue asks for 30):
  resident memory sampled every 5 s, and the slope of a least-squares line through
  the samples after the first minute, in MB/h (target <= 150 MB and no growth);
- 100 OPC UA stations on a bench PLC (``bench/opcuaplc.py``), each counter moving
  once per second (target <= 90 MB).

Also measured: what importing the ``takt`` command costs by itself and what a
bare ``edge_agent.runtime`` import costs (the command loads only the component it
runs, and the agent only the sources its stations use).
"""

from __future__ import annotations

import multiprocessing as mp
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from bench.agentkit import (
    Confirmer,
    counter_payload,
    counter_topic,
    load_average,
    mqtt_stations,
    rss_mb,
    verdict,
    write_gateway,
)
from bench.opcuaplc import opcua_stations, serve
from takt_cli.localservices import free_port, mosquitto

SAMPLE_EVERY_S = 5.0
WARMUP_S = 60.0
MIN_SLOPE_SPAN_S = 240.0
"""A slope over less than four minutes of samples says nothing (None is reported)."""
TARGETS_MB = {"mqtt_100": 60.0, "mqtt_1000": 150.0, "opcua_100": 90.0}


class Devices:
    """MQTT devices: every station sends one counter message per ``period_s`` (QoS 1)."""

    def __init__(self, port: int, stations: int, period_s: float = 1.0) -> None:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311)
        self.client.max_inflight_messages_set(1000)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        self.stations, self.period_s, self.sent = stations, period_s, 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="devices", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        n = 0
        next_at = time.monotonic()
        while not self.stop.is_set():
            n += 1
            t_ms = int(time.time() * 1000)
            for i in range(self.stations):
                self.client.publish(counter_topic(i), counter_payload(i, n, t_ms), qos=1)
                self.sent += 1
            next_at += self.period_s
            self.stop.wait(max(0.0, next_at - time.monotonic()))

    def close(self) -> None:
        self.stop.set()
        self.thread.join(10)
        self.client.disconnect()
        self.client.loop_stop()


def _slope_mb_per_h(samples: list[tuple[float, float]], min_span_s: float = 0.0) -> float | None:
    """Least-squares slope of (seconds, MB) samples, in MB per hour; None for fewer
    than three samples or a span shorter than ``min_span_s`` (no trend to speak of)."""
    if len(samples) < 3 or samples[-1][0] - samples[0][0] < min_span_s:
        return None
    xs, ys = [s for s, _ in samples], [m for _, m in samples]
    return round(statistics.linear_regression(xs, ys).slope * 3600, 2)


def _agent(config: Path, seconds: float, check: Any = None) -> dict[str, Any]:
    """Run ``takt agent run`` for ``seconds``; resident memory sampled every 5 s."""
    takt = str(Path(sys.executable).parent / "takt")
    proc = subprocess.Popen(
        [takt, "agent", "run", "--config", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    samples: list[tuple[float, float]] = []
    started = time.monotonic()
    try:
        while (elapsed := time.monotonic() - started) < seconds:
            if proc.poll() is not None:
                err = proc.stderr.read().decode() if proc.stderr else ""
                raise RuntimeError(f"agent exited early ({proc.returncode}): {err[-2000:]}")
            samples.append((elapsed, rss_mb(proc.pid)["rss_mb"]))
            time.sleep(min(SAMPLE_EVERY_S, max(0.1, seconds - elapsed)))
        final = rss_mb(proc.pid)
    finally:
        proc.terminate()
        proc.wait(60)
    steady = [s for s in samples if s[0] >= min(WARMUP_S, seconds / 2)]
    return {
        "rss_mb": final["rss_mb"],
        "peak_rss_mb": final["peak_rss_mb"],
        "samples": len(samples),
        "slope_mb_per_h": _slope_mb_per_h(steady, MIN_SLOPE_SPAN_S),
        "first_steady_mb": steady[0][1] if steady else None,
    }


def _mqtt_run(folder: Path, port: int, stations: int, seconds: float) -> dict[str, Any]:
    name = f"mem-mqtt-{stations}"
    confirmer = Confirmer(port, name)
    confirmer.wait_subscribed()
    config = write_gateway(folder, port, mqtt_stations(stations, port), name)
    devices = Devices(port, stations)
    try:
        result = _agent(config, seconds)
    finally:
        devices.close()
        confirmer.close()
    return result | {"device_messages": devices.sent, "events_confirmed": confirmer.confirmed}


def _opcua_run(folder: Path, port: int, stations: int, seconds: float) -> dict[str, Any]:
    name = f"mem-opcua-{stations}"
    ctx = mp.get_context("spawn")
    ready, stop = ctx.Event(), ctx.Event()
    plc_port = free_port()
    plc = ctx.Process(target=serve, args=(plc_port, stations, 1.0, ready, stop))
    plc.start()
    confirmer = Confirmer(port, name)
    try:
        if not ready.wait(120):
            raise RuntimeError("bench PLC did not start")
        confirmer.wait_subscribed()
        config = write_gateway(folder, port, opcua_stations(stations, plc_port), name)
        result = _agent(config, seconds)
    finally:
        confirmer.close()
        stop.set()
        plc.join(30)
    return result | {"events_confirmed": confirmer.confirmed}


def _import_rss(module: str, argv: tuple[str, ...] = ()) -> float:
    """Resident MB of a fresh interpreter that imported ``module`` (with ``sys.argv``
    set to ``argv``, which is what the ``takt`` command mounts by) and nothing else."""
    code = (
        f"import sys; sys.argv = {list(argv)!r}; import {module}; "
        "from bench.agentkit import rss_mb; print(rss_mb()['rss_mb'])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.strip())


def main(options: dict[str, str] | None = None) -> dict[str, object]:
    options = options or {}
    minutes = float(options.get("minutes", 2))
    short_s = float(options.get("short-seconds", 60))
    figures: dict[str, object] = {"load_average_at_start": load_average()}
    figures["import_rss_mb"] = {
        "takt agent run (the command as the agent runs it)": _import_rss(
            "takt_cli.main", ("takt", "agent", "run")
        ),
        "takt (every component mounted)": _import_rss("takt_cli.main", ("takt",)),
        "edge_agent.runtime": _import_rss("edge_agent.runtime"),
        "asyncua (loaded only for OPC UA stations)": _import_rss("asyncua"),
    }
    with tempfile.TemporaryDirectory() as tmp, mosquitto(Path(tmp) / "broker") as broker:
        folder = Path(tmp)
        runs = {
            "mqtt_100": lambda: _mqtt_run(folder, broker.port, 100, short_s),
            "opcua_100": lambda: _opcua_run(folder, broker.port, 100, short_s),
            "mqtt_1000": lambda: _mqtt_run(folder, broker.port, 1000, minutes * 60),
        }
        only = options.get("only")
        for name, run in runs.items():
            if only and name not in only.split(","):
                continue
            result = run()
            target = TARGETS_MB[name]
            result["target"] = f"<= {target:g} MB: " + verdict(
                result["rss_mb"], target, at_most=True
            )
            result["load_average"] = load_average()
            figures[name] = result
    figures["mqtt_1000_minutes"] = minutes
    return figures
