"""A seeded per-event shift for pulse devices, and its ledger (the truth).

The script is what the device *does* (logins, good parts, defective parts with
their codes, often several in the same second: a burst), written without any
of the agent's code. The ledger counts it directly: units by worker, defects by
(worker, code); parts made while nobody is logged in belong to nobody.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta

from takt_wire import UNATTRIBUTED
from tests.agent.helpers import ROSTER, T0, Ledger

CODES = ("E07", "E12", "E31")


@dataclass(frozen=True)
class Ev:
    """One thing the device reports; ``ms`` counts from T0."""

    ms: int
    kind: str  # login | logout | good | defect | beat
    badge: str = ""
    good: int = 0
    codes: tuple[str, ...] = ()

    @property
    def ts(self) -> datetime:
        return T0 + timedelta(milliseconds=self.ms)

    @property
    def epoch_ms(self) -> int:
        return int(self.ts.timestamp() * 1000)


def pulse_script(seconds: int, seed: int, badges: list[str] | None = None) -> list[list[Ev]]:
    """Per second, the events of that second (in order); everybody logged out at the end."""
    rng = random.Random(seed)
    badges = badges or list(ROSTER)
    badge = ""
    out: list[list[Ev]] = []
    for t in range(seconds):
        base = t * 1000
        second: list[Ev] = []
        if t == seconds - 1:
            if badge:
                second.append(Ev(base + 900, "logout"))
                badge = ""
            out.append([*second, Ev(base + 999, "beat")])
            break
        if not badge and rng.random() < 0.3:
            badge = rng.choice(badges)
            second.append(Ev(base + 10, "login", badge=badge))
        if rng.random() < 0.8:
            second.append(Ev(base + 200, "good", good=rng.choice([1, 1, 2, 3])))
        if rng.random() < 0.4:  # a burst: several defective parts within one second
            codes = tuple(rng.choice(CODES) for _ in range(rng.choice([1, 1, 2, 3, 5])))
            second.append(Ev(base + 400, "defect", codes=codes))
        if badge and rng.random() < 0.08:
            second.append(Ev(base + 900, "logout"))
            badge = ""
        second.append(Ev(base + 999, "beat"))
        out.append(second)
    return out


def ledger_of(script: list[list[Ev]], roster: dict[str, str] | None = None) -> Ledger:
    """Good and defects by worker, from the script alone."""
    roster = roster or ROSTER
    ledger = Ledger()
    worker = UNATTRIBUTED
    for second in script:
        for ev in second:
            if ev.kind == "login":
                worker = roster[ev.badge]
            elif ev.kind == "logout":
                worker = UNATTRIBUTED
            elif ev.kind == "good":
                ledger.good[worker] += ev.good
            elif ev.kind == "defect":
                for code in ev.codes:
                    ledger.defects[(worker, code)] += 1
    return ledger
