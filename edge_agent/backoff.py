"""Capped, jittered exponential backoff for reconnect loops (resets after a good session)."""

from __future__ import annotations

import random


class Backoff:
    def __init__(self, base: float = 0.2, cap: float = 30.0) -> None:
        self.base = base
        self.cap = cap
        self.attempt = 0

    def next_delay(self) -> float:
        """Full jitter: uniform in [cap/2, cap] of the current step, so peers spread out."""
        step = min(self.cap, self.base * (2**self.attempt))
        self.attempt = min(self.attempt + 1, 30)
        return random.uniform(step / 2, step)

    def reset(self) -> None:
        self.attempt = 0
