"""A seeded fault campaign on a simulated floor: is anything lost or stored twice?

``python -m takt_cli.chaos --seed N`` (``make chaos``) runs the whole local stack
(Mosquitto with the production ACL, influxd with auth, agent and collector as
``takt`` processes, a simulated floor of nine stations over OPC UA, MQTT and
serial at high speed) and, while the floor produces, kills and stops its parts
at seeded moments: ``kill -9`` of agent, collector and broker, a broker outage,
influxd paused (SIGSTOP) and killed. Then it lets the pipeline drain and checks
from the outside:

- every sequence number the agent assigned is in InfluxDB exactly once (no gap,
  no duplicate point);
- the hourly rollups equal the raw points for every worker;
- units and defects by code in InfluxDB equal the simulators' ledger, in total
  and per worker (a per-worker difference with equal totals is attribution: the
  agent was down while operators changed, which no transport can fix).

It prints the seed, every fault with its time, and every loss. The test suite
runs a short campaign with a fixed seed (tests/e2e/test_chaos.py).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import signal
import sqlite3
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from simulators.scenario import Scenario
from takt_cli.processes import Child, ProcessGroup
from takt_cli.stack import INFLUX_DB, LocalStack

PROTOCOLS = ("opcua", "mqtt", "serial")
EVENT_MEASUREMENTS = ("units", "work", "sessions", "states", "gaps")
"""Each event becomes exactly one point in one of these (downtime is derived from work)."""


@dataclass(frozen=True)
class Plan:
    """How big a campaign is: simulated hours, speed, and how many faults of each kind."""

    sim_hours: float
    acceleration: float
    agent_kills: int
    collector_kills: int
    broker_kills: int
    broker_outages: int
    outage_s: tuple[float, float]
    influx_pauses: int
    influx_kills: int

    @property
    def wall_s(self) -> float:
        return self.sim_hours * 3600 / self.acceleration


FULL = Plan(4.0, 48.0, 14, 7, 3, 1, (64.0, 72.0), 1, 1)
"""Like the campaign that found the losses: ~5 min of production under 27 faults."""
SHORT = Plan(1.5, 48.0, 3, 2, 2, 1, (8.0, 12.0), 1, 1)
"""About two minutes of production under ten faults, for the test suite."""


@dataclass(frozen=True)
class Fault:
    at_s: float
    """Wall seconds after the floor's clock started."""
    kind: str
    down_s: float


@dataclass
class Report:
    seed: int
    faults: list[tuple[float, str, float]] = field(default_factory=list)
    last_seq: int = -1
    missing_seqs: list[int] = field(default_factory=list)
    duplicate_seqs: list[int] = field(default_factory=list)
    units_ledger: int = 0
    units_influx: int = 0
    defects_ledger: dict[str, int] = field(default_factory=dict)
    defects_influx: dict[str, int] = field(default_factory=dict)
    worker_diffs: dict[str, tuple[int, int]] = field(default_factory=dict)
    rollup_diffs: dict[str, tuple[float, float]] = field(default_factory=dict)
    dead_letters: int = 0
    drained: bool = False
    floor_max_lag_s: float = 0.0
    """How far the simulated floor fell behind its own clock (device changes then
    arrive in bursts, which can blur who was logged in when)."""

    @property
    def transit_lossless(self) -> bool:
        """Every event the agent made is stored exactly once, and the rollups are exact."""
        return (
            self.drained
            and self.last_seq >= 0
            and not self.missing_seqs
            and not self.duplicate_seqs
            and not self.rollup_diffs
        )

    @property
    def ledger_exact(self) -> bool:
        """Units and defects by code equal the floor's truth (the devices were all read)."""
        return self.units_influx == self.units_ledger and self.defects_influx == self.defects_ledger

    @property
    def lossless(self) -> bool:
        return self.transit_lossless and self.ledger_exact

    def lines(self) -> list[str]:
        out = [f"seed {self.seed}: {len(self.faults)} faults"]
        out += [f"  {at:7.1f} s  {kind:<15} {down:5.1f} s" for at, kind, down in self.faults]
        out.append(
            f"sequence numbers 0..{self.last_seq}: {len(self.missing_seqs)} missing, "
            f"{len(self.duplicate_seqs)} stored twice"
        )
        if self.missing_seqs:
            out.append(f"  missing: {_short(self.missing_seqs)}")
        if self.duplicate_seqs:
            out.append(f"  twice: {_short(self.duplicate_seqs)}")
        out.append(f"units: ledger {self.units_ledger}, InfluxDB {self.units_influx}")
        out.append(f"defects by code: ledger {self.defects_ledger}, InfluxDB {self.defects_influx}")
        for worker, (want, got) in sorted(self.worker_diffs.items()):
            out.append(f"  worker {worker}: ledger {want} units, InfluxDB {got} (attribution)")
        for key, (raw, rollup) in sorted(self.rollup_diffs.items()):
            out.append(f"  rollup {key}: raw {raw}, rollup {rollup}")
        out.append(
            f"dead letters: {self.dead_letters}; drained: {self.drained}; "
            f"floor lag at most {self.floor_max_lag_s:.1f} s"
        )
        out.append(
            "in transit (agent -> InfluxDB, rollups): "
            + ("nothing lost, nothing twice" if self.transit_lossless else "LOSS")
        )
        out.append(
            "against the ledger (devices -> agent -> InfluxDB): "
            + ("exact" if self.ledger_exact else "MISMATCH (units not read from a device)")
        )
        return out


def _short(values: list[int], limit: int = 20) -> str:
    more = f" … (+{len(values) - limit})" if len(values) > limit else ""
    return ", ".join(map(str, values[:limit])) + more


def chaos_scenario(seed: int, hours: float, acceleration: float) -> Scenario:
    """Three lines of three stations (one per protocol), two operators per station."""
    rng = random.Random(seed)
    duration = hours * 3600
    lines: list[dict[str, Any]] = []
    workers: list[dict[str, Any]] = []
    for li in range(3):
        stations = []
        for si, protocol in enumerate(PROTOCOLS):
            sid = f"S{li + 1}{si + 1}"
            codes = ["E01", "E02", "E03"][: 1 + si]
            station: dict[str, Any] = {
                "id": sid,
                "protocol": protocol,
                "standard_cycle_s": rng.choice([4, 5, 6]),
                "defect_codes": codes,
                "counter_start": rng.choice([0, 65_000]),
            }
            stop = rng.uniform(0.2, 0.7) * duration
            station["downtime"] = [
                {"start": stop, "end": stop + 300, "reason": rng.choice(["fault", "starved"])}
            ]
            if protocol == "mqtt":
                station["duplicate_p"] = 0.02
            if protocol == "serial":
                station["corrupt_p"] = 0.01
            stations.append(station)
            handover = round(rng.uniform(0.35, 0.65) * duration)
            for wi, (start, end) in enumerate(((0, handover), (handover + 60, duration))):
                n = len(workers) + 1
                workers.append(
                    {
                        "id": f"W{n:03d}",
                        "badge": f"B{seed % 1000:03d}{n:03d}",
                        "shift": "day",
                        "cycle": {"pace": round(rng.uniform(0.9, 1.2), 2), "cv": 0.1},
                        "defect_rate": round(rng.uniform(0.01, 0.06), 3),
                        "defect_codes": dict.fromkeys(codes, 1),
                        "assignments": [{"station": sid, "start": start + wi, "end": end}],
                    }
                )
        lines.append({"id": f"L{li + 1}", "stations": stations})
    return Scenario.model_validate(
        {
            "name": f"chaos-{seed}",
            "seed": seed,
            "site": "chaos",
            "start": datetime(2026, 3, 14, 6, tzinfo=UTC),
            "duration": duration,
            "time_acceleration": acceleration,
            "tick": 1.0,
            "ledger_bucket": 3600,
            "shifts": {"day": {"start": 0, "end": duration}},
            "lines": lines,
            "workers": workers,
        }
    )


def fault_schedule(seed: int, plan: Plan) -> list[Fault]:
    """Faults at seeded moments within the production time, none overlapping."""
    rng = random.Random(seed * 7919 + 1)
    kinds = (
        ["agent_kill"] * plan.agent_kills
        + ["collector_kill"] * plan.collector_kills
        + ["broker_kill"] * plan.broker_kills
        + ["broker_outage"] * plan.broker_outages
        + ["influx_pause"] * plan.influx_pauses
        + ["influx_kill"] * plan.influx_kills
    )
    rng.shuffle(kinds)
    faults = []
    slot = plan.wall_s * 0.9 / max(1, len(kinds))
    for index, kind in enumerate(kinds):
        if kind == "broker_outage":
            down = rng.uniform(*plan.outage_s)
        elif kind == "influx_pause":
            down = rng.uniform(5, 12)
        else:
            down = rng.uniform(0.2, 3.0)
        faults.append(Fault(round(2 + index * slot + rng.uniform(0, slot * 0.3), 1), kind, down))
    return faults


class Campaign:
    """The stack, the floor and the faults of one seeded run."""

    def __init__(self, workdir: Path, seed: int, plan: Plan, log: Callable[[str], None]) -> None:
        self.workdir = workdir
        self.seed = seed
        self.plan = plan
        self.log = log
        self.report = Report(seed)
        self.scenario = chaos_scenario(seed, plan.sim_hours, plan.acceleration)

    async def run(self) -> Report:
        with ProcessGroup(self.workdir) as group:
            stack = LocalStack(self.workdir, group, site=self.scenario.site, agent_id="gw-chaos")
            await asyncio.to_thread(stack.start_services)
            collector = await asyncio.to_thread(stack.start_collector)
            floor = stack.shop_floor(self.scenario)
            async with floor:
                agent = await asyncio.to_thread(stack.start_agent_for, floor)
                self.children = {"agent": agent, "collector": collector}
                await asyncio.sleep(2)
                floor.start_clock()
                t0 = time.monotonic()
                faults = asyncio.create_task(self._faults(stack, floor, t0))
                await asyncio.wait_for(floor.wait_done(), timeout=self.plan.wall_s * 3 + 300)
                await faults
                self.log(f"floor done after {time.monotonic() - t0:.0f} s; draining")
                ledger = json.loads((floor.workdir / "ledger.json").read_text())
                self.report.floor_max_lag_s = floor.max_lag_s
                self.report.drained = await stack.drained(timeout_s=180)
                await asyncio.to_thread(self._check, stack, ledger)
        return self.report

    # -- faults ---------------------------------------------------------------------

    async def _faults(self, stack: LocalStack, floor: Any, t0: float) -> None:
        for fault in fault_schedule(self.seed, self.plan):
            wait = t0 + fault.at_s - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            if floor.done:
                break
            self.log(f"{time.monotonic() - t0:6.1f} s  {fault.kind} for {fault.down_s:.1f} s")
            self.report.faults.append((round(time.monotonic() - t0, 1), fault.kind, fault.down_s))
            await self._inject(stack, floor, fault)

    async def _inject(self, stack: LocalStack, floor: Any, fault: Fault) -> None:
        broker, database = stack.broker, stack.database
        assert broker is not None and database is not None
        actions: dict[str, tuple[Callable[[], Any], Callable[[], Awaitable[Any]]]] = {
            "agent_kill": (
                lambda: _kill(self.children["agent"]),
                lambda: self._restart(lambda: stack.start_agent_for(floor), "agent"),
            ),
            "collector_kill": (
                lambda: _kill(self.children["collector"]),
                lambda: self._restart(stack.start_collector, "collector"),
            ),
            "broker_kill": (broker.kill, lambda: asyncio.to_thread(broker.start)),
            "broker_outage": (broker.stop, lambda: asyncio.to_thread(broker.start)),
            "influx_pause": (database.pause, lambda: asyncio.to_thread(database.resume)),
            "influx_kill": (database.kill, lambda: asyncio.to_thread(database.start)),
        }
        down, up = actions[fault.kind]
        await asyncio.to_thread(down)
        await asyncio.sleep(fault.down_s)
        await up()

    async def _restart(self, start: Callable[[], Child], name: str) -> None:
        self.children[name] = await asyncio.to_thread(start)

    # -- checks ---------------------------------------------------------------------

    def _check(self, stack: LocalStack, ledger: dict[str, Any]) -> None:
        db = stack.database
        assert db is not None
        report = self.report
        outbox = stack.workdir / "agent" / "outbox.db"
        with sqlite3.connect(outbox) as con:
            row = con.execute("SELECT value FROM meta WHERE key='last_seq'").fetchone()
        report.last_seq = int(row[0]) if row else -1
        seqs: list[int] = []
        for m in EVENT_MEASUREMENTS:
            for series in db.query(f'SELECT "seq" FROM "raw"."{m}"', INFLUX_DB):
                values: Any = series["values"]
                seqs += [int(v[1]) for v in values]
        counts: dict[int, int] = {}
        for seq in seqs:
            counts[seq] = counts.get(seq, 0) + 1
        report.missing_seqs = [s for s in range(report.last_seq + 1) if s not in counts]
        report.duplicate_seqs = sorted(s for s, n in counts.items() if n > 1)

        rows = ledger["rows"] + ledger["unattributed"]
        report.units_ledger = sum(r["good"] + sum(r["defects"].values()) for r in rows)
        defects: dict[str, int] = {}
        by_worker: dict[str, int] = {}
        for r in rows:
            by_worker[r["worker"]] = by_worker.get(r["worker"], 0) + r["good"]
            for code, n in r["defects"].items():
                defects[code] = defects.get(code, 0) + n
        report.defects_ledger = {c: n for c, n in sorted(defects.items()) if n}
        raw_units = stack.sums('"raw"."units"', "count", "outcome, defect_code, worker")
        report.units_influx = int(sum(raw_units.values()))
        got_defects: dict[str, int] = {}
        got_good: dict[str, int] = {}
        for (outcome, code, worker), n in raw_units.items():
            if outcome == "defect":
                got_defects[code] = got_defects.get(code, 0) + int(n)
            else:
                got_good[worker] = got_good.get(worker, 0) + int(n)
        report.defects_influx = dict(sorted(got_defects.items()))
        for worker in set(by_worker) | set(got_good):
            want, got = by_worker.get(worker, 0), got_good.get(worker, 0)
            if want != got:
                report.worker_diffs[worker] = (want, got)

        for measurement, fld in (("units", "count"), ("work", "work_s"), ("work", "effective_s")):
            raw = stack.sums(f'"raw"."{measurement}"', fld, "worker")
            rollup = stack.sums(f'"rollup"."{measurement}_1h"', fld, "worker")
            for (worker,) in set(raw) | set(rollup):
                a, b = raw.get((worker,), 0.0), rollup.get((worker,), 0.0)
                if abs(a - b) > 1e-6:
                    report.rollup_diffs[f"{measurement}.{fld} {worker}"] = (a, b)

        dlq = stack.workdir / "collector" / "dead-letters.sqlite"
        with sqlite3.connect(dlq) as con:
            report.dead_letters = int(
                con.execute("SELECT count(*) FROM dead_letters").fetchone()[0]
            )


def _kill(child: Child) -> None:
    child.signal_group(signal.SIGKILL)
    child.proc.wait(10)


async def campaign(workdir: Path, seed: int, plan: Plan) -> Report:
    def log(line: str) -> None:
        print(line, flush=True)

    return await Campaign(workdir, seed, plan, log).run()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=None, help="default: a random seed")
    parser.add_argument("--short", action="store_true", help="the test suite's short campaign")
    parser.add_argument("--workdir", type=Path, default=Path("var/chaos"))
    args = parser.parse_args(argv)
    seed = args.seed if args.seed is not None else random.randrange(1, 1_000_000)
    plan = SHORT if args.short else FULL
    workdir = args.workdir / f"seed-{seed}"
    workdir.mkdir(parents=True, exist_ok=True)
    print(f"chaos campaign, seed {seed}, {plan}; logs in {workdir}/logs", flush=True)
    report = asyncio.run(campaign(workdir, seed, plan))
    print("\n".join(report.lines()))
    return 0 if report.lossless else 1


if __name__ == "__main__":
    sys.exit(main())
