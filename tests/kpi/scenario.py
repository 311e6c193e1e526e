"""A small hand-checkable plant (Europe/Berlin) and its truth, computed by hand below."""

from __future__ import annotations

from kpi_service.core.config import Standard
from kpi_service.testing import AnyEvent

from .conftest import Maker

STANDARDS = [Standard(station="ST1", line="L1", cycle_s=30.0)]


def events() -> list[AnyEvent]:
    m = Maker()
    ev: list[AnyEvent] = []
    # 2026-03-10, early shift (06:00-14:00 CET = 05:00-13:00 UTC): W1 at L1/ST1 (standard 30 s).
    ev += [m.unit("L1", "ST1", "W1", f"2026-03-10T05:{10 + i:02d}:00+00:00") for i in range(10)]
    ev += [m.unit("L1", "ST1", "W1", "2026-03-10T06:00:00+00:00", "defect", "scratch")]
    ev += [m.unit("L1", "ST1", "W1", "2026-03-10T06:01:00+00:00", "defect", "dent")]
    ev += [m.unit("L1", "ST1", "W1", "2026-03-10T06:02:00+00:00", "defect", "scratch", serial="X1")]
    ev += [m.unit("L1", "ST1", "W1", "2026-03-10T06:05:00+00:00", serial="X1")]  # rework
    ev += [m.unit("L1", "ST1", "W1", "2026-03-10T06:06:00+00:00", serial="X2")]
    ev += [m.work("L1", "ST1", "W1", "2026-03-10T05:00:00+00:00", "2026-03-10T05:59:00+00:00",
                  {"fault": 600.0})]  # fmt: skip
    ev += [m.work("L1", "ST1", "W1", "2026-03-10T06:00:00+00:00", "2026-03-10T06:59:00+00:00")]
    # W2 at L2/ST9 (no standard): 4 good in one event + 1 good, 30 min work.
    ev += [m.unit("L2", "ST9", "W2", "2026-03-10T07:00:00+00:00", n=4)]
    ev += [m.unit("L2", "ST9", "W2", "2026-03-10T07:10:00+00:00")]
    ev += [m.work("L2", "ST9", "W2", "2026-03-10T06:50:00+00:00", "2026-03-10T07:20:00+00:00",
                  {"starved": 300.0, "fault": 120.0})]  # fmt: skip
    # Nobody logged in: counts for the station, never for a worker.
    ev += [m.unit("L1", "ST1", "unattributed", "2026-03-10T08:00:00+00:00")]
    # Night shift dated 2026-03-28 in Berlin: 21:00 UTC (28th) .. 04:00 UTC (29th), 7 h (DST).
    ev += [m.unit("L1", "ST1", "W3", "2026-03-28T20:59:59.999+00:00")]  # late shift of 28th
    ev += [m.unit("L1", "ST1", "W3", "2026-03-28T21:00:00+00:00")]  # night: first instant
    ev += [m.unit("L1", "ST1", "W3", "2026-03-29T01:30:00+00:00", n=3)]  # 03:30 CEST: night
    ev += [m.unit("L1", "ST1", "W3", "2026-03-29T03:59:59.999+00:00")]  # night: last ms
    ev += [m.unit("L1", "ST1", "W3", "2026-03-29T04:00:00+00:00", n=7)]  # early shift of 29th
    # Night shift dated 2026-10-24: 20:00 UTC (24th) .. 05:00 UTC (25th), 9 h.
    ev += [m.unit("L1", "ST1", "W3", "2026-10-24T20:00:00+00:00", n=2)]
    ev += [m.unit("L1", "ST1", "W3", "2026-10-25T04:30:00+00:00", n=5)]  # 05:30 CET: night
    ev += [m.unit("L1", "ST1", "W3", "2026-10-25T05:00:00+00:00", n=11)]  # 06:00 CET: early
    # W1's station could not be observed for 150 s (device unreachable, no history).
    ev += [m.gap("L1", "ST1", "W1", "2026-03-10T05:30:00+00:00", "2026-03-10T05:32:30+00:00")]
    return ev
