"""The spread of one KPI across comparable workers: percentiles and rank bands.

A decision aid for people: it shows where a figure sits among peers on the same
lines/stations; it must never be used as an automatic decision about a person.
"""

from __future__ import annotations

import math
from datetime import date
from typing import TYPE_CHECKING, Annotated, Any, Literal

import numpy as np
from fastapi import APIRouter, Query

from kpi_service.api.deps import InfluxDep, KpiReader, SettingsDep
from kpi_service.api.models import (
    BandOut,
    ComparableGroup,
    Distribution,
    HistogramBin,
    NameList,
    edge,
)
from kpi_service.api.queries import KpiQuery, run_kpis
from kpi_service.core.config import Band, Standard
from kpi_service.kpi.compute import line_cycles
from kpi_service.kpi.metrics import METRICS

router = APIRouter(tags=["distribution"])

NOTE = (
    "Decision aid for people, not an automatic decision: bands rank comparable workers "
    "by one figure over one period. Check the evidence endpoint, the stations and the "
    "context (training, assignments, machine condition) before drawing any conclusion."
)
if TYPE_CHECKING:
    MetricName = str
else:
    MetricName = Literal[tuple(METRICS)]
    """Every registry metric can be ranked; the registry says which way is better."""


def band_split(
    values: list[tuple[str, float]], bands: list[Band], lower_is_better: bool
) -> list[BandOut]:
    """Best first; band i ends at round(n * cumulative fraction) so every worker is in one band."""
    ranked = sorted(values, key=lambda kv: (kv[1] if lower_is_better else -kv[1], kv[0]))
    out: list[BandOut] = []
    begin, cumulative = 0, 0.0
    for band in bands:
        cumulative += band.fraction
        stop = len(ranked) if band is bands[-1] else round(len(ranked) * cumulative)
        members = ranked[begin:stop]
        nums = [v for _, v in members]
        out.append(
            BandOut(
                name=band.name,
                fraction=band.fraction,
                count=len(members),
                min=min(nums) if nums else None,
                max=max(nums) if nums else None,
                workers=[w for w, _ in members],
            )
        )
        begin = stop
    return out


PERCENTILES = (10, 25, 50, 75, 90)


def percentiles(nums: list[float], min_workers: int) -> dict[str, float]:
    if len(nums) < min_workers or not nums:
        return {}
    array = np.array(nums, dtype=float)
    return {f"p{p}": edge(float(np.percentile(array, p))) for p in PERCENTILES}


def histogram(nums: list[float]) -> list[HistogramBin]:
    """About sqrt(n) equal bins (at most 10), edges rounded; one bin when all are equal."""
    if not nums:
        return []
    bins = min(10, max(1, math.ceil(math.sqrt(len(nums)))))
    counts, edges = np.histogram(np.array(nums, dtype=float), bins=bins)
    return [
        HistogramBin(lo=edge(float(edges[i])), hi=edge(float(edges[i + 1])), count=int(c))
        for i, c in enumerate(counts)
    ]


def comparable_groups(
    rows: list[dict[str, Any]],
    values: list[tuple[str, float]],
    metric: str,
    standards: list[Standard],
    min_workers: int,
) -> list[ComparableGroup]:
    """Split the ranked workers by their main station's standard cycle. % of standard is
    already relative to each station's standard, so it forms one group."""
    place = {str(r["worker"]): (r.get("line"), r.get("station")) for r in rows}
    normalised = metric in ("pct_of_standard", "pct_of_standard_gross")
    groups: dict[float | None, list[tuple[str, float]]] = {}
    stations: dict[float | None, set[str]] = {}
    for worker, value in values:
        line, station = place.get(worker, (None, None))
        cycle = None
        if not normalised and line is not None and station is not None:
            cycle = line_cycles(standards, str(line)).get(str(station))
        groups.setdefault(cycle, []).append((worker, value))
        stations.setdefault(cycle, set()).add(f"{line}/{station}")
    out = []
    for cycle, members in sorted(groups.items(), key=lambda kv: (kv[0] is None, kv[0] or 0)):
        nums = [v for _, v in members]
        out.append(
            ComparableGroup(
                standard_cycle_s=cycle, stations=sorted(stations[cycle]), workers=len(members),
                percentiles=percentiles(nums, min_workers), histogram=histogram(nums),
            )
        )  # fmt: skip
    return out


@router.get("/distribution", summary="Percentiles and bands of one KPI across comparable workers")
async def distribution(
    principal: KpiReader,
    settings: SettingsDep,
    reader: InfluxDep,
    start: date,
    end: date,
    metric: MetricName = "pct_of_standard",
    site: NameList = None,
    line: NameList = None,
    station: NameList = None,
    min_effective_hours: Annotated[
        float | None,
        Query(ge=0, le=10_000, description="Default: settings distribution_min_effective_hours."),
    ] = None,
) -> Distribution:
    hours = settings.distribution_min_effective_hours
    hours = hours if min_effective_hours is None else min_effective_hours
    q = KpiQuery(
        start, end, "period", "worker", site, line, station, None, METRICS[metric].needs_serials
    )
    rows, _, bucket_list = await run_kpis(reader, settings, principal, q)
    values = [
        (str(r["worker"]), float(r[metric]))
        for r in rows
        if r[metric] is not None and math.isfinite(r[metric]) and r["effective_s"] >= hours * 3600
    ]
    nums = [v for _, v in values]
    n_min = settings.distribution_min_workers
    groups = comparable_groups(rows, values, metric, settings.standards, n_min)
    warnings = []
    if len(values) < n_min:
        warnings.append(
            f"only {len(values)} comparable worker(s), fewer than {n_min}: the figures single "
            "people out and say little about a spread"
        )
    if len(groups) > 1:
        warnings.append(
            f"the workers' main stations have {len(groups)} different standards: their "
            f"{metric} figures are not comparable as one group; read 'groups', or narrow the "
            "request to one line or station"
        )
    bands = band_split(values, settings.bands, METRICS[metric].lower_is_better)
    for band in bands:
        band.min, band.max = edge(band.min), edge(band.max)
    return Distribution(
        metric=metric,
        start=bucket_list[0].start,
        end=bucket_list[-1].end,
        workers=len(values),
        # The whole's percentiles stay for callers that read them; the warnings say when
        # they should not be trusted.
        percentiles=percentiles(nums, 1),
        bands=bands,
        note=NOTE,
        min_workers=n_min,
        min_effective_hours=hours,
        histogram=histogram(nums),
        groups=groups,
        warnings=warnings,
    )
