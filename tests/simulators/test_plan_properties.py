"""Property tests: for any valid scenario the plan and the ledger keep their promises."""

from __future__ import annotations

import itertools
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from simulators.ledger import build_ledger
from simulators.plan import GUARD_MS, Change, Unit, plan_scenario
from simulators.scenario import EXCUSED, Scenario

REASONS = ["fault", "starved", "maintenance", "blocked", "idle"]


@st.composite
def intervals(draw: st.DrawFn, end: int, max_n: int) -> list[tuple[int, int]]:
    cuts = sorted(set(draw(st.lists(st.integers(0, end), max_size=2 * max_n))))
    pairs = list(zip(cuts[::2], cuts[1::2], strict=False))
    return [(a, b) for a, b in pairs if b > a]


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    end = draw(st.integers(60, 1800))
    logins = draw(intervals(end, 4))
    downs = draw(intervals(end, 3))
    free = [(a, b) for a, b in draw(intervals(end, 2)) if all(b <= s or a >= e for s, e in logins)]
    workers: list[dict[str, Any]] = []
    for i, (a, b) in enumerate(logins):
        workers.append(
            {
                "id": f"W{i}",
                "badge": f"B{i}",
                "shift": "A",
                "defect_rate": draw(st.floats(0, 1)),
                "cycle": {"dist": draw(st.sampled_from(["normal", "lognormal", "fixed"]))},
                "assignments": [{"station": "S1", "start": a, "end": b}],
            }
        )
    raw = {
        "name": "prop",
        "seed": draw(st.integers(0, 2**31)),
        "start": "2026-03-14T06:00:00Z",
        "duration": end,
        "ledger_bucket": draw(st.sampled_from([60, 300, 3600])),
        "shifts": {"A": {"start": 0, "end": end}},
        "lines": [
            {
                "id": "L1",
                "stations": [
                    {
                        "id": "S1",
                        "protocol": "opcua",
                        "standard_cycle_s": draw(st.floats(1, 30)),
                        "defect_codes": ["E1", "E2"],
                        "downtime": [
                            {"start": a, "end": b, "reason": draw(st.sampled_from(REASONS))}
                            for a, b in downs
                        ],
                        "unattended": [{"start": a, "end": b} for a, b in free],
                        "unattended_defect_rate": 0.2,
                        "restarts": draw(st.lists(st.integers(1, end - 1), max_size=2)),
                    }
                ],
            }
        ],
        "workers": workers,
    }
    return Scenario.model_validate(raw)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_plan_and_ledger_invariants(sc: Scenario) -> None:
    plan = plan_scenario(sc)["S1"]
    ledger = build_ledger(sc, {"S1": plan})
    changes = [e.t_ms for e in plan.events if isinstance(e, Change)]
    segs = plan.segments
    assert segs[0].start_ms == 0 and segs[-1].end_ms == round(sc.duration * 1000)
    assert all(a.end_ms == b.start_ms for a, b in itertools.pairwise(segs))
    for e in plan.events:
        if isinstance(e, Unit):
            seg = next(s for s in segs if s.start_ms <= e.t_ms < s.end_ms)
            assert seg.state == "running"
            assert e.t_ms <= seg.end_ms - GUARD_MS
            assert all(abs(e.t_ms - c) >= GUARD_MS for c in changes)
    work = {w.id: sum(a.end - a.start for a in w.assignments) for w in sc.workers}
    for k in ledger["kpis"]:
        assert abs(k["work_s"] - work[k["worker"]]) < 1e-6
        assert 0 <= k["effective_s"] <= k["work_s"]
    for row in ledger["rows"]:
        down = sum(row["down_s"].values())
        assert abs(row["work_s"] - row["effective_s"] - down) < 1e-6
        assert set(row["down_s"]) <= EXCUSED
    units = sum(isinstance(e, Unit) for e in plan.events)
    total = sum(
        r["good"] + sum(r["defects"].values()) for r in ledger["rows"] + ledger["unattributed"]
    )
    assert total == units
