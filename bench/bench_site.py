"""A site on one server: several gateways, collectors sharing one subscription, one KPI service.

``make bench BENCH=site``: 5 agents x 100 MQTT stations (one line each), 3 collectors
in one shared-subscription group, one KPI service, all real processes from the one
launcher (``takt_cli.stack``), fed by the simulated floor for an hour of production
at high speed. Sizes from the environment: ``SITE_AGENTS``, ``SITE_STATIONS`` (per
agent), ``SITE_COLLECTORS``, ``SITE_ACCELERATION``, ``SITE_HOURS``.

What it reports:
- exactness: good units per worker and defects per code in InfluxDB and through the
  HR API (``GET /api/v1/kpis``), each against the simulator's ledger (independent of
  the code under test);
- the rate of each stage over the production window (device messages, events
  committed by the agents, points written by each collector) and the backlog each
  stage built (outbox, unacknowledged messages at the collectors), sampled every
  second; the stage whose backlog grew most is named as the one saturating first;
- the drain time after the floor stops, and the HR API's latency for the hour.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import statistics
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from simulators.scenario import Scenario
from takt_cli.processes import ProcessGroup
from takt_cli.stack import LocalStack, agent_stations


def _env(name: str, default: float) -> float:
    return float(os.environ.get(name, default))


AGENTS = int(_env("SITE_AGENTS", 5))
STATIONS = int(_env("SITE_STATIONS", 100))
COLLECTORS = int(_env("SITE_COLLECTORS", 3))
ACCELERATION = _env("SITE_ACCELERATION", 30)
HOURS = _env("SITE_HOURS", 1)
CYCLE_S = 20.0


def site_scenario() -> Scenario:
    """One line per gateway, one operator per station for the whole hour."""
    duration = HOURS * 3600
    lines, workers = [], []
    for li in range(AGENTS):
        stations = []
        for si in range(STATIONS):
            sid = f"L{li + 1}S{si + 1:03d}"
            stations.append(
                {
                    "id": sid,
                    "protocol": "mqtt",
                    "standard_cycle_s": CYCLE_S,
                    "defect_codes": ["E01", "E02"],
                    "duplicate_p": 0.01,
                }
            )
            n = li * STATIONS + si + 1
            workers.append(
                {
                    "id": f"W{n:04d}",
                    "badge": f"B{n:05d}",
                    "shift": "day",
                    "cycle": {"pace": 1.0 + (n % 7) / 20, "cv": 0.1},
                    "defect_rate": 0.02 + (n % 5) / 100,
                    "defect_codes": {"E01": 2, "E02": 1},
                    "assignments": [{"station": sid, "start": 0, "end": duration}],
                }
            )
        lines.append({"id": f"L{li + 1}", "stations": stations})
    return Scenario.model_validate(
        {
            "name": "site-bench",
            "seed": 7,
            "site": "site1",
            "start": datetime(2026, 3, 16, 6, tzinfo=UTC),
            "duration": duration,
            "time_acceleration": ACCELERATION,
            "tick": 1.0,
            "ledger_bucket": 3600,
            "shifts": {"day": {"start": 0, "end": duration}},
            "lines": lines,
            "workers": workers,
        }
    )


_METRIC = re.compile(r"^(takt_[a-z_]+?)(?:_total)?(?:\{[^}]*\})? ([0-9.e+]+)$", re.M)


async def _metrics(client: httpx.AsyncClient, port: int) -> dict[str, float]:
    text = (await client.get(f"http://127.0.0.1:{port}/metrics")).text
    out: dict[str, float] = {}
    for name, value in _METRIC.findall(text):
        out[name] = out.get(name, 0.0) + float(value)
    return out


class Sampler:
    """Every second: each agent's outbox and each collector's unacknowledged messages."""

    def __init__(self, stack: LocalStack) -> None:
        self.stack = stack
        self.outbox: dict[str, int] = Counter()
        self.unacked: dict[int, int] = Counter()
        self.lag_s = 0.0
        """Largest consumer lag a collector reported (agent sent -> collector read)."""
        self.running = True

    async def run(self) -> None:
        async with httpx.AsyncClient(timeout=5) as client:
            while self.running:
                for agent in self.stack.agent_ids:
                    port = self.stack.agent_http_port(agent)
                    try:
                        health = (await client.get(f"http://127.0.0.1:{port}/healthz")).json()
                    except (httpx.HTTPError, ValueError):
                        continue
                    pending = int(health.get("outbox_pending", 0))
                    self.outbox[agent] = max(self.outbox[agent], pending)
                for index in range(COLLECTORS):
                    port = self.stack.collector_http_port(index)
                    try:
                        health = (await client.get(f"http://127.0.0.1:{port}/healthz")).json()
                    except (httpx.HTTPError, ValueError):
                        continue
                    unacked = int(health.get("detail", health).get("unacked", 0))
                    self.unacked[index] = max(self.unacked[index], unacked)
                    metrics = await _metrics(client, port)
                    self.lag_s = max(
                        self.lag_s, metrics.get("takt_collector_consumer_lag_seconds", 0)
                    )
                await asyncio.sleep(1.0)


def _ledger_totals(ledger: dict[str, Any]) -> tuple[dict[str, int], dict[str, int]]:
    good: Counter[str] = Counter()
    defects: Counter[str] = Counter()
    for row in ledger["rows"] + ledger["unattributed"]:
        good[row["worker"]] += row["good"]
        for code, n in row["defects"].items():
            defects[code] += n
    return dict(good), {c: n for c, n in defects.items() if n}


def _influx_totals(stack: LocalStack) -> tuple[dict[str, int], dict[str, int]]:
    good: Counter[str] = Counter()
    defects: Counter[str] = Counter()
    units = stack.sums('"raw"."units"', "count", "outcome, defect_code, worker")
    for (outcome, code, worker), n in units.items():
        if outcome == "good":
            good[worker] += int(n)
        else:
            defects[code] += int(n)
    return dict(good), dict(defects)


async def _hr_api(
    stack: LocalStack, key: str, day: str
) -> tuple[dict[str, int], dict[str, int], list[float]]:
    headers = {"Authorization": f"Bearer {key}"}
    params: dict[str, str | int] = {"start": day, "end": day, "entity": "worker", "limit": 10_000}
    good: Counter[str] = Counter()
    defects: Counter[str] = Counter()
    latencies = []
    async with httpx.AsyncClient(base_url=stack.kpi_url, timeout=60) as client:
        for attempt in range(5):
            started = time.perf_counter()
            response = await client.get("/api/v1/kpis", params=params, headers=headers)
            latencies.append(time.perf_counter() - started)
            response.raise_for_status()
            if attempt == 0:
                for row in response.json()["items"]:
                    good[row["worker"]] += int(row["units_good"])
                    for code, n in row["defects_by_code"].items():
                        defects[code] += int(n)
    return dict(good), dict(defects), latencies


async def _run(workdir: Path) -> dict[str, object]:
    scenario = site_scenario()
    figures: dict[str, object] = {
        "agents": AGENTS,
        "stations": AGENTS * STATIONS,
        "collectors": COLLECTORS,
        "simulated_hours": HOURS,
        "acceleration": ACCELERATION,
    }
    with ProcessGroup(workdir) as group:
        gateways = tuple(f"gw{i + 1}" for i in range(1, AGENTS))
        stack = LocalStack(
            workdir,
            group,
            site=scenario.site,
            agent_id="gw1",
            gateways=gateways,
            collectors=COLLECTORS,
        )
        await asyncio.to_thread(stack.start_services)
        for index in range(COLLECTORS):
            await asyncio.to_thread(stack.start_collector, index)
        env = stack.kpi_env(scenario=scenario)
        await asyncio.to_thread(stack.start_kpi, env)
        key = await asyncio.to_thread(stack.create_api_key, env, "site-bench", "hr:read")
        floor = stack.shop_floor(scenario)
        async with floor:
            assert stack.broker is not None
            stations = agent_stations(floor.endpoints, stack.broker.port)
            roster = floor.workdir / "roster.yaml"
            for agent in stack.agent_ids:
                line = f"L{agent.removeprefix('gw')}"
                mine = [s for s in stations if s["line"] == line]
                await asyncio.to_thread(stack.start_agent, mine, roster, agent)
            sampler = Sampler(stack)
            sampling = asyncio.create_task(sampler.run())
            await asyncio.sleep(2)
            floor.start_clock()
            started = time.monotonic()
            await floor.wait_done()
            production_s = time.monotonic() - started
            async with httpx.AsyncClient(timeout=5) as client:
                agent_metrics = [
                    await _metrics(client, stack.agent_http_port(a)) for a in stack.agent_ids
                ]
            drained = await stack.drained(timeout_s=600)
            drain_s = time.monotonic() - started - production_s
            sampler.running = False
            await sampling
            async with httpx.AsyncClient(timeout=5) as client:
                collector_metrics = [
                    await _metrics(client, stack.collector_http_port(i)) for i in range(COLLECTORS)
                ]
            ledger = json.loads((floor.workdir / "ledger.json").read_text())
        want_good, want_defects = _ledger_totals(ledger)
        got_good, got_defects = await asyncio.to_thread(_influx_totals, stack)
        day = scenario.start.date().isoformat()
        if scenario.start + timedelta(hours=HOURS) > scenario.start.replace(hour=23, minute=59):
            raise RuntimeError("the bench's production must lie within one day")
        api_good, api_defects, latencies = await _hr_api(stack, key, day)

    units = sum(want_good.values()) + sum(want_defects.values())
    committed = sum(m.get("takt_agent_events", 0.0) for m in agent_metrics)
    readings = sum(m.get("takt_agent_readings", 0.0) for m in agent_metrics)
    points = [m.get("takt_collector_points_written", 0.0) for m in collector_metrics]
    rates = {
        "devices_units_per_s": round(units / production_s),
        "agents_readings_per_s": round(readings / production_s),
        "agents_events_per_s": round(committed / production_s),
        "collectors_points_per_s": round(sum(points) / (production_s + drain_s)),
    }
    # Each stage's backlog in seconds of its own flow; the largest one saturates first.
    outbox_s = max(sampler.outbox.values(), default=0) / max(1.0, committed / production_s / AGENTS)
    backlogs = {
        "floor (the simulated devices fell behind their clock)": floor.max_lag_s,
        "agents (outbox backlog: publish and confirmation)": outbox_s,
        "collectors (consumer lag: agent sent -> collector read)": sampler.lag_s,
    }
    stage, worst = max(backlogs.items(), key=lambda item: item[1])
    saturating = stage if worst > 1.0 else "none (every backlog stayed under 1 s)"
    figures.update(
        {
            "production_wall_s": round(production_s, 1),
            "drain_after_production_s": round(drain_s, 1),
            "drained": drained,
            "units_ledger": units,
            "exact_influx_units_per_worker": got_good == want_good,
            "exact_influx_defects_per_code": got_defects == want_defects,
            "exact_hr_api_units_per_worker": api_good == want_good,
            "exact_hr_api_defects_per_code": api_defects == want_defects,
            **rates,
            "collector_points_split": [int(p) for p in points],
            "max_outbox_pending_per_agent": dict(sampler.outbox),
            "max_outbox_backlog_s": round(outbox_s, 1),
            "max_consumer_lag_s": round(sampler.lag_s, 2),
            "max_unacked_messages_per_collector": dict(sampler.unacked),
            "hr_api_hour_all_workers_median_s": round(statistics.median(latencies), 3),
            "saturates_first": saturating,
            "floor_max_lag_s": round(floor.max_lag_s, 2),
        }
    )
    return figures


def main() -> dict[str, object]:
    workdir = Path(tempfile.mkdtemp(prefix="bench-site-"))
    return asyncio.run(_run(workdir))
