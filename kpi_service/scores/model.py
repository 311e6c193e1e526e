"""A KPI scheme version: what HR and line managers agreed on, validated before it is stored.

A scheme (by name) has numbered versions, each in force from its ``effective_from`` day
(the first day of a period) until the next version's. A period is always scored by the
version in force on its first day, so adding a version never changes an earlier period.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from kpi_service.kpi.metrics import METRICS

Name = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:\-]*$", max_length=64)]
Period = Literal["month", "week", "shift"]
Finite = Annotated[float, Field(allow_inf_nan=False, ge=-1e12, le=1e12)]

MEASURED: dict[str, str] = {name: m.formula for name, m in METRICS.items()}
"""Measured metrics a scheme may use, with their formulas: the KPI metric registry."""


class Step(BaseModel):
    """Reaching ``at`` (at least, or at most when lower is better) earns ``points``."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    at: Finite
    points: float = Field(ge=0, le=100, allow_inf_nan=False)


class MetricDef(BaseModel):
    """One indicator: where its value comes from, how it is scored and how much it weighs."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    name: Name = Field(description="The indicator's name within the scheme.")
    source: Literal["measured", "external"]
    measure: str | None = Field(
        None, description=f"Measured metric (source=measured): one of {sorted(MEASURED)}."
    )
    external: Name | None = Field(
        None, description="External metric name (source=external), as sent to /external-metrics."
    )
    aggregate: Literal["mean", "sum", "last"] = Field(
        "mean", description="How several external values in one period combine."
    )
    direction: Literal["higher", "lower"] = "higher"
    target: Finite = Field(description="Value earning full points.")
    floor: Finite = Field(description="Value earning 0 points.")
    rule: Literal["linear", "steps"] = Field(
        "linear", description="linear: between floor and target, capped; steps: see steps."
    )
    steps: tuple[Step, ...] = ()
    weight: float = Field(gt=0, le=100, allow_inf_nan=False)

    @model_validator(mode="after")
    def _consistent(self) -> MetricDef:
        if self.source == "measured":
            if self.measure not in MEASURED:
                raise ValueError(
                    f"metric {self.name!r}: unknown measured metric {self.measure!r}; "
                    f"known: {', '.join(sorted(MEASURED))}"
                )
            if self.external is not None:
                raise ValueError(f"metric {self.name!r}: a measured metric has no 'external'")
        elif self.external is None or self.measure is not None:
            raise ValueError(f"metric {self.name!r}: an external metric names 'external' only")
        if self.direction == "higher" and not self.target > self.floor:
            raise ValueError(f"metric {self.name!r}: higher is better, so target > floor")
        if self.direction == "lower" and not self.target < self.floor:
            raise ValueError(f"metric {self.name!r}: lower is better, so target < floor")
        if self.rule == "steps":
            if not self.steps:
                raise ValueError(f"metric {self.name!r}: rule 'steps' needs steps")
            ats = [s.at for s in self.steps]
            pts = [s.points for s in self.steps]
            ordered = ats == sorted(ats) if self.direction == "higher" else ats == sorted(ats)[::-1]
            if not ordered or len(set(ats)) != len(ats) or pts != sorted(pts):
                raise ValueError(
                    f"metric {self.name!r}: steps go from the worst value to the best, "
                    "each with more points"
                )
        elif self.steps:
            raise ValueError(f"metric {self.name!r}: steps are only for rule 'steps'")
        return self


class BandDef(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    name: Name
    min_score: float = Field(ge=0, le=100, allow_inf_nan=False)


class AppliesTo(BaseModel):
    """Whose work the scheme scores (None = no restriction); only work on these lines and
    stations counts towards the scheme's measured metrics."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    lines: tuple[Name, ...] | None = None
    stations: tuple[Name, ...] | None = None
    workers: tuple[Name, ...] | None = None
    roles: tuple[Name, ...] | None = Field(
        None,
        description="Only workers holding one of these roles on the period's first day "
        "(roles are recorded through /workers/{id}/roles).",
    )


class Evidence(BaseModel):
    """Minimum evidence for a score: below it the worker gets ``insufficient_data``."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    effective_hours: float = Field(0.0, ge=0, le=10_000, allow_inf_nan=False)
    units: int = Field(0, ge=0, le=10_000_000)


def _default_bands() -> tuple[BandDef, ...]:
    return (
        BandDef(name="excellent", min_score=90),
        BandDef(name="qualified", min_score=70),
        BandDef(name="to_improve", min_score=0),
    )


class SchemeSpec(BaseModel):
    """A scheme version as written in YAML or posted to the admin API."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    scheme: Name
    effective_from: date
    period: Period = "month"
    description: str = Field("", max_length=2000)
    applies_to: AppliesTo = AppliesTo()
    metrics: tuple[MetricDef, ...] = Field(min_length=1, max_length=50)
    bands: tuple[BandDef, ...] = Field(default_factory=_default_bands, min_length=1)
    min_evidence: Evidence = Evidence()
    inflation_threshold: float = Field(
        0.3, gt=0, le=1, description="Flag a period whose top-band share exceeds this."
    )

    @model_validator(mode="after")
    def _checked(self) -> SchemeSpec:
        total = sum(m.weight for m in self.metrics)
        if abs(total - 100) > 1e-9:
            weights = " + ".join(f"{m.name} {m.weight:g}" for m in self.metrics)
            raise ValueError(f"weights must add up to 100, not {total:g} ({weights})")
        names = [m.name for m in self.metrics]
        if len(set(names)) != len(names):
            raise ValueError("metric names must be unique within a scheme")
        mins = [b.min_score for b in self.bands]
        if mins != sorted(mins, reverse=True) or len(set(mins)) != len(mins):
            raise ValueError("bands go from the best down, each with a lower min_score")
        if mins[-1] != 0:
            raise ValueError("the last band starts at min_score 0 (every score has a band)")
        if len({b.name for b in self.bands}) != len(self.bands):
            raise ValueError("band names must be unique")
        if self.period == "month" and self.effective_from.day != 1:
            raise ValueError("a monthly scheme takes effect on the first day of a month")
        if self.period == "week" and self.effective_from.weekday() != 0:
            raise ValueError("a weekly scheme takes effect on a Monday")
        return self

    def externals(self) -> set[str]:
        return {m.external for m in self.metrics if m.external is not None}

    def needs_fpy(self) -> bool:
        return any(m.measure == "first_pass_yield" for m in self.metrics)


class SchemeVersion(BaseModel):
    """A stored version: the spec plus its number and who stored it when."""

    model_config = ConfigDict(frozen=True)
    version: int
    spec: SchemeSpec
    created_at: datetime
    created_by: str
