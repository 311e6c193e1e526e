"""Scores for a scheme over a range of days: versions per period, measured metrics from the
KPI computation (``kpi_service.kpi``), external values from the store, then ``scoring``.

Each calendar period (month, ISO week or shift of the site's calendar) is scored by the
version in force on its first local day; consecutive periods under one version are read
from InfluxDB in one go, through the same fetch and compute as ``GET /kpis``.
"""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import anyio.to_thread
from fastapi import HTTPException, status

from kpi_service.api.queries import compute_rows, period_buckets, pseudonymiser
from kpi_service.core.apikeys import Principal
from kpi_service.core.config import Settings
from kpi_service.influx import InfluxError, InfluxReader
from kpi_service.kpi.adjusted import fetch  # approved cases applied
from kpi_service.kpi.calendar import UNSCHEDULED, Bucket, Group
from kpi_service.kpi.repository import Filters
from kpi_service.scores.external import ExternalStore, StoredValue
from kpi_service.scores.model import MEASURED, MetricDef, SchemeVersion
from kpi_service.scores.registry import SchemeRegistry
from kpi_service.scores.scoring import ScoreResult, measured_value, score

if TYPE_CHECKING:
    from kpi_service.scores.closing import PeriodBook
    from kpi_service.scores.roles import RoleBook

EVIDENCE_FIELDS = (
    "units_good",
    "units_defect",
    "defect_rate",
    "work_s",
    "effective_s",
    "down_s",
    "standard_s",
    "standard_effective_s",
    "pct_of_standard",
    "serials",
    "first_pass_yield",
)


@dataclass
class WorkerScore:
    worker: str
    period: str
    start: datetime
    end: datetime
    first_day: date
    last_day: date
    scheme: str
    version: int
    result: ScoreResult
    effective_hours: float
    units: int
    measured: dict[str, Any] = field(default_factory=dict)
    closed: str | None = None
    """The content hash of the close this score was frozen by (None: computed live)."""


@dataclass
class ScoreRun:
    scheme: str
    scores: list[WorkerScore]
    versions: dict[int, SchemeVersion]
    periods: list[tuple[Bucket, SchemeVersion | None]]


def local_days(bucket: Bucket, tz: ZoneInfo) -> tuple[date, date]:
    """First and last local day a bucket covers (a night shift is dated by its start)."""
    first = bucket.start.astimezone(tz).date()
    if bucket.shift is not None:
        return first, first
    last = (bucket.end.astimezone(tz) - timedelta(microseconds=1)).date()
    return first, last


def check_scope(principal: Principal, versions: list[SchemeVersion]) -> None:
    """HR sees every scheme; a supervisor only schemes confined to its own lines."""
    if principal.has("hr:read") or principal.lines is None:
        return
    for v in versions:
        lines = v.spec.applies_to.lines
        if lines is None or not set(lines) <= principal.lines:
            raise HTTPException(
                status.HTTP_403_FORBIDDEN,
                "a supervisor may only read schemes confined to the lines it supervises",
            )


def _aggregate(metric: MetricDef, found: list[StoredValue]) -> float | None:
    if not found:
        return None
    if metric.aggregate == "sum":
        return sum(v.value for v in found)
    if metric.aggregate == "last":
        return max(found, key=lambda v: (v.period_end, v.received_at)).value
    return sum(v.value for v in found) / len(found)


def _provenance(found: list[StoredValue]) -> list[dict[str, Any]]:
    return [
        {
            "source": v.source,
            "reference": v.reference,
            "value": v.value,
            "period_start": v.period_start.isoformat(),
            "period_end": v.period_end.isoformat(),
            "received_at": v.received_at.isoformat(),
            "received_by": v.received_by,
        }
        for v in found
    ]


async def compute_scores(
    reader: InfluxReader,
    settings: Settings,
    registry: SchemeRegistry,
    externals: ExternalStore,
    principal: Principal,
    scheme: str,
    start: date,
    end: date,
    workers: list[str] | None = None,
    closes: PeriodBook | None = None,
    *,
    raw_ids: bool = False,
    roles: RoleBook | None = None,
) -> ScoreRun:
    """Scores per worker and period; a closed period's come from its snapshot.

    Without ``closes`` every period is computed live (what closing and the pending
    deltas of a closed period need). ``raw_ids`` skips pseudonymisation: a snapshot
    keeps the ids the store holds and is pseudonymised when read, like live scores.
    """
    versions = await anyio.to_thread.run_sync(registry.versions, scheme)
    if not versions:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no scheme named {scheme!r}")
    tz = ZoneInfo(settings.timezone)
    period = versions[-1].spec.period
    bucket_list = period_buckets(settings, period, start, end)
    periods = [(b, registry.in_force(versions, local_days(b, tz)[0])) for b in bucket_list]
    check_scope(principal, [v for _, v in periods if v is not None] or versions)
    pseudo = pseudonymiser(settings)
    shown = set(workers) if workers else None

    closed = (
        await anyio.to_thread.run_sync(closes.in_force, scheme, [b.label for b, _ in periods])
        if closes is not None
        else {}
    )
    scores: list[WorkerScore] = []
    for closure in closed.values():
        scores += closure.scores()
    for version, group in itertools.groupby(periods, key=lambda p: p[1]):
        if version is None:
            continue
        buckets = [b for b, _ in group if b.label not in closed]
        if buckets:
            scores += await _score_segment(reader, settings, externals, version, buckets, tz, roles)
    if pseudo.enabled and not raw_ids:
        for s in scores:
            s.worker = pseudo(s.worker)
    if shown is not None:
        scores = [s for s in scores if s.worker in shown]
    scores.sort(key=lambda s: (s.start, s.worker))
    return ScoreRun(scheme, scores, {v.version: v for v in versions}, periods)


async def _score_segment(
    reader: InfluxReader,
    settings: Settings,
    externals: ExternalStore,
    version: SchemeVersion,
    buckets: list[Bucket],
    tz: ZoneInfo,
    roles: RoleBook | None = None,
) -> list[WorkerScore]:
    spec = version.spec
    applies = spec.applies_to
    if applies.roles and roles is None:
        raise HTTPException(500, f"scheme {spec.scheme!r} applies to roles: no role store given")
    filters = Filters(
        lines=frozenset(applies.lines) if applies.lines else None,
        stations=frozenset(applies.stations) if applies.stations else None,
        workers=frozenset(applies.workers) if applies.workers else None,
    )
    # Months and weeks: one aggregate per period (no hourly groups to ship and fold);
    # shifts: one read grouped by hour, folded into the shift calendar.
    parts: list[tuple[list[Bucket], Group]] = (
        [(buckets, "shift")] if spec.period == "shift" else [([b], "period") for b in buckets]
    )
    try:
        datas = await asyncio.gather(
            *(fetch(reader, bl, g, filters, with_serials=spec.needs_fpy()) for bl, g in parts)
        )
    except InfluxError as err:
        raise HTTPException(status.HTTP_502_BAD_GATEWAY, str(err)) from err
    rows: list[dict[str, Any]] = []
    for (bl, g), data in zip(parts, datas, strict=True):
        # pandas off the event loop (the alert engine shares it).
        rows += await anyio.to_thread.run_sync(compute_rows, data, settings, bl, g, "worker")
    by_label = {b.label: b for b in buckets}
    days = {b.label: local_days(b, tz) for b in buckets}
    first, last = days[buckets[0].label][0], days[buckets[-1].label][1]
    ext_names = spec.externals()
    stored = await anyio.to_thread.run_sync(
        externals.values, ext_names, first, last, set(applies.workers) if applies.workers else None
    )
    ext: dict[tuple[str, str, str], list[StoredValue]] = {}
    for v in stored:
        for label, (d0, d1) in days.items():
            if d0 <= v.period_start and v.period_end <= d1:
                ext.setdefault((v.worker, label, v.metric), []).append(v)
    kpi_rows = {(r["worker"], r["bucket"]): r for r in rows if r["bucket"] != UNSCHEDULED}
    keys = set(kpi_rows)
    if not (applies.lines or applies.stations):
        # Workers with only external values are listed (insufficient_data) when the scheme
        # is not confined to lines: a line-bound scheme lists only who worked on its lines,
        # so a supervisor never sees workers from other lines through external values.
        keys |= {(w, label) for (w, label, _) in ext}
    if applies.roles:
        assert roles is not None
        first_days = [d0 for d0, _ in days.values()]
        holders = await anyio.to_thread.run_sync(roles.holders, applies.roles, first_days)
        keys = {(w, label) for (w, label) in keys if w in holders[days[label][0]]}
    out: list[WorkerScore] = []
    for worker, label in sorted(keys):
        row = kpi_rows.get((worker, label), {})
        values: dict[str, float | None] = {}
        provenance: dict[str, list[dict[str, Any]]] = {}
        for m in spec.metrics:
            if m.source == "measured":
                assert m.measure is not None
                values[m.name] = measured_value(m.measure, row) if row else None
                provenance[m.name] = [{"source": "measured", "formula": MEASURED[m.measure]}]
            else:
                assert m.external is not None
                found = ext.get((worker, label, m.external), [])
                values[m.name] = _aggregate(m, found)
                provenance[m.name] = _provenance(found)
        hours = measured_value("effective_hours", row) or 0.0  # the registry's formula
        units = int(row.get("units_total", 0))
        bucket = by_label[label]
        d0, d1 = days[label]
        out.append(
            WorkerScore(
                worker=worker,
                period=label,
                start=bucket.start,
                end=bucket.end,
                first_day=d0,
                last_day=d1,
                scheme=spec.scheme,
                version=version.version,
                result=score(spec, values, hours, units, provenance),
                effective_hours=hours,
                units=units,
                measured=_measured(row),
            )
        )
    return out


def _measured(row: dict[str, Any]) -> dict[str, Any]:
    """The KPI inputs a score shows (and a close freezes); ``cases`` only when an approved
    case changed them, so snapshots of periods without cases keep their exact form."""
    if not row:
        return {}
    out = {k: row.get(k) for k in EVIDENCE_FIELDS}
    if row.get("cases"):
        out["cases"] = row["cases"]
    return out
