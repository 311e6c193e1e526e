"""Response models of the scheme, score and external-metric endpoints."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from pydantic import BaseModel, Field

from kpi_service.scores.external import ExternalValue
from kpi_service.scores.model import SchemeSpec

DECISION_AID = (
    "Decision aid for people, not an automatic decision: a score condenses the scheme's "
    "indicators for one period. Check the evidence (per-metric values, formulas, sources), "
    "the stations and the context (training, assignments, machine condition) first. "
    "Compare only workers scored by the same scheme."
)


class SchemeVersionOut(BaseModel):
    scheme: str
    version: int
    effective_from: date
    created_at: datetime
    created_by: str
    spec: SchemeSpec


class SchemeSummary(BaseModel):
    scheme: str
    period: str
    versions: list[int]
    in_force_from: list[date]


class MetricScoreOut(BaseModel):
    name: str
    source: str = Field(description="measured (from line data) or external (another system).")
    value: float | None = Field(description="Raw value for the period (None: no value).")
    target: float
    floor: float
    weight: float = Field(description="Percent of the composite (weights add up to 100).")
    points: float | None = Field(description="0..100 points for the value (rounded to 4).")
    contribution: float | None = Field(description="points * weight / 100 (rounded to 4).")
    formula: str = Field(description="The scoring arithmetic with this period's numbers.")
    provenance: list[dict[str, Any]] = Field(
        description="Measured: the formula; external: each value's source and reference."
    )


class ScoreOut(BaseModel):
    worker: str
    period: str = Field(description="Calendar period label (month YYYY-MM, week, shift).")
    start: datetime
    end: datetime
    scheme: str
    version: int = Field(description="The scheme version in force on the period's first day.")
    status: str = Field(description="scored, or insufficient_data (below minimum evidence).")
    score: float | None = Field(description="Composite 0..100, Σ contributions (rounded to 4).")
    band: str | None
    effective_hours: float
    units: int
    reasons: list[str] = Field(description="Why the data is insufficient (empty when scored).")
    metrics: list[MetricScoreOut]
    closed: str | None = Field(
        None,
        description="Content hash of the period close this score is frozen by; null while "
        "the period is open (computed from the data as it is now).",
    )


class ScorePage(BaseModel):
    items: list[ScoreOut]
    total: int
    limit: int
    offset: int
    timezone: str
    note: str = DECISION_AID


class ScoreEvidence(BaseModel):
    worker: str
    scores: list[ScoreOut]
    measured: list[dict[str, Any]] = Field(
        description="Per period, the KPI figures the measured metrics come from."
    )
    note: str = DECISION_AID


class BandShare(BaseModel):
    name: str
    min_score: float
    count: int
    share: float | None = Field(description="count / scored workers (None when nobody scored).")


class PeriodDistribution(BaseModel):
    period: str
    start: datetime
    end: datetime
    version: int | None
    scored: int
    insufficient_data: int
    bands: list[BandShare]
    histogram: list[int] = Field(
        description="Scored workers per 10-point bin: [0,10), [10,20) ... [90,100]."
    )
    top_band_share: float | None
    inflation_threshold: float | None
    inflated: bool = Field(description="The top band's share exceeds the scheme's threshold.")


class ScoreDistribution(BaseModel):
    scheme: str
    periods: list[PeriodDistribution]
    note: str = DECISION_AID


class ExternalBatch(BaseModel):
    values: list[ExternalValue] = Field(min_length=1, max_length=5000)


class ExternalResult(BaseModel):
    stored: int
    unchanged: int
    outcomes: list[str] = Field(description="Per value, in order: stored or unchanged.")
