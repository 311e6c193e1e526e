"""Canonical events as InfluxDB line protocol, per the schema in :mod:`takt_store.schema`.

Hand-written f-strings: ``influxdb_client.Point`` is ~20x slower (DESIGN.md) and
this is the collector's hot path. Tag sets are of bounded cardinality, so the
escaped ``measurement,tags`` prefix of each point is cached by its tag values.
Every value still goes through the escaping rules, so nothing here relies on the
contract's name pattern for correctness.
"""

from __future__ import annotations

from takt_store.lineproto import (
    UnrepresentableError,
    escape_measurement,
    escape_tag,
    float_field,
    quote_field,
)
from takt_store.lineproto import string_field as _fstr
from takt_store.lineproto import tag_value as _tag
from takt_store.schema import (
    MEASUREMENTS,
    SEQ_SLOTS,
    epoch_us,
    hour_of,
    point_time_ns,
)
from takt_store.schema import TAGS as _TAG_NAMES
from takt_store.schema import point_time_us as _point_time
from takt_wire import Event, GapEvent, SessionEvent, StateEvent, UnitEvent, WorkEvent

_CACHE_LIMIT = 100_000

__all__ = [
    "MEASUREMENTS",
    "SEQ_SLOTS",
    "Formatter",
    "UnrepresentableError",
    "epoch_us",
    "escape_measurement",
    "escape_tag",
    "float_field",
    "hour_of",
    "point_time_ns",
    "quote_field",
]


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
            self._work_lines(event, common, source[0], ts, start_us * 1000, ts_us * 1000, out)
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
        end_ns: int,
        out: list[str],
    ) -> None:
        prefix = self._prefix(
            ("work", event.site, event.line, event.station, event.worker, event.agent)
        )
        out.append(
            f"{prefix} work_s={float_field(event.work_s)},"
            f"effective_s={float_field(event.effective_s)},"
            f"down_s={float_field(sum(event.down_s.values()))},start_ns={start_ns}i,"
            f"end_ns={end_ns}i,{common} {ts}"
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
