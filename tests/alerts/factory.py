"""Builders of canonical events for alert tests: a tiny line with explicit event times."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from takt_wire import Batch, SessionEvent, StateEvent, UnitEvent, WorkEvent

T0 = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)


@dataclass
class Line:
    """Makes events for one agent; ``t`` is seconds after T0 (event time)."""

    site: str = "s1"
    line: str = "L1"
    agent: str = "a1"
    boot: str = "b1"
    seq: int = 0
    historical: bool = False
    t0: datetime = T0

    def _base(self, station: str, worker: str, t: float) -> dict[str, Any]:
        self.seq += 1
        return {
            "site": self.site,
            "line": self.line,
            "station": station,
            "device": f"dev-{station}",
            "worker": worker,
            "ts": self.t0 + timedelta(seconds=t),
            "agent": self.agent,
            "boot": self.boot,
            "seq": self.seq,
            "historical": self.historical,
        }

    def unit(
        self,
        t: float,
        *,
        station: str = "S1",
        worker: str = "W1",
        defect: bool = False,
        count: int = 1,
    ) -> UnitEvent:
        if defect:
            return UnitEvent(
                **self._base(station, worker, t),
                outcome="defect",
                defect_code="scratch",
                count=count,
            )
        return UnitEvent(**self._base(station, worker, t), outcome="good", count=count)

    def units(
        self,
        t0: float,
        n: int,
        *,
        every: float = 1.0,
        defect_every: int = 0,
        station: str = "S1",
        worker: str = "W1",
    ) -> list[UnitEvent]:
        """``n`` units from ``t0``, every ``defect_every``-th one defective (0 = none)."""
        return [
            self.unit(
                t0 + i * every,
                station=station,
                worker=worker,
                defect=bool(defect_every) and (i + 1) % defect_every == 0,
            )
            for i in range(n)
        ]

    def work(
        self,
        start: float,
        end: float,
        *,
        station: str = "S1",
        worker: str = "W1",
        down: float = 0.0,
    ) -> WorkEvent:
        span = end - start
        return WorkEvent(
            **self._base(station, worker, end),
            start=self.t0 + timedelta(seconds=start),
            work_s=span,
            effective_s=span - down,
            down_s={"fault": down} if down else {},
        )

    def state(
        self, t: float, state: str, *, station: str = "S1", reason: str | None = None
    ) -> StateEvent:
        if state == "down" and reason is None:
            reason = "fault"
        return StateEvent(**self._base(station, "W1", t), state=state, reason=reason)

    def session(
        self, t: float, action: str, *, station: str = "S1", worker: str = "W1"
    ) -> SessionEvent:
        return SessionEvent(**self._base(station, worker, t), action=action)

    def batch(self, events: Sequence[UnitEvent | WorkEvent | StateEvent | SessionEvent]) -> Batch:
        return Batch(
            agent=self.agent, boot=self.boot, sent_at=datetime.now(UTC), events=list(events)
        )


def wall(t: float) -> float:
    """Wall-clock epoch seconds matching event time ``t`` (tests run the line in real time)."""
    return (T0 + timedelta(seconds=t)).timestamp()
