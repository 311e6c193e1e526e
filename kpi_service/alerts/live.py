"""Live figures for the supervisor board, read from the engine's windows (pure).

Per line: every station (machine state with its reason and how long it has lasted,
defect rate, efficiency, "as of" its newest data and whether that is stale) and the
workers logged in at it (login time, the same figures and a per-minute trend). A station
running with nobody logged in is flagged. Efficiency is % of standard where the KPI
standards (or an efficiency rule's own ``standard_cycle_s``) give the station a standard
cycle; good units per effective hour are shown too. Figures come from the metric
registry; their colour level comes from the alert rules' own thresholds
(:func:`kpi_service.alerts.display.level`). Times are line time: event time, shown in the
site's time zone.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable
from datetime import UTC, tzinfo
from typing import Any

from kpi_service.alerts.display import alert_view, clock_text, level
from kpi_service.alerts.engine import Engine
from kpi_service.alerts.rules import kpi_value
from kpi_service.alerts.windows import ScopeKey, Series, efficiency_inputs
from kpi_service.kpi.metrics import METRICS, Sums

TREND_MINUTES = 30


def standards(engine: Engine, line: str) -> dict[str, float]:
    """Station -> standard cycle seconds on ``line``: an efficiency rule's own standard
    where one gives it, else the KPI standards."""
    out: dict[str, float] = {}
    default: float | None = None
    for rule in engine.rules.rules:
        cycle = rule.standard_cycle_s
        if rule.metric != "efficiency" or cycle is None:
            continue
        if isinstance(cycle, dict):
            for station, seconds in cycle.items():
                out.setdefault(station, seconds)
        elif default is None:
            default = float(cycle)
    if default is not None:
        out.setdefault("*", default)
    else:
        for station, seconds in engine.cycles(line).items():
            out.setdefault(station, seconds)
    return out


def figures(series: Series, now: float, minutes: float, cycles: dict[str, float]) -> dict[str, Any]:
    window = series.window(now, minutes)
    total = window.good + window.defect
    cycle: dict[str, float] = {
        station: cycles.get(station, cycles.get("*", 0.0)) for station in window.by_station
    }
    known = {s: c for s, c in cycle.items() if c > 0}
    earned, effective, _ = efficiency_inputs(series, now, minutes, known)
    _, effective_all, _ = efficiency_inputs(series, now, minutes, 1.0)
    defect_rate = kpi_value("defect_rate", Sums(units_good=window.good, units_defect=window.defect))
    efficiency = kpi_value("efficiency", Sums(standard_s=earned, standard_effective_s=effective))
    per_hour = METRICS["good_per_effective_hour"].compute(
        Sums(units_good=window.good, effective_s=effective_all)
    )
    return {
        "good": window.good,
        "defect": window.defect,
        "defect_rate": _round(defect_rate, 2) if total else None,
        "efficiency": _round(efficiency, 1) if known else None,
        "units_per_hour": _round(per_hour, 1),
    }


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


def trend(series: Series, now: float, minutes: int = TREND_MINUTES) -> list[list[int]]:
    """[minute index (0 = oldest), good, defect] per minute over the last ``minutes``."""
    start = now - minutes * 60
    buckets = [[i, 0, 0] for i in range(minutes)]
    first = bisect.bisect_right(series.secs, int(start))
    for sec in series.secs[first:]:
        index = int((sec - start) // 60)
        if not 0 <= index < minutes:
            continue
        for good, defect in series.buckets[sec].values():
            buckets[index][1] += good
            buckets[index][2] += defect
    return buckets


def station_status(
    series: Series, station: str, now: float, tz: tzinfo, stale_after_s: float
) -> dict[str, Any]:
    """As of when the station was last heard from, whether that is stale, and the machine
    state in force with its reason and duration (all in line time, at ``now``)."""
    out: dict[str, Any] = {"as_of": None, "as_of_local": None, "age_s": None, "stale": True}
    if series.last_seen is not None:
        age = max(0.0, now - series.last_seen)
        out.update(
            as_of=series.last_seen,
            as_of_local=clock_text(series.last_seen, tz),
            age_s=int(age),
            stale=age > stale_after_s,
        )
    run = series.current_run(station)
    state, reason, since = run if run is not None else (None, "", None)
    out.update(
        state=state,
        reason=reason or None,
        state_since=since,
        state_since_local=clock_text(since, tz) if since is not None else None,
        state_for_s=int(max(0.0, now - since)) if since is not None else None,
    )
    return out


def _levels(engine: Engine, scope: str, line: str, node: dict[str, Any]) -> dict[str, str | None]:
    return {
        metric: level(engine.rules, metric, scope, line, node.get(metric))
        for metric in ("defect_rate", "efficiency")
    }


def snapshot(
    engine: Engine,
    wall: float,
    minutes: float,
    visible: Callable[[str], bool],
    *,
    tz: tzinfo | None = None,
    stale_after_s: float = 120.0,
) -> dict[str, Any]:
    """The board's picture of every visible line, and the open alerts on it.

    ``tz`` is the site's time zone (UTC when not given); a station is stale when its
    newest observation is more than ``stale_after_s`` behind the line clock.
    """
    zone = tz or UTC
    cycles: dict[str, dict[str, float]] = {}
    lines: dict[tuple[str, str], dict[str, Any]] = {}
    keys: list[ScopeKey] = sorted(engine.series, key=lambda k: tuple(str(p) for p in k))
    for key in keys:
        scope, site, line, station, worker = key
        clock = engine.clocks.get((site, line))
        if clock is None or not visible(line) or scope == "line":
            continue
        now = clock.at(wall)
        line_cycles = cycles.get(line)
        if line_cycles is None:
            line_cycles = cycles[line] = standards(engine, line)
        entry = lines.setdefault(
            (site, line), {"site": site, "line": line, "event_time": now, "stations": {}}
        )
        assert station is not None
        node = entry["stations"].setdefault(station, {"station": station, "workers": {}})
        series = engine.series[key]
        if scope == "station":
            node.update(figures(series, now, minutes, line_cycles))
            node.update(station_status(series, station, now, zone, stale_after_s))
            node["levels"] = _levels(engine, "station", line, node)
        elif worker is not None and series.logged_in:
            # Only workers present: logged in (or seen working with no session events);
            # a logout takes the worker off the board at once.
            row = {
                "worker": worker,
                "logged_in": True,
                "login_at": series.login_at,
                "login_local": clock_text(series.login_at, zone) if series.login_at else None,
                **figures(series, now, minutes, line_cycles),
                "trend": trend(series, now),
            }
            row["levels"] = _levels(engine, "worker", line, row)
            node["workers"][worker] = row
    alerts = [
        alert_view(a, engine.rules.rule(a.rule_id), zone)
        for a in sorted(engine.open_alerts(), key=lambda a: a.raised_at, reverse=True)
        if visible(a.line)
    ]
    return {
        "window_minutes": minutes,
        "stale_after_s": stale_after_s,
        "lines": [
            {
                **entry,
                "event_time_local": clock_text(entry["event_time"], zone),
                "stations": [_station_out(s) for s in entry["stations"].values()],
            }
            for entry in lines.values()
        ],
        "alerts": alerts,
    }


def _station_out(node: dict[str, Any]) -> dict[str, Any]:
    workers = list(node["workers"].values())
    for name in ("state", "reason", "as_of", "as_of_local", "age_s", "state_for_s"):
        node.setdefault(name, None)
    node.setdefault("stale", True)
    node.setdefault("levels", {})
    # Running with nobody logged in: output nobody answers for (or a missed login).
    unattended = node["state"] == "running" and not workers and not node["stale"]
    return {**node, "workers": workers, "unattended": unattended}
