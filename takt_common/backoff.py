"""The one backoff of the house: capped exponential steps with jitter.

Reconnect loops (agent sources and publisher) use :class:`Backoff`; retries run
by tenacity (alert deliveries) use :func:`retry_wait`; both take their delay from
:func:`jittered`, so "0.2 s doubling to 30 s" means the same everywhere.
"""

from __future__ import annotations

import random

from tenacity import RetryCallState
from tenacity.wait import wait_base

MAX_DOUBLINGS = 30
"""2**30 times the base is far beyond any cap; stops the exponent from growing forever."""


def step(base: float, cap: float, attempt: int) -> float:
    """The un-jittered delay before retry number ``attempt`` (0-based): base·2^attempt, capped."""
    return float(min(cap, base * 2 ** min(attempt, MAX_DOUBLINGS)))


def jittered(base: float, cap: float, attempt: int) -> float:
    """A delay uniform in [step/2, step]: peers that failed together spread out."""
    full = step(base, cap, attempt)
    return random.uniform(full / 2, full)


class Backoff:
    """Delays for a reconnect loop: grows per failure, ``reset`` after a good session."""

    def __init__(self, base: float = 0.2, cap: float = 30.0) -> None:
        self.base = base
        self.cap = cap
        self.attempt = 0

    def next_delay(self) -> float:
        delay = jittered(self.base, self.cap, self.attempt)
        self.attempt = min(self.attempt + 1, MAX_DOUBLINGS)
        return delay

    def reset(self) -> None:
        self.attempt = 0


class retry_wait(wait_base):
    """A tenacity wait strategy with the same steps as :class:`Backoff`."""

    def __init__(self, base: float, cap: float) -> None:
        self.base = base
        self.cap = cap

    def __call__(self, retry_state: RetryCallState) -> float:
        return jittered(self.base, self.cap, retry_state.attempt_number - 1)
