"""What the board says about stations, workers and alerts: the pure live snapshot.

Events go through the real engine (``Engine.feed``); the expected figures are worked out
here from the events the test sent (times, counts, thresholds), never by the code under
test. Line time is the event time shown in the site's time zone (Asia/Shanghai, UTC+8).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from kpi_service.alerts import live
from kpi_service.alerts.engine import Engine
from kpi_service.alerts.rules import parse_rules
from takt_wire.events import UNATTRIBUTED
from tests.alerts.factory import T0, Line, wall

SHANGHAI = ZoneInfo("Asia/Shanghai")
RULES = """
rules:
  - id: worker-defects
    metric: defect_rate
    scope: worker
    window: {units: 40}
    min_samples: 20
    warning: 10
    critical: 40
    clear: 5
    for_s: 0
    cooldown_s: 0
  - id: station-defects
    metric: defect_rate
    scope: station
    window: {minutes: 10}
    min_samples: 5
    warning: 8
    critical: 25
    clear: 3
    lines: [L1]
"""


def shanghai_clock(t: float) -> str:
    """hh:mm:ss of event time ``t`` (seconds after T0) at UTC+8, by hand."""
    moment = T0 + timedelta(seconds=t) + timedelta(hours=8)
    return f"{moment.hour:02d}:{moment.minute:02d}:{moment.second:02d}"


def station(snap: dict[str, Any], name: str) -> dict[str, Any]:
    [line] = snap["lines"]
    return next(s for s in line["stations"] if s["station"] == name)


def board(eng: Engine, at: float, stale_after_s: float = 120.0) -> dict[str, Any]:
    return live.snapshot(eng, wall(at), 15.0, lambda _: True, tz=SHANGHAI,
                         stale_after_s=stale_after_s)  # fmt: skip


def test_station_as_of_age_staleness_down_reason_and_duration() -> None:
    eng, line = Engine(parse_rules(RULES)), Line()
    # S1 runs and produces until t=600; S2 goes down ("jam") at t=60 and stays down
    # (a repeated "down jam" heartbeat at t=300 does not restart the duration); S3 was
    # last heard at t=100.
    eng.feed([line.state(0, "running", station="S1"), line.state(60, "down", station="S2",
              reason="jam"), line.state(100, "running", station="S3")], wall(100))  # fmt: skip
    eng.feed([line.state(300, "down", station="S2", reason="jam")], wall(300))
    for t in range(500, 601, 10):
        eng.feed([line.unit(t, station="S1", worker="W1")], wall(t))
    snap = board(eng, 630)  # 30 s of wall time after the newest event

    s1, s2, s3 = (station(snap, s) for s in ("S1", "S2", "S3"))
    assert s1["as_of_local"] == shanghai_clock(600) and s1["age_s"] == 30
    assert s1["stale"] is False and s1["state"] == "running"
    assert s2["state"] == "down" and s2["reason"] == "jam"
    assert s2["state_for_s"] == 630 - 60  # since the first "down jam", not the heartbeat
    assert s2["age_s"] == 630 - 300 and s2["stale"] is True  # 330 s > 120 s
    assert s3["age_s"] == 530 and s3["stale"] is True
    assert snap["lines"][0]["event_time_local"] == shanghai_clock(630)
    # A longer stale limit: S2's heartbeat 330 s ago is fresh enough.
    assert station(board(eng, 630, stale_after_s=400), "S2")["stale"] is False


def test_only_logged_in_workers_listed_with_login_time_and_unattended_flag() -> None:
    eng, line = Engine(parse_rules(RULES)), Line()
    eng.feed([line.state(0, "running", station=s) for s in ("S1", "S2", "S3")], wall(0))
    eng.feed([line.session(5, "login", station="S1", worker="W1"),
              line.session(6, "login", station="S2", worker="W2")], wall(6))  # fmt: skip
    eng.feed([line.unit(10, station="S1", worker="W1"), line.unit(11, station="S2", worker="W2"),
              line.unit(12, station="S3", worker=UNATTRIBUTED)], wall(12))  # fmt: skip
    eng.feed([line.session(40, "logout", station="S2", worker="W2")], wall(40))
    eng.feed([line.unit(45, station="S2", worker=UNATTRIBUTED)], wall(45))
    snap = board(eng, 50)

    s1, s2, s3 = (station(snap, s) for s in ("S1", "S2", "S3"))
    assert [w["worker"] for w in s1["workers"]] == ["W1"]
    assert s1["workers"][0]["login_local"] == shanghai_clock(5)
    assert s2["workers"] == []  # W2 logged out: off the board at once
    assert (s1["unattended"], s2["unattended"], s3["unattended"]) == (False, True, True)
    # A late logout older than a newer login does not log the worker out.
    eng.feed([line.session(60, "login", station="S1", worker="W9")], wall(60))
    eng.feed([line.session(55, "logout", station="S1", worker="W9")], wall(61))
    assert "W9" in [w["worker"] for w in station(board(eng, 62), "S1")["workers"]]


def test_alert_card_says_window_and_clear_level_in_hysteresis() -> None:
    eng, line = Engine(parse_rules(RULES)), Line()
    eng.feed([line.state(0, "running")], wall(0))
    # 40 units, every second one defective: 50 % over the last 40 units -> critical.
    raised = []
    for i in range(40):
        raised += eng.feed([line.unit(1 + i, defect=i % 2 == 1)], wall(1 + i))
    raised = [t for t in raised if t.kind == "raised" and t.alert.rule_id == "worker-defects"]
    assert len(raised) == 1
    [card] = [a for a in board(eng, 41)["alerts"] if a["rule_id"] == "worker-defects"]
    assert card["severity"] == "critical" and card["value"] == 50.0
    assert card["window"] == {"units": 40} and card["hysteresis"] is False
    assert card["raised_local"] == shanghai_clock(raised[0].event_ts - T0.timestamp())  # type: ignore[operator]
    # 35 good units: the last 40 are units 35..74, defective 35, 37, 39 = 3 / 40 = 7.5 %,
    # below both raise levels (40 %, 10 %) but above the clear level (5 %): still open,
    # in hysteresis.
    for i in range(35):
        eng.feed([line.unit(41 + i)], wall(41 + i))
    [card] = [a for a in board(eng, 76)["alerts"] if a["rule_id"] == "worker-defects"]
    assert card["value"] == pytest.approx(7.5)
    assert card["status"] == "active" and card["hysteresis"] is True
    assert card["rule"]["clear"] == 5 and card["rule"]["higher_is_worse"] is True


def test_figure_levels_come_from_the_rules_thresholds() -> None:
    eng, line = Engine(parse_rules(RULES)), Line()
    other = Line(line="L2", agent="a2")
    events = [line.unit(i, station="S1", worker="W1", defect=i % 10 == 0) for i in range(20)]
    events += [other.unit(i, station="S1", worker="W1", defect=i % 10 == 0) for i in range(20)]
    eng.feed(events, wall(20))
    snap = live.snapshot(eng, wall(20), 15.0, lambda _: True, tz=UTC)
    by_line = {entry["line"]: entry["stations"][0] for entry in snap["lines"]}
    # 2 defects in 20 = 10 %: the worker rule (warning 10) warns, the station rule of L1
    # (warning 8, critical 25) warns; L2 has no station rule, so no level at all.
    l1, l2 = by_line["L1"], by_line["L2"]
    assert l1["defect_rate"] == 10.0
    assert l1["levels"]["defect_rate"] == "warning"
    assert l1["workers"][0]["levels"]["defect_rate"] == "warning"
    assert l2["levels"]["defect_rate"] is None
    assert l1["levels"]["efficiency"] is None  # no efficiency rule, no colour


def test_local_times_follow_the_site_zone() -> None:
    eng, line = Engine(parse_rules(RULES)), Line()
    eng.feed([line.state(0, "running")], wall(0))
    utc = station(live.snapshot(eng, wall(1), 15.0, lambda _: True, tz=UTC), "S1")
    local = station(board(eng, 1), "S1")
    assert utc["as_of_local"] == T0.strftime("%H:%M:%S")
    assert (
        local["as_of_local"]
        == datetime.fromtimestamp(T0.timestamp(), SHANGHAI).strftime("%H:%M:%S")
        == shanghai_clock(0)
    )
