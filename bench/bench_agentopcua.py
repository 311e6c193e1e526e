"""Agent whole path from OPC UA: data changes of a local asyncua server -> events confirmed.

The bench PLC (``bench/opcuaplc.py``, its own process) moves every station's
GoodCount as fast as it can; the real ``Agent`` (the one ``takt agent run``
builds, pinned to one core) subscribes to it as configured by the
``takt-sim-plc`` profile, maps, attributes, commits to its outbox and publishes to
a real Mosquitto, where a stand-in collector in its own process confirms every
batch. Over ``--seconds`` (default 20) the figure is readings per CPU second of the
agent's process (what one core does, whatever the PLC's own speed on a shared
machine), and per wall second beside it. Target (#18): >= 20,000 readings/s on one
core. There is no decode-only baseline here: the OPC UA binary decoding happens in
asyncua's client, inside the path; ``bench_agentpath`` has the MQTT baseline.
"""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import os
import resource
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.agentkit import load_average, verdict, write_gateway
from bench.bench_agentpath import TARGET_READINGS_PER_S, _confirm
from bench.opcuaplc import opcua_stations, serve
from takt_cli.localservices import free_port, mosquitto

STATIONS = 20
SECONDS = 20.0
AGENT = "bench-opcua"


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def _measure(agent: Any, seconds: float) -> dict[str, float]:
    processed = [0]
    process = agent.process

    def counting(batch: list[Any]) -> None:
        process(batch)
        processed[0] += sum(len(readings) for readings, _ack in batch)

    agent.process = counting
    stop = asyncio.Event()
    task = asyncio.create_task(agent.run(stop))
    deadline = time.perf_counter() + 60
    while processed[0] == 0:  # connected, browsed, subscribed, first data in
        if task.done() or time.perf_counter() > deadline:
            stop.set()
            raise RuntimeError("no OPC UA reading reached the agent within 60 s")
        await asyncio.sleep(0.05)
    await asyncio.sleep(2.0)  # past the initial values
    first, cpu0, wall0 = processed[0], _cpu_s(), time.perf_counter()
    await asyncio.sleep(seconds)
    readings, cpu, wall = processed[0] - first, _cpu_s() - cpu0, time.perf_counter() - wall0
    stop.set()
    await asyncio.wait_for(task, 60)
    return {"readings": readings, "cpu_s": cpu, "wall_s": wall}


def main(options: dict[str, str] | None = None) -> dict[str, object]:
    from edge_agent.config import load_config
    from edge_agent.runtime import Agent

    options = options or {}
    stations = int(options.get("stations", STATIONS))
    seconds = float(options.get("seconds", SECONDS))
    ctx = mp.get_context("spawn")
    core = max(os.sched_getaffinity(0))
    with tempfile.TemporaryDirectory() as tmp, mosquitto(Path(tmp) / "broker") as broker:
        folder = Path(tmp)
        plc_port = free_port()
        plc_ready, plc_stop = ctx.Event(), ctx.Event()
        plc = ctx.Process(target=serve, args=(plc_port, stations, 0.0, plc_ready, plc_stop))
        confirming, confirm_stop = ctx.Event(), ctx.Event()
        confirmer = ctx.Process(
            target=_confirm, args=(broker.port, AGENT, confirming, confirm_stop)
        )
        plc.start()
        confirmer.start()
        try:
            if not (plc_ready.wait(120) and confirming.wait(30)):
                raise RuntimeError("bench PLC or stand-in collector did not start")
            path = write_gateway(folder, broker.port, opcua_stations(stations, plc_port), AGENT)
            config, profiles = load_config(path)
            allowed = os.sched_getaffinity(0)
            os.sched_setaffinity(0, {core})
            try:
                load = load_average()
                figures = asyncio.run(_measure(Agent(config, profiles), seconds))
            finally:
                os.sched_setaffinity(0, allowed)
        finally:
            plc_stop.set()
            confirm_stop.set()
            plc.join(30)
            confirmer.join(30)
    per_cpu = figures["readings"] / figures["cpu_s"]
    return {
        "stations": stations,
        "load_average": load,
        "readings": int(figures["readings"]),
        "whole_path_readings_per_cpu_s": round(per_cpu),
        "whole_path_target": f">= {TARGET_READINGS_PER_S} per core-second: "
        + verdict(per_cpu, TARGET_READINGS_PER_S),
        "whole_path_readings_per_wall_s": round(figures["readings"] / figures["wall_s"]),
        "agent_cpu_s_per_wall_s": round(figures["cpu_s"] / figures["wall_s"], 2),
    }
