"""Scoring arithmetic: metric value → points → weighted contribution → composite → band.

Pure functions over plain numbers so the rules can be checked by hand; the API shows the
same arithmetic as text (``explain``). Scores are rounded to ``DIGITS`` decimals only in
the result, never in between.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from kpi_service.kpi import metrics as registry
from kpi_service.scores.model import BandDef, MetricDef, SchemeSpec

DIGITS = 4


def measured_value(measure: str, row: dict[str, Any]) -> float | None:
    """A measured metric of one KPI row of ``kpi_service.kpi.compute``, computed by the
    metric registry from the row's sums (None = undefined)."""
    value = registry.metric(measure).compute(registry.Sums.of_row(row))
    return None if value is None else float(value)


def metric_points(value: float, metric: MetricDef) -> float:
    """0..100 points for ``value`` under the metric's rule."""
    if metric.rule == "steps":
        higher = metric.direction == "higher"
        reached = [s.points for s in metric.steps if (value >= s.at if higher else value <= s.at)]
        return max(reached, default=0.0)
    share = (value - metric.floor) / (metric.target - metric.floor)
    return 100.0 * min(1.0, max(0.0, share))


def band_of(score: float, bands: tuple[BandDef, ...]) -> str:
    for band in bands:
        if score >= band.min_score:
            return band.name
    return bands[-1].name


@dataclass
class MetricResult:
    name: str
    source: str
    value: float | None
    target: float
    floor: float
    weight: float
    points: float | None
    contribution: float | None
    formula: str
    provenance: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class ScoreResult:
    status: str  # "scored" | "insufficient_data"
    score: float | None
    band: str | None
    metrics: list[MetricResult]
    reasons: list[str]


def _explain(metric: MetricDef, value: float, points: float) -> str:
    if metric.rule == "steps":
        steps = ", ".join(f"{'≥' if metric.direction == 'higher' else '≤'}{s.at:g}→{s.points:g}"
                          for s in metric.steps)  # fmt: skip
        return f"steps [{steps}] at {value:.6g} = {points:.6g} points"
    return (
        f"100 * clip(({value:.6g} - {metric.floor:g}) / ({metric.target:g} - {metric.floor:g}), "
        f"0, 1) = {points:.6g} points"
    )


def score(
    spec: SchemeSpec,
    values: dict[str, float | None],
    effective_hours: float,
    units: int,
    provenance: dict[str, list[dict[str, Any]]] | None = None,
) -> ScoreResult:
    """The composite for one worker and period; ``values`` by the scheme's metric names."""
    reasons: list[str] = []
    need = spec.min_evidence
    if effective_hours < need.effective_hours:
        reasons.append(f"effective hours {effective_hours:.4g} < minimum {need.effective_hours:g}")
    if units < need.units:
        reasons.append(f"units {units} < minimum {need.units}")
    results: list[MetricResult] = []
    contributions: list[float] = []  # unrounded, for the total
    for metric in spec.metrics:
        value = values.get(metric.name)
        origin = (provenance or {}).get(metric.name, [])
        if value is None:
            reasons.append(f"{metric.name}: no value for this period")
            results.append(
                MetricResult(metric.name, metric.source, None, metric.target, metric.floor,
                             metric.weight, None, None, "no value", origin)
            )  # fmt: skip
            continue
        points = metric_points(value, metric)
        contribution = points * metric.weight / 100.0
        contributions.append(contribution)
        formula = _explain(metric, value, points)
        formula += f"; * weight {metric.weight:g} / 100 = {contribution:.6g}"
        results.append(
            MetricResult(metric.name, metric.source, value, metric.target, metric.floor,
                         metric.weight, round(points, DIGITS), round(contribution, DIGITS),
                         formula, origin)
        )  # fmt: skip
    if reasons:
        return ScoreResult("insufficient_data", None, None, results, reasons)
    total = sum(contributions)
    shown = round(total, DIGITS)
    return ScoreResult("scored", shown, band_of(shown, spec.bands), results, [])
