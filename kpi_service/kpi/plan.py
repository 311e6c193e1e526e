"""Which store answers which part of a KPI period: daily rollups, hourly rollups or raw points.

Pure: (calendar buckets, what is available, now) in, a list of reads out. The period
is cut at every bucket boundary into segments (a bucket, or the time between two
shifts, which the KPI computation labels ``unscheduled``); each segment is read at
the coarsest level that covers it exactly:

- **month**: the whole local calendar months inside it, from ``<m>_1mo`` of the
  service's zone (only when the collector keeps calendar rollups in that zone, see
  ``InfluxReader``);
- **day**: the whole local days of the partial months at its edges, from ``<m>_1d``;
- **hour**: the whole UTC hours of the partial days at its edges, from ``<m>_1h``;
- **raw**: what is left (a range starting or ending inside an hour), and the recent
  part that the collector may not have rolled up yet (from the start of the hour
  ``RECENT_RAW_S`` ago).

Adjacent segments at one level are read together, either as one sum per segment
(few long segments: a year by month is 12 sums) or grouped by the largest time step
that divides every boundary (many short ones: a year by day), so each answered row
falls in exactly one bucket and the sums equal the raw computation's.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from datetime import timedelta
from typing import Literal
from zoneinfo import ZoneInfo

from kpi_service.kpi.calendar import Bucket
from takt_store.schema import HOUR_NS, day_start_ns, local_date, month_bounds

Level = Literal["raw", "hour", "day", "month"]

RECENT_RAW_S = 300
"""The hour this long ago and everything after it are read raw: the collector
recomputes an hour once writes into it pause (a few seconds after it ends, or later
with a backlog), so the newest rollups may lag the raw points."""
MAX_SPLIT = 12
"""At most this many one-sum reads per span (a year by month); beyond, one grouped read."""
_SECOND = 1_000_000_000
_RESOLUTION_NS: dict[Level, int] = {"month": 28 * 24 * HOUR_NS, "day": 24 * HOUR_NS,
                                    "hour": HOUR_NS}  # fmt: skip


@dataclass(frozen=True)
class Read:
    """One read of every KPI measurement at one level over [start_ns, end_ns)."""

    level: Level
    start_ns: int
    end_ns: int
    step_s: int | None
    """``GROUP BY time(step_s)``; None: one sum over the whole read."""

    def describe(self) -> str:
        by = f" by {self.step_s}s" if self.step_s else ""
        return f"{self.level} [{self.start_ns}, {self.end_ns}){by}"


def _hours(start: int, end: int) -> list[tuple[Level, int, int]]:
    """[start, end) as raw edges around its whole UTC hours."""
    h0 = -(-start // HOUR_NS) * HOUR_NS
    h1 = end // HOUR_NS * HOUR_NS
    if h0 >= h1:
        return [("raw", start, end)]
    return [("raw", start, h0), ("hour", h0, h1), ("raw", h1, end)]


def _days(start: int, end: int, zone: ZoneInfo) -> tuple[int, int] | None:
    """The whole local days inside [start, end) as (first midnight, last midnight)."""
    first_day = local_date(start, zone)
    m0 = day_start_ns(first_day, zone)
    if m0 < start:
        m0 = day_start_ns(first_day + timedelta(days=1), zone)
    m1 = day_start_ns(local_date(end, zone), zone)
    return (m0, m1) if m0 < m1 else None


def _months(start: int, end: int, zone: ZoneInfo) -> tuple[int, int] | None:
    """The whole local months inside [start, end) as (first, last month start)."""
    m0, following = month_bounds(local_date(start, zone), zone)
    if m0 < start:
        m0 = following
    m1 = month_bounds(local_date(end, zone), zone)[0]
    return (m0, m1) if m0 < m1 else None


def _calendar(start: int, end: int, zone: ZoneInfo | None) -> list[tuple[Level, int, int]]:
    """[start, end) as whole local months, whole local days around them, hours around
    those and raw edges."""
    months = _months(start, end, zone) if zone is not None and end > start else None
    if months is not None:
        return [
            *_calendar(start, months[0], zone),
            ("month", *months),
            *_calendar(months[1], end, zone),
        ]
    days = _days(start, end, zone) if zone is not None and end > start else None
    if days is None:
        return _hours(start, end)
    return [*_hours(start, days[0]), ("day", *days), *_hours(days[1], end)]


def split(
    start: int, end: int, *, hourly: bool, zone: ZoneInfo | None, fresh_ns: int | None
) -> list[tuple[Level, int, int]]:
    """One segment [start, end) as (level, start, end) pieces in time order."""
    if not hourly:
        return [("raw", start, end)]
    cut = end if fresh_ns is None else max(start, min(end, fresh_ns))
    out = [*_calendar(start, cut, zone), ("raw", cut, end)]
    return [p for p in out if p[1] < p[2]]


def _step_ns(instants: list[int]) -> int:
    """The largest step (<= 1 h) dividing every instant."""
    g = HOUR_NS
    for t in instants:
        g = math.gcd(g, t % HOUR_NS)
    return g


def _reads(level: Level, start: int, end: int, cuts: list[int]) -> list[Read]:
    """One span at one level, cut at segment boundaries, as grouped or one-sum reads."""
    if not cuts:
        return [Read(level, start, end, None)]
    bounds = [start, *cuts, end]
    step = _step_ns(bounds)
    points = (end - start) // _RESOLUTION_NS.get(level, step)
    exact_step = step % _SECOND == 0
    if not exact_step or (len(bounds) - 1 <= MAX_SPLIT and points >= 2 * (len(bounds) - 1)):
        return [Read(level, a, b, None) for a, b in itertools.pairwise(bounds)]
    return [Read(level, start, end, step // _SECOND)]


def plan(
    bucket_list: list[Bucket], *, hourly: bool, zone: ZoneInfo | None, now_ns: int | None
) -> list[Read]:
    """The reads that answer ``bucket_list`` (see the module docstring). ``hourly``: the
    rollups may be read at all; ``zone``: daily and monthly rollups of this zone exist."""
    bounds = sorted({b.start_ns for b in bucket_list} | {b.end_ns for b in bucket_list})
    fresh = None if now_ns is None else (now_ns - RECENT_RAW_S * _SECOND) // HOUR_NS * HOUR_NS
    pieces: list[tuple[Level, int, int]] = []
    for a, b in itertools.pairwise(bounds):
        pieces += split(a, b, hourly=hourly, zone=zone, fresh_ns=fresh)
    reads: list[Read] = []
    level, start, end, cuts = pieces[0][0], pieces[0][1], pieces[0][2], list[int]()
    for p_level, p_start, p_end in pieces[1:]:
        if p_level == level and p_start == end:
            cuts.append(end)
            end = p_end
            continue
        reads += _reads(level, start, end, cuts)
        level, start, end, cuts = p_level, p_start, p_end, []
    reads += _reads(level, start, end, cuts)
    return reads
