"""Canonical events as InfluxDB line protocol, per docs/influx-schema.md.

Hand-written f-strings: ``influxdb_client.Point`` is ~20x slower (DESIGN.md) and
this is the collector's hot path. Tag sets are of bounded cardinality, so the
escaped ``measurement,tags`` prefix of each point is cached by its tag values.
Every value still goes through the escaping rules, so nothing here relies on the
contract's name pattern for correctness.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from pydantic_core import TzInfo

from takt_common.errors import TaktError
from takt_wire import Event, GapEvent, SessionEvent, StateEvent, UnitEvent, WorkEvent

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)
SEQ_SLOTS = 1_000_000
"""Nanoseconds below a millisecond used to keep events of one agent apart (seq mod this)."""

_TAG_SPECIAL = (",", "=", " ")
_TAG_TABLE = str.maketrans({",": "\\,", "=": "\\=", " ": "\\ "})
_MEASUREMENT_TABLE = str.maketrans({",": "\\,", " ": "\\ "})
_FIELD_STR_TABLE = str.maketrans({"\\": "\\\\", '"': '\\"'})
_CACHE_LIMIT = 100_000


class UnrepresentableError(TaktError, ValueError):
    """A value InfluxDB 1.x line protocol cannot carry faithfully."""


def _check_key_or_tag(value: str) -> None:
    if not value:
        raise UnrepresentableError("tag keys and values must not be empty")
    if "\\" in value or "\n" in value or "\r" in value:
        # InfluxDB 1.x unescapes only '\,' '\=' '\ ' in tags; a backslash before a
        # separator (or at the end) changes how the line splits, and a newline ends it.
        raise UnrepresentableError(f"tag value {value!r} contains a backslash or a line break")


def escape_tag(value: str) -> str:
    """Tag key, tag value or field key: commas, equals signs and spaces are escaped."""
    _check_key_or_tag(value)
    return value.translate(_TAG_TABLE)


def escape_measurement(value: str) -> str:
    """Measurement name: commas and spaces are escaped."""
    _check_key_or_tag(value)
    return value.translate(_MEASUREMENT_TABLE)


def quote_field(value: str) -> str:
    """String field value, quoted, with backslashes and double quotes escaped."""
    if "\n" in value or "\r" in value:
        # 1.x accepts a newline inside quotes, but line-oriented readers and the
        # bisecting writer split on it; keep one point per line.
        value = value.replace("\r", "\\r").replace("\n", "\\n")
    return f'"{value.translate(_FIELD_STR_TABLE)}"'


def _tag(value: str) -> str:
    if "," in value or "=" in value or " " in value or "\\" in value or "\n" in value:
        return escape_tag(value)
    if not value:
        raise UnrepresentableError("tag values must not be empty")
    return value


def _fstr(value: str) -> str:
    if '"' in value or "\\" in value or "\n" in value or "\r" in value:
        return quote_field(value)
    return f'"{value}"'


_FIXED_OFFSET_TYPES = (timezone, TzInfo)
_ORDINAL_1970 = EPOCH.toordinal()


def epoch_us(ts: datetime) -> int:
    """Exact microseconds since the epoch of an aware datetime.

    ``ts - EPOCH`` costs ~3 us when the zone is pydantic's TzInfo (two utcoffset
    calls through the datetime machinery); summing the fields and asking a
    fixed-offset zone directly is ~4x cheaper. Other zones (zoneinfo) are asked
    with the datetime, as their offset varies.
    """
    tz = ts.tzinfo
    delta = tz.utcoffset(None) if type(tz) in _FIXED_OFFSET_TYPES else ts.utcoffset()  # type: ignore[union-attr]
    if delta is None:
        raise ValueError("naive datetime: the zone is required")
    seconds = (ts.toordinal() - _ORDINAL_1970) * 86400 + ts.hour * 3600 + ts.minute * 60 + ts.second
    us = seconds * 1_000_000 + ts.microsecond
    return us - delta // _US if delta else us


def point_time_ns(ts: datetime, seq: int) -> int:
    """Point timestamp from event identity: floor(ts to ms) x 10^6 + seq mod 10^6."""
    return _point_time(epoch_us(ts), seq)


def _point_time(us: int, seq: int) -> int:
    """:func:`point_time_ns` from microseconds the hot path has already computed."""
    return (us // 1000) * SEQ_SLOTS + seq % SEQ_SLOTS


def hour_of(time_ns: int) -> int:
    """Start of the UTC hour a point falls in, in ns (what rollups recompute)."""
    hour = 3_600_000_000_000
    return time_ns - time_ns % hour


def float_field(value: float) -> str:
    """Float field: repr round-trips exactly; integral floats keep a decimal point."""
    return repr(float(value))


class Formatter:
    """Turns events into lines, caching escaped tag prefixes and source fields.

    Both caches are keyed by values of bounded cardinality (tags; agent, boot,
    device) and cleared when they grow past a limit, so memory stays bounded.
    """

    def __init__(self) -> None:
        self._prefixes: dict[tuple[str, ...], str] = {}
        self._sources: dict[tuple[str, str, str], tuple[str, str]] = {}
        self._unit_heads: dict[tuple[str, ...], str] = {}

    def _unit_head(self, key: tuple[str, ...]) -> str:
        """'units,<tags> agent=..,boot=..,device=..,count=' for one tag set and source."""
        if len(self._unit_heads) >= _CACHE_LIMIT:
            self._unit_heads.clear()
        *tags, agent, boot, device = key
        prefix = self._prefix(("units", *tags, agent))
        head = f"{prefix} {self._source(agent, boot, device)[1]},count="
        self._unit_heads[key] = head
        return head

    def _prefix(self, key: tuple[str, ...]) -> str:
        cached = self._prefixes.get(key)
        if cached is not None:
            return cached
        if len(self._prefixes) >= _CACHE_LIMIT:
            self._prefixes.clear()
        measurement, *tags = key
        names = _TAG_NAMES[measurement]
        prefix = escape_measurement(measurement) + "".join(
            f",{name}={_tag(value)}" for name, value in zip(names, tags, strict=True)
        )
        self._prefixes[key] = prefix
        return prefix

    def _source(self, agent: str, boot: str, device: str) -> tuple[str, str]:
        """('agent=..,boot=..', 'agent=..,boot=..,device=..') as field text."""
        key = (agent, boot, device)
        cached = self._sources.get(key)
        if cached is not None:
            return cached
        if len(self._sources) >= _CACHE_LIMIT:
            self._sources.clear()
        ab = f"agent={_fstr(agent)},boot={_fstr(boot)}"
        value = (ab, f"{ab},device={_fstr(device)}")
        self._sources[key] = value
        return value

    def lines(self, event: Event, out: list[str], ts_us: int | None = None) -> int:
        """Append the event's point lines to ``out``; return the point time (ns).

        ``ts_us`` is ``epoch_us(event.ts)`` when the caller has it already.
        """
        seq = event.seq
        if ts_us is None:
            ts_us = epoch_us(event.ts)
        ts = _point_time(ts_us, seq)
        kind = event.kind
        if kind == "unit":
            # The hot path: one cached head holds tags and source fields together.
            assert isinstance(event, UnitEvent)
            key = (
                event.site,
                event.line,
                event.station,
                event.worker,
                event.outcome,
                event.defect_code or "none",
                event.agent,
                event.boot,
                event.device,
            )
            head = self._unit_heads.get(key)
            if head is None:
                head = self._unit_head(key)
            extra = ""
            if event.serial is not None:
                extra += f",serial={_fstr(event.serial)}"
            if event.cycle_s is not None:
                extra += f",cycle_s={float_field(event.cycle_s)}"
            out.append(
                f"{head}{event.count}i,seq={seq}i,historical={_BOOL[event.historical]}{extra} {ts}"
            )
            return ts
        source = self._sources.get((event.agent, event.boot, event.device))
        if source is None:
            source = self._source(event.agent, event.boot, event.device)
        common = f"seq={seq}i,historical={_BOOL[event.historical]},{source[1]}"
        if kind == "work":
            assert isinstance(event, WorkEvent)
            # Work time is stamped at the interval's start: an interval that ends on
            # 14:00:00 belongs to the shift (hour, day) that ends there, not the next.
            start_us = epoch_us(event.start)
            ts = _point_time(start_us, seq)
            self._work_lines(event, common, source[0], ts, start_us * 1000, out)
        elif kind == "session":
            assert isinstance(event, SessionEvent)
            prefix = self._prefix(
                (
                    "sessions",
                    event.site,
                    event.line,
                    event.station,
                    event.worker,
                    event.action,
                    event.agent,
                )
            )
            out.append(f"{prefix} {common} {ts}")
        elif kind == "state":
            assert isinstance(event, StateEvent)
            prefix = self._prefix(
                (
                    "states",
                    event.site,
                    event.line,
                    event.station,
                    event.state,
                    event.reason or "none",
                    event.agent,
                )
            )
            out.append(f"{prefix} worker={_fstr(event.worker)},{common} {ts}")
        elif kind == "gap":
            assert isinstance(event, GapEvent)
            # Stamped at its start, like work: the span is counted where it began.
            start_us = epoch_us(event.start)
            ts = _point_time(start_us, seq)
            prefix = self._prefix(
                (
                    "gaps",
                    event.site,
                    event.line,
                    event.station,
                    event.worker,
                    event.reason,
                    event.agent,
                )
            )
            seconds = (epoch_us(event.ts) - start_us) / 1e6
            out.append(
                f"{prefix} seconds={float_field(seconds)},start_ns={start_us * 1000}i,{common} {ts}"
            )
        else:  # pragma: no cover - the Event union is closed
            raise TypeError(f"not an event: {event!r}")
        return ts

    def _work_lines(
        self,
        event: WorkEvent,
        common: str,
        agent_boot: str,
        ts: int,
        start_ns: int,
        out: list[str],
    ) -> None:
        prefix = self._prefix(
            ("work", event.site, event.line, event.station, event.worker, event.agent)
        )
        out.append(
            f"{prefix} work_s={float_field(event.work_s)},"
            f"effective_s={float_field(event.effective_s)},"
            f"down_s={float_field(sum(event.down_s.values()))},start_ns={start_ns}i,"
            f"{common} {ts}"
        )
        for reason, seconds in event.down_s.items():
            down_prefix = self._prefix(
                (
                    "downtime",
                    event.site,
                    event.line,
                    event.station,
                    event.worker,
                    reason,
                    event.agent,
                )
            )
            out.append(
                f"{down_prefix} seconds={float_field(seconds)},{agent_boot},seq={event.seq}i {ts}"
            )


_BOOL = ("false", "true")

_TAG_NAMES: dict[str, tuple[str, ...]] = {
    "units": ("site", "line", "station", "worker", "outcome", "defect_code", "edge"),
    "work": ("site", "line", "station", "worker", "edge"),
    "downtime": ("site", "line", "station", "worker", "reason", "edge"),
    "sessions": ("site", "line", "station", "worker", "action", "edge"),
    "states": ("site", "line", "station", "state", "reason", "edge"),
    "gaps": ("site", "line", "station", "worker", "reason", "edge"),
}
"""``edge`` is the agent id as a tag (the ``agent`` field's twin, which cannot share its
name): without it, events of two agents with equal tags, millisecond and seq mod 10^6
would share a point key and one would silently replace the other."""
"""Tag keys per measurement, in the order the prefix cache stores their values."""

MEASUREMENTS = tuple(_TAG_NAMES)
