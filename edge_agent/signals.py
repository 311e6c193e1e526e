"""What a device's raw values mean: the signal part of a device profile (any protocol).

Kept apart from the protocol sections so that protocol packages can check a
profile's signals without importing the profile loader (which imports them).
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

CANONICAL_STATE = r"^(running|idle|down:[A-Za-z0-9_.:\-]+)$"
CanonicalState = Annotated[str, Field(pattern=CANONICAL_STATE)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Signal(_Strict):
    """Where a value sits in a raw reading.

    ``at`` is a JSON path (``a.b.c``) or ``$topic.N`` for MQTT, the field key
    for a serial frame, the variable name (after ``<station>.``) for OPC UA.
    """

    at: str = Field(min_length=1)


class CounterSignal(Signal):
    kind: Literal["cumulative", "pulse"] = Field(
        default="cumulative",
        description="cumulative: a counter that only grows (rolls over at its bit width); "
        "pulse: the value is the number of units in this reading (true = 1).",
    )
    bits: int = Field(default=16, ge=8, le=64, description="Counter width; it wraps at 2**bits.")
    rollover_window: int | None = Field(
        default=None,
        ge=1,
        description="A drop counts as a rollover only when the wrapped delta is at most this "
        "(default 2**bits / 16); any other drop is a device restart.",
    )


class DefectSignal(_Strict):
    """Defects: cumulative counters (``kind: counter``) or one event per reading (``pulse``)."""

    kind: Literal["counter", "pulse"] = Field(
        default="counter",
        description="counter: cumulative reject counters (see mode); pulse: each reading "
        "that carries a defect is that many defective parts, with the code at `code`.",
    )
    mode: Literal["per_code", "total_and_last_code"] | None = Field(
        default=None, description="kind counter: how the counters are laid out (required)."
    )
    at: str | None = Field(
        default=None,
        min_length=1,
        description="per_code: a map code→count at this path, a 'code:n,code:n' string "
        "(format: pairs; ',', ';' or ' ' between pairs), or a variable name with '{code}' "
        "(OPC UA); "
        "total_and_last_code: the total reject counter; "
        "pulse: the number of defective parts in this reading (true = 1); without it, a "
        "reading with a code at `code` is one defect (a list of codes, one defect each).",
    )
    code: str | None = Field(
        default=None,
        min_length=1,
        description="pulse: where the defect code of the reading is (a code or a list of "
        "codes); a defect without a code is stored as 'unknown' and reported.",
    )
    format: Literal["map", "pairs", "pattern"] = "map"
    last_code: str | None = Field(default=None, description="Last defect code (total mode).")
    bits: int = Field(default=16, ge=8, le=64)
    rollover_window: int | None = Field(default=None, ge=1)

    @model_validator(mode="after")
    def _consistent(self) -> DefectSignal:
        if self.kind == "pulse":
            if self.mode is not None or self.last_code is not None:
                raise ValueError("kind pulse takes no mode or last_code (the code is at `code`)")
            if self.at is None and self.code is None:
                raise ValueError("kind pulse needs `at` (a count) or `code` (or both)")
            if "format" in self.model_fields_set:
                raise ValueError("kind pulse takes no format")
            return self
        if self.mode is None:
            raise ValueError("kind counter needs mode (per_code or total_and_last_code)")
        if self.at is None:
            raise ValueError("kind counter needs at")
        if self.code is not None:
            raise ValueError("code is for kind pulse (counters use last_code)")
        if self.mode == "total_and_last_code" and self.last_code is None:
            raise ValueError("mode total_and_last_code needs last_code")
        if self.format == "pattern" and "{code}" not in self.at:
            raise ValueError("format pattern needs '{code}' in at")
        return self


class OperatorSignal(Signal):
    """The badge in force at `at`, or (with `action_at`) login/logout events carrying a badge."""

    nobody: list[str] = Field(
        default_factory=lambda: [""], description="Values meaning logged out."
    )
    action_at: str | None = Field(
        default=None,
        description="Where a login/logout event's action is; then `at` is the badge of that "
        "event, and readings without an action leave the operator unchanged.",
    )
    login: list[str] = Field(default_factory=lambda: ["login"], description="Login actions.")
    logout: list[str] = Field(default_factory=lambda: ["logout"], description="Logout actions.")


class StateSignal(Signal):
    map: dict[str, CanonicalState] = Field(
        min_length=1, description="Raw value (as text) → running | idle | down:<reason>."
    )
    unknown: CanonicalState = Field(default="down:unknown", description="For unmapped values.")
    excused: list[str] | None = Field(
        default=None,
        description="Down reasons excluded from effective time (default: every down reason).",
    )

    @field_validator("map", mode="before")
    @classmethod
    def _keys_as_text(cls, value: object) -> object:
        if isinstance(value, dict):
            return {str(k): v for k, v in value.items()}
        return value


class TimeSignal(_Strict):
    at: str | None = None
    format: Literal["epoch_ms", "epoch_s", "iso8601", "source_timestamp"] = "epoch_ms"

    @model_validator(mode="after")
    def _needs_at(self) -> TimeSignal:
        if self.format != "source_timestamp" and not self.at:
            raise ValueError(f"time format {self.format} needs 'at'")
        return self


class Signals(_Strict):
    good: CounterSignal
    defects: DefectSignal | None = None
    operator: OperatorSignal | None = None
    state: StateSignal | None = None
    cycle_time: Signal | None = None
    time: TimeSignal | None = None


_CODE_RE = re.compile(r"^[A-Za-z0-9_.:\-]+$")


def is_code(text: str) -> bool:
    """A defect code or down reason that can travel on the wire."""
    return bool(_CODE_RE.match(text)) and len(text) <= 64
