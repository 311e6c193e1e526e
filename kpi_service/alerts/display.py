"""How alerts and live figures read on the board: line time, rule windows, hysteresis, levels.

Pure functions over the rules and the alerts (no I/O). Everything a card says about an
alert comes from its rule: the window the figure is over ("last 10 min", "last 50
units"), the level that clears it, and whether the figure, though no longer beyond the
level that raised it, is still short of that clear level (hysteresis: the alert stays
open, and the card says "clears at <= X" rather than showing a figure below a threshold
beside a red badge). Colours of the board's figures come from the same rules'
thresholds, never from a constant in the page.
"""

from __future__ import annotations

from datetime import datetime, tzinfo
from typing import Any, Literal

from kpi_service.alerts.model import Alert
from kpi_service.alerts.rules import Rule, RuleSet

Level = Literal["ok", "warning", "critical"]


def clock_text(ts: float, tz: tzinfo) -> str:
    """``hh:mm:ss`` of an epoch instant in the site's time zone (line time on the board)."""
    return datetime.fromtimestamp(ts, tz).strftime("%H:%M:%S")


def local_iso(ts: float | None, tz: tzinfo) -> str | None:
    """ISO 8601 with the site's UTC offset, to the second."""
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, tz).isoformat(timespec="seconds")


def window_of(rule: Rule) -> dict[str, Any]:
    """The rule's window as data: ``{"minutes": 10}`` or ``{"units": 50}``."""
    if rule.window.units is not None:
        return {"units": rule.window.units}
    return {"minutes": rule.window.minutes}


def level(rules: RuleSet, metric: str, scope: str, line: str, value: float | None) -> Level | None:
    """The worst level ``value`` reaches against the enabled rules on ``metric`` for
    ``scope`` on ``line``; None when no rule watches it (the page then leaves it uncoloured)."""
    if value is None:
        return None
    found: Level | None = None
    for rule in rules.rules:
        if not rule.enabled or rule.metric != metric or rule.scope != scope:
            continue
        if not rule.applies_to_line(line):
            continue
        if rule.critical is not None and rule.worse(value, rule.critical):
            return "critical"
        if rule.worse(value, rule.warning):
            found = "warning"
        elif found is None:
            found = "ok"
    return found


def alert_view(alert: Alert, rule: Rule | None, tz: tzinfo) -> dict[str, Any]:
    """An open alert as the board shows it: the stored alert plus its rule's window and
    levels, hysteresis, and its times in line time (site time zone)."""
    out: dict[str, Any] = alert.model_dump(mode="json")
    out.update(
        raised_local=clock_text(alert.raised_event_ts, tz),
        raised_iso=local_iso(alert.raised_event_ts, tz),
        acknowledged_local=(
            clock_text(alert.acknowledged_at, tz) if alert.acknowledged_at is not None else None
        ),
        acknowledged_iso=local_iso(alert.acknowledged_at, tz),
    )
    if rule is None:  # the rule was removed; the alert clears on the next swap
        out.update(window=None, rule=None, hysteresis=False)
        return out
    out.update(
        window=window_of(rule),
        rule={
            "warning": rule.warning,
            "critical": rule.critical,
            "clear": rule.clear,
            "higher_is_worse": rule.higher_is_worse,
        },
        # Still open, but no longer at the level that raised it: waiting to reach "clear".
        hysteresis=not rule.worse(alert.value, alert.threshold),
    )
    return out
