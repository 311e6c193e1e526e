"""A simulated month (2026-03-16 .. 2026-04-15, UTC) whose truth is the simulators' ledger.

The scenario is planned by ``simulators.plan`` (the same planner the demo's devices run),
and the ledger's per-day rows (worker, station: good, defects, work, effective time) are
written to InfluxDB as the collector would store the agent's events for them. Scores
from the service are then checked against figures computed here from the ledger alone.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import count
from typing import Any

from kpi_service.core.config import Standard
from kpi_service.testing import AnyEvent
from simulators.ledger import build_ledger
from simulators.plan import plan_scenario
from simulators.scenario import Scenario
from takt_wire.events import UnitEvent, WorkEvent

START = datetime(2026, 3, 16, tzinfo=UTC)
DAYS = 31
DAY_S = 86_400
STATIONS = {"A1": ("L1", 40.0), "A2": ("L1", 45.0), "B1": ("L2", 30.0)}
# worker: (station, shift start hour, pace, defect rate, days worked)
WORKERS: dict[str, tuple[str, int, float, float, int]] = {
    "W01": ("A1", 6, 0.95, 0.02, DAYS),
    "W02": ("A1", 14, 1.25, 0.06, DAYS),
    "W03": ("A2", 6, 1.05, 0.01, DAYS),
    "W04": ("A2", 14, 0.85, 0.12, DAYS),
    "W05": ("B1", 6, 1.10, 0.04, DAYS),
    "W06": ("B1", 14, 1.00, 0.03, 3),  # works three days only: too little evidence
}
STANDARDS = [Standard(station=s, line=line, cycle_s=c) for s, (line, c) in STATIONS.items()]


def scenario() -> Scenario:
    workers = []
    for i, (wid, (station, hour, pace, rate, days)) in enumerate(WORKERS.items()):
        shifts = [
            {
                "start": d * DAY_S + hour * 3600,
                "end": d * DAY_S + (hour + 8) * 3600,
                "station": station,
            }
            for d in range(days)
            if (START + timedelta(days=d)).weekday() < 5
        ]
        workers.append(
            {
                "id": wid,
                "badge": f"B{i}",
                "shift": "month",
                "cycle": {"pace": pace, "cv": 0.1},
                "defect_rate": rate,
                "defect_codes": {"E1": 2, "E2": 1},
                "assignments": shifts,
            }
        )
    lines: dict[str, list[dict[str, Any]]] = {}
    for station, (line, cycle) in STATIONS.items():
        downtime = [
            {"start": d * DAY_S + 9 * 3600, "end": d * DAY_S + 9 * 3600 + 1200, "reason": "fault"}
            for d in range(2, DAYS, 7)
        ]
        lines.setdefault(line, []).append(
            {
                "id": station,
                "protocol": "opcua",
                "standard_cycle_s": cycle,
                "defect_codes": ["E1", "E2"],
                "downtime": downtime,
            }
        )
    return Scenario.model_validate(
        {
            "name": "score_month",
            "seed": 15,
            "site": "S1",
            "start": START,
            "duration": DAYS * DAY_S,
            "ledger_bucket": DAY_S,
            "shifts": {"month": {"start": 0, "end": DAYS * DAY_S}},
            "lines": [{"id": k, "stations": v} for k, v in lines.items()],
            "workers": workers,
        }
    )


def ledger() -> dict[str, Any]:
    sc = scenario()
    return build_ledger(sc, plan_scenario(sc))


def events(ledger_doc: dict[str, Any]) -> list[AnyEvent]:
    """The ledger's day rows as agent events: one work event and unit counts per row."""
    seq = count(1)
    out: list[AnyEvent] = []
    for row in ledger_doc["rows"]:
        day = datetime.fromisoformat(row["start"])
        base = {
            "site": "S1",
            "line": row["line"],
            "station": row["station"],
            "device": row["station"],
            "worker": row["worker"],
            "agent": "A1",
            "boot": "b1",
        }
        if row["work_s"] > 0:
            begin = day + timedelta(hours=1)
            out.append(
                WorkEvent(
                    **base,
                    seq=next(seq),
                    ts=begin + timedelta(seconds=row["work_s"]),
                    start=begin,
                    work_s=row["work_s"],
                    effective_s=row["effective_s"],
                    down_s=row["down_s"],
                )
            )
        at = day + timedelta(hours=2)
        if row["good"]:
            out.append(UnitEvent(**base, seq=next(seq), ts=at, outcome="good", count=row["good"]))
        for k, (code, n) in enumerate(sorted(row["defects"].items())):
            out.append(
                UnitEvent(
                    **base,
                    seq=next(seq),
                    ts=at + timedelta(seconds=k + 1),
                    outcome="defect",
                    defect_code=code,
                    count=n,
                )
            )
    return out
