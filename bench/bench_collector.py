"""Collector throughput into InfluxDB against a raw bulk write of the same points.

Both run against one real influxd (and Mosquitto) started for the run. The events
are published to the broker beforehand (the collector's persistent session holds
them), so the collector's figure covers consume -> validate -> dedupe -> format ->
gzip -> write -> acknowledge. The baseline POSTs the same pre-formatted line
protocol in batches of the same size, with nothing else to do. Target: >= 50 %.
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from pathlib import Path

import httpx

from collector.config import CollectorSettings, load_settings
from collector.lineproto import Formatter
from collector.service import Collector
from collector.testing import Scenario, publish
from takt_cli.localservices import influxd, mosquitto

AGENTS = 4
EVENTS_PER_AGENT = 25_000
EVENTS_PER_MESSAGE = 1_000
BATCH_LINES = 5_000


def _lines(scenario: Scenario) -> list[str]:
    formatter = Formatter()
    out: list[str] = []
    for agent in range(scenario.agents):
        for event in scenario.events(agent):
            formatter.lines(event, out)
    return out


def _raw_write(url: str, db: str, lines: list[str]) -> float:
    """Points per second for a plain sequential bulk write of ``lines``."""
    httpx.post(f"{url}/query", data={"q": f'CREATE DATABASE "{db}"'}, timeout=30)
    bodies = [
        "\n".join(lines[i : i + BATCH_LINES]).encode() for i in range(0, len(lines), BATCH_LINES)
    ]
    with httpx.Client(base_url=url, timeout=60) as client:
        started = time.perf_counter()
        for body in bodies:
            response = client.post("/write", params={"db": db, "precision": "ns"}, content=body)
            response.raise_for_status()
        elapsed = time.perf_counter() - started
    return len(lines) / elapsed


async def _collector_run(settings: CollectorSettings, expected: int, prepublish: object) -> float:
    # First run only creates the persistent session; then the backlog is published.
    collector = Collector(settings)
    task = asyncio.create_task(collector.run())
    await asyncio.wait_for(collector.ready.wait(), 30)
    assert collector._consumer is not None
    await asyncio.wait_for(collector._consumer.subscribed.wait(), 10)
    collector.stop()
    await task
    await asyncio.to_thread(prepublish)  # type: ignore[arg-type]

    collector = Collector(settings)
    started = time.perf_counter()
    task = asyncio.create_task(collector.run())
    while collector.written < expected:
        if task.done():
            task.result()
            raise RuntimeError("collector stopped early")
        await asyncio.sleep(0.01)
    elapsed = time.perf_counter() - started
    collector.stop()
    await task
    if collector.written != expected:
        raise RuntimeError(f"wrote {collector.written} points, expected {expected}")
    return expected / elapsed


ROUNDS = 3


def main() -> dict[str, object]:
    scenario = Scenario(
        agents=AGENTS, events_per_agent=EVENTS_PER_AGENT, batch_size=EVENTS_PER_MESSAGE
    )
    lines = _lines(scenario)
    messages = scenario.all_batches()
    work = Path(tempfile.mkdtemp(prefix="bench-collector-"))
    raw: list[float] = []
    collected: list[float] = []
    with mosquitto(work / "mosquitto") as broker, influxd(work / "influxd") as server:
        # Alternate baseline and collector runs: the machine is shared, so its speed
        # drifts; interleaving keeps the two figures comparable.
        raw.append(_raw_write(server.url, "raw0", lines))
        for round_ in range(ROUNDS):
            settings = load_settings(
                None,
                environment="development",
                mqtt={"port": broker.port, "client_id": f"bench-{round_}", "group": f"b{round_}"},
                influx={"url": server.url, "database": f"bench{round_}", "batch_size": BATCH_LINES},
                rollup={"enabled": False},
                http={"port": 0},
                dlq_path=str(work / "dlq.sqlite"),
                log_level="WARNING",
            )
            collected.append(
                asyncio.run(
                    _collector_run(
                        settings, len(lines), lambda: publish("127.0.0.1", broker.port, messages)
                    )
                )
            )
            raw.append(_raw_write(server.url, f"raw{round_ + 1}", lines))
        stored = server.query('SELECT count("seq") FROM "units"', db="bench0")
    raw_median, collector_median = statistics.median(raw), statistics.median(collected)
    return {
        "events": AGENTS * EVENTS_PER_AGENT,
        "points": len(lines),
        "messages": len(messages),
        "units_points_stored": stored[0]["values"][0][1],  # type: ignore[index]
        "raw_points_per_s_runs": [round(r) for r in raw],
        "collector_points_per_s_runs": [round(c) for c in collected],
        "raw_points_per_s": round(raw_median),
        "collector_points_per_s": round(collector_median),
        "ratio": round(collector_median / raw_median, 3),
        "target_ratio": 0.5,
    }
