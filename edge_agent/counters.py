"""Deltas from cumulative device counters, telling rollovers from device restarts (pure).

A counter that drops can mean two things: it wrapped at its bit width (a small
step past the top) or the device restarted and counts again from 0. Counting a
restart as a rollover would invent ~65k units; counting a rollover as a restart
would lose the units before the wrap. The rule: a drop whose wrapped delta is at
most the rollover window (default 1/16 of the range) is a rollover; any other
drop is a restart, and the new value counts from 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Kind = Literal["normal", "rollover", "reset", "first"]


@dataclass(frozen=True)
class Delta:
    units: int
    kind: Kind


def counter_delta(
    last: int | None, value: int, bits: int, rollover_window: int | None = None
) -> Delta:
    """Units produced between two readings of a cumulative counter."""
    modulus = 1 << bits
    if last is None:
        return Delta(0, "first")
    if value >= last:
        return Delta(value - last, "normal")
    window = rollover_window if rollover_window is not None else modulus // 16
    wrapped = value + modulus - last
    if value < modulus and wrapped <= window:
        return Delta(wrapped, "rollover")
    return Delta(value, "reset")
