"""Raw device readings → normalised readings, as a device profile says (pure).

Sources only move bytes; every decision about what a raw value means is made
here, so it can be tested with fixtures. A field that cannot be understood is
reported as a problem and left out; the rest of the reading still counts.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from edge_agent.profile import DeviceProfile
from edge_agent.signals import DefectSignal, OperatorSignal, is_code


@dataclass(frozen=True)
class RawReading:
    """What a source saw: values by key, and the device time when the protocol carries it."""

    station: str
    values: dict[str, Any]
    source_ts: datetime | None = None
    topic: str | None = None
    unobserved: tuple[datetime, datetime] | None = None
    """Not a reading: the gateway-clock span in which the station could not be observed
    and the device cannot tell what happened (reported as a ``gap`` event)."""


@dataclass
class Reading:
    """One normalised reading; ``None`` means the reading does not carry that signal."""

    station: str
    ts: datetime | None
    good: int | None = None
    good_pulses: int = 0
    defects: dict[str, int] | None = None
    defects_complete: bool = False
    defect_pulses: dict[str, int] = field(default_factory=dict)
    """``kind: pulse`` defects: defective parts in this reading, by code."""
    defect_total: int | None = None
    last_code: str | None = None
    operator: str | None = None
    has_operator: bool = False
    state: str | None = None
    cycle_s: float | None = None
    problems: list[str] = field(default_factory=list)


class _Missing:
    pass


MISSING: Any = _Missing()


def lookup(raw: RawReading, path: str) -> Any:
    """Value at a JSON path (``a.b``) or topic segment (``$topic.N``); MISSING if absent."""
    if path.startswith("$topic."):
        if raw.topic is None:
            return MISSING
        parts = raw.topic.split("/")
        try:
            return parts[int(path.removeprefix("$topic."))]
        except (ValueError, IndexError):
            return MISSING
    if path in raw.values:
        return raw.values[path]
    node: Any = raw.values
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return MISSING
        node = node[part]
    return node


def _count(value: Any) -> int:
    """A non-negative integer count, from an int, an integral float or decimal text."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        number = value
    elif isinstance(value, float):
        if not math.isfinite(value) or value != int(value):
            raise ValueError(f"{value!r} is not a whole number")
        number = int(value)
    elif isinstance(value, str) and value.strip().lstrip("-").isdigit():
        number = int(value.strip())
    else:
        raise ValueError(f"{value!r} is not a count")
    if number < 0:
        raise ValueError(f"{number} is negative")
    return number


def _seconds(value: Any) -> float:
    number = float(value)
    if not math.isfinite(number) or number < 0:
        raise ValueError(f"{value!r} is not a finite non-negative number of seconds")
    return number


def _time(value: Any, fmt: str) -> datetime:
    if fmt == "iso8601":
        parsed = datetime.fromisoformat(str(value))
        if parsed.tzinfo is None:
            raise ValueError(f"{value!r} has no time zone")
        return parsed.astimezone(UTC)
    number = float(value)
    if not math.isfinite(number) or number <= 0:
        raise ValueError(f"{value!r} is not a time")
    if fmt == "epoch_ms":
        number /= 1000.0
    return datetime.fromtimestamp(number, UTC)


def _pairs(text: str) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for item in filter(None, re.split(r"[,; ]", text)):
        code, sep, count = item.partition(":")
        if not sep:
            raise ValueError(f"{item!r} is not code:count")
        result[code] = count
    return result


def _defect_map(raw: RawReading, profile: DeviceProfile, reading: Reading) -> None:
    spec = profile.signals.defects
    assert spec is not None and spec.at is not None
    if spec.format == "pattern":
        head, _, tail = spec.at.partition("{code}")
        regex = re.compile(re.escape(head) + r"(.+)" + re.escape(tail) + "$")
        found: dict[str, Any] = {}
        for key, value in raw.values.items():
            match = regex.match(key)
            if match:
                found[match.group(1)] = value
        if not found:
            return
        source: dict[str, Any] = found
    else:
        value = lookup(raw, spec.at)
        if value is MISSING:
            return
        if spec.format == "pairs":
            source = _pairs(str(value))
        elif isinstance(value, dict):
            source = value
        else:
            raise ValueError(f"{value!r} is not a map of code to count")
        reading.defects_complete = True
    counts: dict[str, int] = {}
    for code, count in source.items():
        if not is_code(str(code)):
            reading.problems.append(f"defects: code {code!r} is not a valid code")
            continue
        try:
            counts[str(code)] = _count(count)
        except ValueError as err:
            reading.problems.append(f"defects.{code}: {err}")
    reading.defects = counts


UNKNOWN_CODE = "unknown"


def _defect_pulses(raw: RawReading, spec: DefectSignal, reading: Reading) -> None:
    """``kind: pulse``: this reading's defective parts by code (one reading, one event).

    The count is at ``at`` (``true`` = 1); without ``at``, a reading with a code is one
    defect, and a list of codes is one defect per entry (a burst in one message). A
    defect whose code is missing or not a valid code still counts, as ``unknown``, and
    is reported (a lost defect would be worse than an uncoded one).
    """
    count: int | None = None
    if spec.at is not None:
        value = lookup(raw, spec.at)
        if value is MISSING or value is None or value == "":
            return
        try:
            count = _count(value)
        except ValueError as err:
            reading.problems.append(f"defects: {err}")
            return
        if count == 0:
            return
    codes: list[str] = []
    if spec.code is not None:
        value = lookup(raw, spec.code)
        if isinstance(value, list):
            codes = [str(v).strip() for v in value]
        elif value is not MISSING and value is not None:
            codes = [str(value).strip()]
        codes = [c for c in codes if c]
    if count is None:
        if not codes:
            return
        pairs = [(c, 1) for c in codes]
    elif len(codes) > 1:
        reading.problems.append(
            f"defects.code: {len(codes)} codes for a count of {count}; stored as unknown"
        )
        pairs = [(UNKNOWN_CODE, count)]
    else:
        pairs = [(codes[0] if codes else "", count)]
    for code, n in pairs:
        if not code:
            reading.problems.append(f"defects.code: {n} defect(s) without a code, as unknown")
            code = UNKNOWN_CODE
        elif not is_code(code):
            reading.problems.append(f"defects.code: {code!r} is not a valid code, as unknown")
            code = UNKNOWN_CODE
        reading.defect_pulses[code] = reading.defect_pulses.get(code, 0) + n


def _login_event(reading: Reading, operator: OperatorSignal, get: Any) -> None:
    """A login sets the operator to the event's badge; a logout clears it."""
    assert operator.action_at is not None
    action = get("operator.action", operator.action_at, lambda v: str(v).strip())
    if action is MISSING:
        return
    if action in operator.logout:
        reading.has_operator, reading.operator = True, None
    elif action in operator.login:
        badge = get("operator", operator.at, lambda v: str(v).strip())
        if badge is MISSING or badge in operator.nobody:
            reading.problems.append("operator: a login event carries no badge")
            return
        reading.has_operator, reading.operator = True, badge
    else:
        reading.problems.append(f"operator.action: unknown action {action!r}")


def map_reading(raw: RawReading, profile: DeviceProfile) -> Reading:
    """Normalise one raw reading; problems are listed on the result, never raised."""
    signals = profile.signals
    reading = Reading(station=raw.station, ts=None)

    def get(name: str, path: str, convert: Any) -> Any:
        value = lookup(raw, path)
        if value is MISSING:
            return MISSING
        try:
            return convert(value)
        except (TypeError, ValueError, OverflowError) as err:
            reading.problems.append(f"{name}: {err}")
            return MISSING

    if profile.time_source == "device" and signals.time is not None:
        if signals.time.format == "source_timestamp":
            reading.ts = raw.source_ts
        else:
            assert signals.time.at is not None
            fmt = signals.time.format
            ts = get("time", signals.time.at, lambda v: _time(v, fmt))
            reading.ts = None if ts is MISSING else ts
        if reading.ts is None and not reading.problems:
            reading.problems.append("time: reading carries no device time")

    good = signals.good
    if good.kind == "cumulative":
        value = get("good", good.at, _count)
        if value is not MISSING:
            reading.good = value
    else:
        value = get("good", good.at, _count)
        if value is not MISSING:
            reading.good_pulses = value

    defects = signals.defects
    if defects is not None:
        if defects.kind == "pulse":
            _defect_pulses(raw, defects, reading)
        elif defects.mode == "per_code":
            try:
                _defect_map(raw, profile, reading)
            except ValueError as err:
                reading.problems.append(f"defects: {err}")
        else:
            assert defects.at is not None
            value = get("defects", defects.at, _count)
            if value is not MISSING:
                reading.defect_total = value
            assert defects.last_code is not None
            code = get("defects.last_code", defects.last_code, str)
            if code is not MISSING and code:
                reading.last_code = code if is_code(code) else "unknown"

    operator = signals.operator
    if operator is not None and operator.action_at is None:
        badge = get("operator", operator.at, lambda v: str(v).strip())
        if badge is not MISSING:
            reading.has_operator = True
            reading.operator = None if badge in operator.nobody else badge
    elif operator is not None and operator.action_at is not None:
        _login_event(reading, operator, get)

    if signals.state is not None:
        spec = signals.state
        raw_state = get("state", spec.at, lambda v: str(v).strip())
        if raw_state is not MISSING:
            mapped = spec.map.get(raw_state)
            if mapped is None:
                reading.problems.append(
                    f"state: unmapped value {raw_state!r}, using {spec.unknown}"
                )
                mapped = spec.unknown
            reading.state = mapped

    if signals.cycle_time is not None:
        cycle = get("cycle_time", signals.cycle_time.at, _seconds)
        if cycle is not MISSING:
            reading.cycle_s = cycle
    return reading
