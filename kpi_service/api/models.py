"""Response models of the HR API (with OpenAPI examples)."""

from __future__ import annotations

import math
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import Query
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    StringConstraints,
    create_model,
    field_serializer,
    model_validator,
)

from kpi_service.kpi.metrics import METRICS, Metric

NameParam = Annotated[
    str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:\-]*$", max_length=64)
]
NameList = Annotated[list[NameParam] | None, Query(max_length=50)]

_EXAMPLE_ROW: dict[str, Any] = {
    "worker": "W0042",
    "bucket": "2026-03-14 night",
    "start": "2026-03-14T21:00:00Z",
    "end": "2026-03-15T05:00:00Z",
    "shift": "night",
    "planned_s": 27000.0,
    "units_good": 812,
    "units_defect": 9,
    "units_total": 821,
    "defect_rate": 0.01096,
    "defects_by_code": {"scratch": 6, "dent": 3},
    "work_s": 27000.0,
    "effective_s": 25200.0,
    "down_s": 1800.0,
    "down_by_reason": {"fault": 1800.0},
    "good_per_work_hour": 108.27,
    "good_per_effective_hour": 116.0,
    "standard_s": 24360.0,
    "standard_effective_s": 25200.0,
    "pct_of_standard": 96.67,
    "pct_of_standard_gross": 90.22,
    "standard_work_s": 27000.0,
    "serials": 0,
    "serials_passed": 0,
    "first_pass_yield": None,
    "quality_rate": 0.98904,
    "effective_hours": 7.0,
    "defect_rate_pct": 1.1,
    "quality_rate_pct": 98.9,
    "first_pass_yield_pct": None,
}

PCT_COMPANIONS: dict[str, str] = {
    m.name: f"{m.name}_pct" for m in METRICS.values() if m.unit == "ratio"
}
"""The unit convention (docs/kpi-service.md, "Units"): a rate is a fraction (0..1) under its
own name, and its ``*_pct`` companion is the same rate in percent; a figure that is a
percentage by definition says so in its name (``pct_of_standard``)."""
EDGE_DIGITS = 7
"""Floats leave the API rounded to this many significant digits: float noise such as
``0.30000000000000004`` or ``5.555555555555555`` stays inside, while a figure keeps more
precision than any use of it needs (relative error under 5e-7); ``*_pct`` companions are
rounded to 2 decimals."""
PCT_DIGITS = 2


def edge(value: Any) -> Any:
    if isinstance(value, float):
        return float(f"{value:.{EDGE_DIGITS}g}") if math.isfinite(value) else value
    if isinstance(value, dict):
        return {k: edge(v) for k, v in value.items()}
    return value


class KpiRowBase(BaseModel):
    """KPIs of one entity (worker, station, line or site) over one calendar bucket: the
    sums; the metrics are added from the registry (``kpi_service.kpi.metrics``)."""

    model_config = ConfigDict(json_schema_extra={"examples": [_EXAMPLE_ROW]})

    site: str | None = None
    line: str | None = None
    station: str | None = None
    worker: str | None = None
    bucket: str = Field(description="Label: period, local hour, 'YYYY-MM-DD shift', day, week.")
    start: datetime
    end: datetime
    shift: str | None = None
    planned_s: float | None = Field(None, description="Shift length less breaks (shifts only).")
    units_defect: int
    units_total: int
    defects_by_code: dict[str, float]
    work_s: float = Field(description="Seconds logged in.")
    effective_s: float = Field(description="work_s less machine down time the worker does not own.")
    down_s: float = Field(description="Excused machine down seconds (not held against the worker).")
    down_by_reason: dict[str, float]
    standard_s: float = Field(description="Sum of good units * standard cycle time.")
    standard_effective_s: float = Field(
        description="Effective seconds at stations with a standard."
    )
    standard_work_s: float = Field(
        0.0, description="Logged-in seconds at stations with a standard."
    )
    serials: int = Field(description="Distinct unit serials seen (0 when not requested/tracked).")
    serials_passed: int = Field(0, description="Serials whose first unit event was good.")
    stations: list[str] | None = Field(
        None,
        description="Worker rows: every 'line/station' the worker was at in the bucket, the "
        "main one first (most logged-in time, then most units); line and station are the "
        "main one's.",
    )

    @model_validator(mode="before")
    @classmethod
    def _percent_companions(cls, data: Any) -> Any:
        """Each rate's ``*_pct`` companion, from the fraction (never computed twice)."""
        if isinstance(data, dict) and any(
            n in data and p not in data for n, p in PCT_COMPANIONS.items()
        ):
            data = dict(data)
            for name, pct in PCT_COMPANIONS.items():
                value = data.get(name)
                data.setdefault(pct, None if value is None else round(100.0 * value, PCT_DIGITS))
        return data

    # No return annotation on purpose: with one, the OpenAPI schema of every field would
    # become that annotation; without, each field keeps its own schema.
    @field_serializer("*", mode="wrap")
    def _rounded(self, value: Any, handler: SerializerFunctionWrapHandler):  # type: ignore[no-untyped-def]
        """Rounding at the edge: what is computed keeps full precision until it leaves."""
        return edge(handler(value))


def _metric_field(m: Metric) -> Any:
    """A metric's row field: a count is a required int, a ratio None when undefined."""
    text = f"{m.explanation} Formula: {m.formula} ({m.unit}; {m.direction} is better)."
    if m.integer:
        return (int, Field(description=text))
    return (float | None, Field(description=text))


if TYPE_CHECKING:
    KpiRow = KpiRowBase
else:
    KpiRow = create_model(
        "KpiRow",
        __base__=KpiRowBase,
        __doc__=KpiRowBase.__doc__,
        **{m.name: _metric_field(m) for m in METRICS.values()},
        **{
            pct: (
                float | None,
                Field(None, description=f"{name} in percent (100 * {name}), 2 decimals."),
            )
            for name, pct in PCT_COMPANIONS.items()
        },
    )


class KpiPage(BaseModel):
    items: list[KpiRow]
    total: int
    limit: int
    offset: int
    source: str = Field(description="'rollup' (hourly aggregates) or 'raw' (event points).")
    timezone: str
    formulas: dict[str, str]


class DataQuality(BaseModel):
    unobserved_s: float = Field(
        description="Seconds in which a station the worker was logged in at could not be "
        "observed and the device could not tell afterwards what happened (gap events)."
    )
    unobserved_spans: int
    note: str | None = Field(
        default=None, description="What the gaps mean for these figures, when there are any."
    )


class EvidencePage(BaseModel):
    worker: str
    measurement: str
    start: datetime
    end: datetime
    kpi: KpiRow | None = Field(description="The worker's figures for the period, over all events.")
    explained: dict[str, str] = Field(description="Each formula with this period's numbers.")
    events: list[dict[str, Any]] = Field(
        description="One row per event point: device, agent, boot, seq, time (ns), counts."
    )
    data_quality: DataQuality
    total: int
    limit: int
    offset: int


class BandOut(BaseModel):
    name: str
    fraction: float
    count: int
    min: float | None
    max: float | None
    workers: list[str]


class HistogramBin(BaseModel):
    lo: float = Field(description="Lower edge (inclusive).")
    hi: float = Field(description="Upper edge (exclusive; inclusive for the last bin).")
    count: int


class ComparableGroup(BaseModel):
    """Workers whose figures may be set side by side: their main stations share one
    standard (or, for % of standard, which the standard already normalises, any standard)."""

    standard_cycle_s: float | None = Field(
        description="The main stations' standard cycle; None: no standard, or any standard "
        "for % of standard."
    )
    stations: list[str] = Field(description="Main stations ('line/station') in the group.")
    workers: int
    percentiles: dict[str, float] = Field(description="Empty below the minimum n.")
    histogram: list[HistogramBin]


class Distribution(BaseModel):
    metric: str
    start: datetime
    end: datetime
    workers: int = Field(description="Comparable workers (enough effective time, metric defined).")
    percentiles: dict[str, float]
    bands: list[BandOut]
    note: str
    min_workers: int = Field(0, description="The minimum n (settings) below which it warns.")
    min_effective_hours: float = Field(0.0, description="Workers with less were left out.")
    histogram: list[HistogramBin] = Field(default_factory=list)
    groups: list[ComparableGroup] = Field(
        default_factory=list,
        description="The same workers split into comparable groups (same standard); read "
        "these when the warnings say the whole mixes standards.",
    )
    warnings: list[str] = Field(default_factory=list)


class ShiftOut(BaseModel):
    label: str
    shift: str | None
    start: datetime
    end: datetime
    planned_s: float | None


class AuditOut(BaseModel):
    id: int
    at: datetime
    principal: str = Field(
        description="Key name; revoked:NAME / expired:NAME, invalid-key or anonymous if refused."
    )
    method: str
    path: str
    query: dict[str, list[str]] = Field(description="Every parameter sent, repeats in order.")
    status: int | None = Field(description="HTTP status of the answer (CLI actions: exit code).")
