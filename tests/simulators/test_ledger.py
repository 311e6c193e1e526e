"""The ground-truth ledger: deterministic, and consistent with the scenario it came from."""

from __future__ import annotations

import asyncio
import csv
import io
import os
import subprocess
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from simulators import ShopFloor, load_scenario
from simulators.ledger import build_ledger, ledger_csv
from simulators.plan import Change, Unit, plan_scenario
from simulators.scenario import EXCUSED, Scenario

SCENARIOS = Path(__file__).resolve().parents[2] / "simulators" / "scenarios"
ROOT = SCENARIOS.parents[1]

WRITE = """
import sys
from pathlib import Path
from simulators import load_scenario
from simulators.ledger import build_ledger, write_ledger, write_roster
from simulators.plan import plan_scenario
sc = load_scenario(Path(sys.argv[1]))
write_ledger(build_ledger(sc, plan_scenario(sc)), Path(sys.argv[2]))
write_roster(sc, Path(sys.argv[2]))
"""


def _ledger(name: str) -> tuple[Scenario, dict[str, Any]]:
    sc = load_scenario(SCENARIOS / name)
    return sc, build_ledger(sc, plan_scenario(sc))


def _files(folder: Path) -> dict[str, bytes]:
    return {n: (folder / n).read_bytes() for n in ("ledger.json", "ledger.csv", "roster.yaml")}


def test_same_seed_same_bytes_across_processes(tmp_path: Path) -> None:
    outs = []
    for i, hashseed in enumerate(("1", "2")):
        out = tmp_path / f"run{i}"
        env = {**os.environ, "PYTHONHASHSEED": hashseed}
        subprocess.run(
            [sys.executable, "-c", WRITE, str(SCENARIOS / "demo.yaml"), str(out)],
            check=True,
            env=env,
            cwd=ROOT,
            timeout=120,
        )
        outs.append(_files(out))
    assert outs[0] == outs[1]
    assert b'"seed": 42' in outs[0]["ledger.json"]


async def test_a_real_run_writes_the_same_bytes(tmp_path: Path) -> None:
    await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-c", WRITE, str(SCENARIOS / "test_tiny.yaml"), str(tmp_path / "pure")],
        check=True,
        cwd=ROOT,
        timeout=120,
    )
    async with ShopFloor(load_scenario(SCENARIOS / "test_tiny.yaml"), tmp_path / "run") as floor:
        await floor.wait_done()
    assert _files(tmp_path / "run") == _files(tmp_path / "pure")


def test_another_seed_another_run() -> None:
    sc, ledger = _ledger("test_small.yaml")
    other = sc.model_copy(update={"seed": sc.seed + 1})
    assert build_ledger(other, plan_scenario(other))["rows"] != ledger["rows"]


def _overlap(a0: float, a1: float, b0: float, b1: float) -> float:
    return max(0.0, min(a1, b1) - max(a0, b0))


@pytest.mark.parametrize("name", ["demo.yaml", "test_small.yaml", "test_tiny.yaml"])
def test_ledger_agrees_with_the_scenario(name: str) -> None:
    sc, ledger = _ledger(name)
    stations = {st.id: st for _, st in sc.stations()}
    work: dict[str, float] = defaultdict(float)
    effective: dict[str, float] = defaultdict(float)
    for w in sc.workers:
        for a in w.assignments:
            work[w.id] += a.end - a.start
            excused = sum(
                _overlap(a.start, a.end, d.start, d.end)
                for d in stations[a.station].downtime
                if d.reason in EXCUSED
            )
            effective[w.id] += a.end - a.start - excused
    kpis = {k["worker"]: k for k in ledger["kpis"]}
    for worker, seconds in work.items():
        assert kpis[worker]["work_s"] == pytest.approx(seconds, abs=1e-6)
        assert kpis[worker]["effective_s"] == pytest.approx(effective[worker], abs=1e-6)
    # units: rows + unattributed add up to the station totals
    for st in ledger["stations"]:
        rows = [r for r in ledger["rows"] + ledger["unattributed"] if r["station"] == st["station"]]
        assert sum(r["good"] for r in rows) == st["good"]
        codes: dict[str, int] = defaultdict(int)
        for r in rows:
            for code, n in r["defects"].items():
                codes[code] += n
        assert dict(codes) == st["defects"]
        assert set(codes) <= set(stations[st["station"]].defect_codes)
    # KPIs recomputed from the rows with the documented formulas
    for worker, k in kpis.items():
        rows = [r for r in ledger["rows"] if r["worker"] == worker]
        good = sum(r["good"] for r in rows)
        bad = sum(sum(r["defects"].values()) for r in rows)
        eff = sum(r["effective_s"] for r in rows)
        assert k["good"] == good and k["defects"] == bad and k["units"] == good + bad
        assert k["defect_rate"] == pytest.approx(bad / (good + bad), abs=1e-6)
        assert k["efficiency_per_h"] == pytest.approx(good / eff * 3600, abs=1e-4)
        std = sum(r["good"] * r["standard_cycle_s"] for r in rows)
        assert k["pct_of_standard"] == pytest.approx(100 * std / eff, abs=1e-4)


def test_units_only_while_running_and_never_on_a_change() -> None:
    sc = load_scenario(SCENARIOS / "test_small.yaml")
    for plan in plan_scenario(sc).values():
        changes = {e.t_ms for e in plan.events if isinstance(e, Change)}
        for e in plan.events:
            if isinstance(e, Unit):
                seg = next(s for s in plan.segments if s.start_ms <= e.t_ms < s.end_ms)
                assert seg.state == "running" and seg.worker == e.worker
                assert all(abs(e.t_ms - c) >= 10 for c in changes)
        times = [e.t_ms for e in plan.events]
        assert times == sorted(times)


def test_defect_spike_shows_in_its_hour() -> None:
    _, ledger = _ledger("demo.yaml")
    rows = [r for r in ledger["rows"] if r["worker"] == "W003"]

    def rate(rs: list[dict[str, Any]]) -> float:
        bad = sum(sum(r["defects"].values()) for r in rs)
        return float(bad / (bad + sum(r["good"] for r in rs)))

    spike = [r for r in rows if r["start"] == "2026-03-14T11:00:00Z"]
    rest = [r for r in rows if r["start"] != "2026-03-14T11:00:00Z"]
    assert rate(spike) > 0.15 > 0.05 > rate(rest)


def test_restart_and_rollover_in_the_station_truth() -> None:
    sc, ledger = _ledger("test_small.yaml")
    plans = plan_scenario(sc)
    for st in ledger["stations"]:
        station = plans[st["station"]].station
        assert st["restarts"] == len(station.restarts)
        if station.restarts:
            after = round(station.restarts[0] * 1000)
            good_after = sum(
                1
                for e in plans[st["station"]].events
                if isinstance(e, Unit) and e.good and e.t_ms > after
            )
            assert st["final_counters"]["good"] == good_after
    by_id = {s["station"]: s for s in ledger["stations"]}
    assert by_id["S1"]["rollovers"] == by_id["S2"]["rollovers"] == 1


def test_csv_carries_the_same_numbers() -> None:
    _, ledger = _ledger("test_small.yaml")
    rows = list(csv.DictReader(io.StringIO(ledger_csv(ledger))))
    assert len(rows) == len(ledger["rows"]) + len(ledger["unattributed"])
    assert sum(int(r["good"]) for r in rows) == sum(s["good"] for s in ledger["stations"])
    assert sum(float(r["work_s"] or 0) for r in rows) == sum(k["work_s"] for k in ledger["kpis"])
    assert {r["worker"] for r in rows} == {k["worker"] for k in ledger["kpis"]} | {""}
