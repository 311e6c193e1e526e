"""Canonical shop-floor events: what the edge agent publishes and everything downstream reads.

The models are strict on purpose: a producer in another language gets a precise
error instead of a silently wrong KPI. Counts are integers, seconds are finite and
non-negative, names are short tag-safe identifiers (they become MQTT topic levels
and InfluxDB tag values), and every event carries its identity (agent, boot, seq)
so that duplicates can be dropped and gaps seen.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    Strict,
    field_validator,
    model_validator,
)

SCHEMA_VERSION = 1
"""Version of the event schema; bumped on any change a consumer must know about."""

UNATTRIBUTED = "unattributed"
"""Worker value for units or time that no logged-in operator can be held responsible for."""

TIME_TOLERANCE_S = 0.01
"""Rounding slack allowed when seconds must add up (work = effective + excused down)."""

MAX_UNITS_PER_EVENT = 100_000
"""A counter jump above this is a broken device, not production."""


Name = Annotated[
    str,
    Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:\-]*$"),
]
"""Identifier safe as an MQTT topic level and an InfluxDB tag value (no spaces, '/', '+', '#')."""

EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
LATEST = datetime(2100, 1, 1, tzinfo=UTC)
"""Event times lie in [EARLIEST, LATEST): anything outside is a broken clock, not production.

The window is part of the contract (not a consumer's setting) because every
consumer must be able to store and roll up what the contract admits; InfluxDB
cannot store times before 1677 or after 2262.
"""

MAX_SEQ = 2**53 - 1
"""Largest sequence number: exact in every JSON implementation (and in an InfluxDB integer)."""


UtcTime = Annotated[
    AwareDatetime,
    Field(
        ge=EARLIEST,
        lt=LATEST,
        json_schema_extra={
            "formatMinimum": "2000-01-01T00:00:00Z",
            "formatExclusiveMaximum": "2100-01-01T00:00:00Z",
        },
    ),
]
"""Timestamps carry a zone (e.g. '2026-11-23T08:00:00Z') and lie within [2000, 2100)."""
StrictCount = Annotated[int, Strict()]
"""An integer as a JSON number: no "7", no true, no 7.0."""
MAX_GAP_S = 31 * 24 * 3600.0
"""Longest span one event covers: its seconds fields, a gap (longer ones take several)."""

Seconds = Annotated[float, Strict(), Field(ge=0.0, le=MAX_GAP_S, allow_inf_nan=False)]
"""A JSON number (an integer is fine; a string or Boolean is refused)."""
Code = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:\-]+$")]


class EventBase(BaseModel):
    """Fields every event carries: where, who, when, and its identity."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    v: Literal[1] = Field(default=1, description="Event schema version.")
    site: Name
    line: Name
    station: Name
    device: Name = Field(description="Device (PLC, counter box, sensor) that produced the signal.")
    worker: Name = Field(
        description=f"Operator id as the site knows it (possibly pseudonymised), "
        f"or '{UNATTRIBUTED}' when nobody was logged in."
    )
    ts: UtcTime = Field(description="Event time (UTC): when it happened on the line.")
    agent: Name = Field(description="Edge agent that produced the event.")
    boot: Name = Field(description="Agent boot id: a new value after each start of the agent.")
    seq: StrictCount = Field(
        ge=0, le=MAX_SEQ, description="Sequence number, strictly increasing per agent."
    )
    historical: Annotated[bool, Strict()] = Field(
        default=False,
        description="True when the event is replayed from a backlog rather than sent live; "
        "realtime alerting ignores it, history counts it.",
    )

    @property
    def identity(self) -> tuple[str, str, int]:
        """(agent, boot, seq): the key duplicates are recognised by."""
        return (self.agent, self.boot, self.seq)


class UnitEvent(EventBase):
    """Finished units: good, or defective with a defect code."""

    kind: Literal["unit"] = "unit"
    outcome: Literal["good", "defect"]
    count: StrictCount = Field(
        default=1,
        ge=1,
        le=MAX_UNITS_PER_EVENT,
        description="Units in this event; counters that jump by N yield one event of N.",
    )
    defect_code: Code | None = Field(
        default=None, description="Required for defects ('unknown' when the device gives none)."
    )
    serial: Annotated[str, Field(min_length=1, max_length=128)] | None = Field(
        default=None, description="Unit serial number, where the line tracks serials."
    )
    cycle_s: Seconds | None = Field(default=None, description="Measured cycle time, if known.")

    @model_validator(mode="after")
    def _consistent(self) -> UnitEvent:
        if self.outcome == "defect" and self.defect_code is None:
            raise ValueError("a defect needs a defect_code (use 'unknown' if the device has none)")
        if self.outcome == "good" and self.defect_code is not None:
            raise ValueError("a good unit carries no defect_code")
        if self.serial is not None and self.count != 1:
            raise ValueError("an event with a serial describes exactly one unit (count must be 1)")
        return self


class WorkEvent(EventBase):
    """An operator's work time at a station over [start, ts].

    ``down_s`` is machine down time the operator does not own (fault, starved,
    maintenance), by reason; it is excluded from effective time so nobody is
    graded down for a broken machine: ``effective_s = work_s - sum(down_s)``.
    """

    kind: Literal["work"] = "work"
    start: UtcTime = Field(description="Start of the interval; ts is its end.")
    work_s: Seconds = Field(description="Seconds logged in during the interval.")
    effective_s: Seconds = Field(description="work_s less excused down time.")
    down_s: dict[Code, Seconds] = Field(
        default_factory=dict, description="Excused machine down seconds by reason."
    )

    @field_validator("down_s")
    @classmethod
    def _bounded_reasons(cls, value: dict[str, float]) -> dict[str, float]:
        if len(value) > 32:
            raise ValueError("at most 32 down reasons per interval")
        return value

    @model_validator(mode="after")
    def _seconds_add_up(self) -> WorkEvent:
        span = (self.ts - self.start).total_seconds()
        if span < 0:
            raise ValueError("interval ends before it starts (ts < start)")
        if self.work_s > span + TIME_TOLERANCE_S:
            raise ValueError(f"work_s {self.work_s} exceeds the interval length {span}")
        down = sum(self.down_s.values())
        if abs(self.work_s - self.effective_s - down) > TIME_TOLERANCE_S:
            raise ValueError(
                f"seconds do not add up: work_s {self.work_s} != effective_s "
                f"{self.effective_s} + down {down}"
            )
        return self


class SessionEvent(EventBase):
    """Operator login or logout at a station (badge, PLC login, HMI)."""

    kind: Literal["session"] = "session"
    action: Literal["login", "logout"]

    @model_validator(mode="after")
    def _named_worker(self) -> SessionEvent:
        if self.worker == UNATTRIBUTED:
            raise ValueError(f"a {self.action} names the worker; '{UNATTRIBUTED}' is not one")
        return self


class StateEvent(EventBase):
    """Machine state change; ``reason`` says why a machine is down."""

    kind: Literal["state"] = "state"
    state: Literal["running", "idle", "down"]
    reason: Code | None = Field(default=None, description="Required when state is 'down'.")

    @model_validator(mode="after")
    def _reason_when_down(self) -> StateEvent:
        if self.state == "down" and self.reason is None:
            raise ValueError("a 'down' state needs a reason (e.g. fault, starved, maintenance)")
        if self.state != "down" and self.reason is not None:
            raise ValueError("only a 'down' state carries a reason")
        return self


class GapEvent(EventBase):
    """A time span over which the agent could not observe a station (data quality).

    The device was unreachable and could not tell afterwards what happened meanwhile
    (an OPC UA server without history, for instance): logins, logouts, state changes
    and restarts in ``[start, ts]`` are unknown, and units counted when the device is
    read again may belong to anyone who worked in that span. ``worker`` is who was
    logged in when observation stopped. Nothing is excused by it; the KPI evidence
    shows it next to the figures it may affect.
    """

    kind: Literal["gap"] = "gap"
    start: UtcTime = Field(description="When observation stopped; ts is when it resumed.")
    reason: Code = Field(description="Why, e.g. 'no_history' (device back, history unknown).")

    @model_validator(mode="after")
    def _ordered(self) -> GapEvent:
        span = (self.ts - self.start).total_seconds()
        if span < 0:
            raise ValueError("gap ends before it starts (ts < start)")
        if span > MAX_GAP_S:
            raise ValueError(f"a gap of {span:.0f} s is longer than {MAX_GAP_S:.0f} s")
        return self


Event = Annotated[
    UnitEvent | WorkEvent | SessionEvent | StateEvent | GapEvent,
    Field(discriminator="kind"),
]
"""Any canonical event, told apart by ``kind``."""

EVENT_TYPES: tuple[type[EventBase], ...] = (
    UnitEvent,
    WorkEvent,
    SessionEvent,
    StateEvent,
    GapEvent,
)
