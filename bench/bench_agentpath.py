"""Agent whole path: device readings in -> events confirmed, on one core (#18 target 2).

The input is MQTT device messages: N stations' counter messages (QoS 1), queued in a
real Mosquitto for the agent's persistent session before the clock starts, so the
figure is what the agent takes, not what a Python publisher can send. A real
``Agent`` (the one ``takt agent run`` builds) reads them: source decode, mapping,
attribution, the outbox commit (default ``synchronous=FULL``), the publisher, and a
stand-in collector in its own process confirms every batch (events leave the
outbox only when confirmed). The clock stops when every reading is processed and
the outbox is empty. The agent's process is pinned to one core.

The machine running the benches is shared, so the agent seldom has its core to
itself: rates are given per CPU second of the agent's process (what one core does,
its own threads included), and per wall second beside them, for the same run.

Baseline, same process, same core, same messages: only the source's decode (topic
route, JSON parse, RawReading). Targets: >= 20,000 readings/s and >= 0.5x the
baseline. OPC UA data changes are measured by ``bench_agentopcua``.
"""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import os
import resource
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
    station_id,
    verdict,
    write_gateway,
)
from takt_cli.localservices import mosquitto

STATIONS = 100
MESSAGES_PER_STATION = 1_000
TARGET_READINGS_PER_S = 20_000
TARGET_RATIO = 0.5
AGENT = "bench-path"
CHUNK = 20_000
CLIENT_ID = "bench-path-device-session"


def _confirm(port: int, agent: str, ready: Any, stop: Any) -> None:
    """The stand-in collector, in its own process (it must not share the agent's core)."""
    confirmer = Confirmer(port, agent)
    confirmer.wait_subscribed()
    ready.set()
    stop.wait()
    confirmer.close()


def _messages(stations: int, per_station: int) -> list[tuple[str, bytes]]:
    t0 = 1_763_884_800_000
    return [
        (counter_topic(i), counter_payload(i, n + 1, t0 + n * 1000))
        for n in range(per_station)
        for i in range(stations)
    ]


def _prequeue(port: int, stations: int, messages: list[tuple[str, bytes]]) -> None:
    """Open the agent's persistent session (same client id, same topics), then flood it."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    topics = [
        (f"plant/L1/{station_id(i)}/{kind}", 1)
        for i in range(stations)
        for kind in ("counter", "state")
    ]
    subscribed = threading.Event()
    session = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=CLIENT_ID,
        protocol=mqtt.MQTTv311,
        clean_session=False,
    )
    session.on_subscribe = lambda *_: subscribed.set()
    session.connect("127.0.0.1", port)
    session.loop_start()
    session.subscribe(topics)
    if not subscribed.wait(10):
        raise RuntimeError("device session: no SUBACK")
    session.disconnect()
    session.loop_stop()

    acked = [0]
    lock = threading.Condition()

    def on_publish(*_: object) -> None:
        with lock:
            acked[0] += 1
            lock.notify_all()

    device = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311)
    device.max_inflight_messages_set(1000)
    device.max_queued_messages_set(0)
    device.on_publish = on_publish
    device.connect("127.0.0.1", port)
    device.loop_start()
    # In chunks well under 65,535 (paho's message ids), each acknowledged before the next.
    for start in range(0, len(messages), CHUNK):
        chunk = messages[start : start + CHUNK]
        for topic, payload in chunk:
            device.publish(topic, payload, qos=1)
        goal, deadline = start + len(chunk), time.monotonic() + 300
        with lock:
            while acked[0] < goal:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"flood: only {acked[0]} of {len(messages)} acknowledged")
                lock.wait(timeout=1.0)
    device.disconnect()
    device.loop_stop()


def _decode_rate(
    agent: Any, messages: list[tuple[str, bytes]], repeats: int = 3
) -> dict[str, float]:
    """Readings/s through the agent's own MQTT source decode alone (best of ``repeats``),
    per wall second and per CPU second of this process."""
    from takt_common.mqtt import Message

    source = agent.sources[0]
    wrapped = [Message(t, p, {}, i, 1, 1) for i, (t, p) in enumerate(messages)]
    best = best_cpu = float("inf")
    for _ in range(repeats):
        started, cpu = time.perf_counter(), time.process_time()
        for message in wrapped:
            if source._decode(message) is None:
                raise RuntimeError(f"baseline: message on {message.topic} not decoded")
        best = min(best, time.perf_counter() - started)
        best_cpu = min(best_cpu, time.process_time() - cpu)
    return {"wall": len(wrapped) / best, "cpu": len(wrapped) / best_cpu}


async def _whole_path(agent: Any, total: int) -> dict[str, float]:
    processed = [0]
    first: list[float] = []
    process = agent.process

    def counting(batch: list[Any]) -> None:
        if not first:
            first.append(time.perf_counter())
        process(batch)
        processed[0] += sum(len(readings) for readings, _ack in batch)

    agent.process = counting
    stop = asyncio.Event()
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    started = time.perf_counter()
    task = asyncio.create_task(agent.run(stop))
    deadline = started + 600
    while not (processed[0] >= total and agent.outbox.pending == 0):
        if task.done() or time.perf_counter() > deadline:
            stop.set()
            raise RuntimeError(f"whole path: {processed[0]} of {total} readings processed")
        await asyncio.sleep(0.02)
    finished = time.perf_counter()
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    stop.set()
    await asyncio.wait_for(task, 60)
    cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
    elapsed = finished - first[0]
    return {
        "readings": processed[0],
        "seconds": elapsed,
        "seconds_from_start": finished - started,
        "cpu_s": cpu,
    }


def run(stations: int = STATIONS, per_station: int = MESSAGES_PER_STATION) -> dict[str, object]:
    from edge_agent.config import load_config
    from edge_agent.runtime import Agent

    ctx = mp.get_context("spawn")
    core = max(os.sched_getaffinity(0))
    with tempfile.TemporaryDirectory() as tmp, mosquitto(Path(tmp) / "broker") as broker:
        folder = Path(tmp)
        stop_confirmer, confirming = ctx.Event(), ctx.Event()
        confirmer = ctx.Process(
            target=_confirm, args=(broker.port, AGENT, confirming, stop_confirmer)
        )
        confirmer.start()
        try:
            if not confirming.wait(30):
                raise RuntimeError("the stand-in collector did not subscribe")
            messages = _messages(stations, per_station)
            _prequeue(broker.port, stations, messages)
            config_path = write_gateway(
                folder, broker.port, mqtt_stations(stations, broker.port, CLIENT_ID), AGENT
            )
            config, profiles = load_config(config_path)
            allowed = os.sched_getaffinity(0)
            os.sched_setaffinity(0, {core})  # this thread and every thread it starts
            try:
                agent = Agent(config, profiles)
                baseline = _decode_rate(agent, messages)
                load = load_average()
                path = asyncio.run(_whole_path(agent, len(messages)))
            finally:
                os.sched_setaffinity(0, allowed)
        finally:
            stop_confirmer.set()
            confirmer.join(30)
    rate = path["readings"] / path["seconds"]
    cpu_rate = path["readings"] / path["cpu_s"]
    ratio = cpu_rate / baseline["cpu"]
    return {
        "stations": stations,
        "readings": int(path["readings"]),
        "load_average": load,
        "outbox_synchronous": config.outbox.synchronous,
        "whole_path_readings_per_cpu_s": round(cpu_rate),
        "whole_path_target": f">= {TARGET_READINGS_PER_S} per core-second: "
        + verdict(cpu_rate, TARGET_READINGS_PER_S),
        "decode_only_readings_per_cpu_s": round(baseline["cpu"]),
        "ratio_whole_path_vs_decode_only": round(ratio, 3),
        "ratio_target": f">= {TARGET_RATIO}: " + verdict(ratio, TARGET_RATIO),
        "whole_path_readings_per_wall_s": round(rate),
        "decode_only_readings_per_wall_s": round(baseline["wall"]),
        "ratio_wall": round(rate / baseline["wall"], 3),
        "agent_cpu_s_per_wall_s": round(path["cpu_s"] / path["seconds_from_start"], 2),
    }


def main(options: dict[str, str] | None = None) -> dict[str, object]:
    options = options or {}
    return run(
        int(options.get("stations", STATIONS)),
        int(options.get("per-station", MESSAGES_PER_STATION)),
    )
