"""The spread of one KPI across comparable workers: percentiles and rank bands.

A decision aid for people: it shows where a figure sits among peers on the same
lines/stations; it must never be used as an automatic decision about a person.
"""

from __future__ import annotations

import math
from datetime import date
from typing import TYPE_CHECKING, Annotated, Literal

import numpy as np
from fastapi import APIRouter, Query

from kpi_service.api.deps import InfluxDep, KpiReader, SettingsDep
from kpi_service.api.models import BandOut, Distribution, NameList
from kpi_service.api.queries import KpiQuery, run_kpis
from kpi_service.core.config import Band
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
    min_effective_hours: Annotated[float, Query(ge=0, le=10_000)] = 1.0,
) -> Distribution:
    q = KpiQuery(
        start, end, "period", "worker", site, line, station, None, METRICS[metric].needs_serials
    )
    rows, _, bucket_list = await run_kpis(reader, settings, principal, q)
    values = [
        (str(r["worker"]), float(r[metric]))
        for r in rows
        if r[metric] is not None
        and math.isfinite(r[metric])
        and r["effective_s"] >= min_effective_hours * 3600
    ]
    nums = np.array([v for _, v in values], dtype=float)
    percentiles = (
        {f"p{p}": float(np.percentile(nums, p)) for p in (10, 25, 50, 75, 90)} if values else {}
    )
    return Distribution(
        metric=metric,
        start=bucket_list[0].start,
        end=bucket_list[-1].end,
        workers=len(values),
        percentiles=percentiles,
        bands=band_split(values, settings.bands, METRICS[metric].lower_is_better),
        note=NOTE,
    )
