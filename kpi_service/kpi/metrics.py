"""The KPI metrics: one entry per metric, read by everything that shows, ranks or judges one.

A metric is computed from the *sums* of one entity and period (good and defect units,
worked, effective and standard seconds, serials) and nothing else, so the same entry
serves the KPI rows (``kpi.compute``), the evidence explanations, the distribution's
metric list and direction, the schemes' measured metrics and targets, and the alert
windows (which build the same sums over a sliding window). Adding a metric is one
``Metric`` in ``METRICS`` (docs/decisions.md shows how); ``tests/kpi/test_metrics.py``
checks that every entry reaches every consumer.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

Direction = Literal["higher", "lower"]


@dataclass(slots=True)
class Sums:
    """What one entity added up over one period (or one alert window)."""

    units_good: float = 0.0
    units_defect: float = 0.0
    work_s: float = 0.0
    effective_s: float = 0.0
    down_s: float = 0.0
    standard_s: float = 0.0
    """Σ good units x standard cycle time, over stations with a standard."""
    standard_effective_s: float = 0.0
    """Effective seconds at stations with a standard."""
    standard_work_s: float = 0.0
    """Logged-in seconds at stations with a standard."""
    serials: float = 0.0
    passed: float = 0.0
    """Serials whose first unit event was good."""

    @property
    def units_total(self) -> float:
        return self.units_good + self.units_defect

    @classmethod
    def of_row(cls, row: Mapping[str, Any]) -> Sums:
        """The sums a KPI row (``kpi.compute``) carries; absent, None or NaN counts as zero."""
        get = row.get
        return cls(
            _number(get("units_good")),
            _number(get("units_defect")),
            _number(get("work_s")),
            _number(get("effective_s")),
            _number(get("down_s")),
            _number(get("standard_s")),
            _number(get("standard_effective_s")),
            _number(get("standard_work_s")),
            _number(get("serials")),
            _number(get("serials_passed")),
        )


def _number(value: Any) -> float:
    if value is None:
        return 0.0
    number = float(value)
    return 0.0 if number != number else number  # NaN: a part of the merge had no rows


def ratio(a: float, b: float, scale: float = 1.0) -> float | None:
    """``scale * a / b``, undefined (None) when there is nothing to divide by."""
    return a * scale / b if b > 0 else None


def fmt(value: float | None) -> str:
    """A number as the evidence shows it: whole numbers exact, others to 6 significant
    digits, n/a when undefined."""
    if value is None:
        return "n/a"
    if float(value).is_integer() and abs(value) < 1e15:
        return str(int(value))
    return f"{value:.6g}"


@dataclass(frozen=True, slots=True)
class Metric:
    """One KPI metric: what it is called, how it is computed and how to read it."""

    name: str
    formula: str
    """The formula in terms of the sums (shown with every KPI page)."""
    explanation: str
    """What the figure says, for the people reading it (API descriptions, docs)."""
    direction: Direction
    """Which way is better: ranks the distribution, orients targets and alert thresholds."""
    unit: str
    compute: Callable[[Sums], float | None]
    numbers: Callable[[Sums], str]
    """The formula with one period's numbers substituted (evidence)."""
    integer: bool = False
    """A count (rows carry an int)."""
    additive: bool = False
    """Grows with time worked (a count or duration): progress projects it to the period's
    end; ratios are projected as they stand."""
    needs_serials: bool = False
    """Only defined when serials were fetched (first pass yield)."""

    def explain(self, sums: Sums) -> str:
        """``<formula with numbers> = <value>``, for a human to recompute."""
        return f"{self.numbers(sums)} = {fmt(self.compute(sums))}"

    @property
    def lower_is_better(self) -> bool:
        return self.direction == "lower"


def _defect_rate(s: Sums) -> float | None:
    return ratio(s.units_defect, s.units_total)


def _quality_rate(s: Sums) -> float | None:
    rate = _defect_rate(s)
    return None if rate is None else 1.0 - rate


def _first_pass_yield(s: Sums) -> float | None:
    return ratio(s.passed, s.serials)


_ALL = (
    Metric(
        name="defect_rate",
        formula="units_defect / (units_good + units_defect)",
        explanation="Share of counted units that were defective.",
        direction="lower",
        unit="ratio",
        compute=_defect_rate,
        numbers=lambda s: f"{fmt(s.units_defect)} / {fmt(s.units_total)}",
    ),
    Metric(
        name="quality_rate",
        formula="1 - units_defect / (units_good + units_defect)",
        explanation="Share of counted units that were good (1 - defect rate).",
        direction="higher",
        unit="ratio",
        compute=_quality_rate,
        numbers=lambda s: f"1 - {fmt(s.units_defect)} / {fmt(s.units_total)}",
    ),
    Metric(
        name="good_per_work_hour",
        formula="units_good / (work_s / 3600)",
        explanation="Good units per logged-in hour (machine down time included).",
        direction="higher",
        unit="units/h",
        compute=lambda s: ratio(s.units_good, s.work_s, 3600.0),
        numbers=lambda s: f"{fmt(s.units_good)} / ({fmt(s.work_s)} / 3600)",
    ),
    Metric(
        name="good_per_effective_hour",
        formula="units_good / (effective_s / 3600)",
        explanation="Good units per effective hour (down time the worker does not own excluded).",
        direction="higher",
        unit="units/h",
        compute=lambda s: ratio(s.units_good, s.effective_s, 3600.0),
        numbers=lambda s: f"{fmt(s.units_good)} / ({fmt(s.effective_s)} / 3600)",
    ),
    Metric(
        name="pct_of_standard",
        formula="100 * Σ(units_good * standard_cycle_s) / Σ effective_s, "
        "over stations with a standard",
        explanation="Standard time earned per effective time, in percent: 100 = at standard.",
        direction="higher",
        unit="%",
        compute=lambda s: ratio(s.standard_s, s.standard_effective_s, 100.0),
        numbers=lambda s: f"100 * {fmt(s.standard_s)} / {fmt(s.standard_effective_s)}",
    ),
    Metric(
        name="pct_of_standard_gross",
        formula="100 * Σ(units_good * standard_cycle_s) / Σ work_s, "
        "over stations with a standard (machine down time held against the worker)",
        explanation="Standard time earned per logged-in time, in percent.",
        direction="higher",
        unit="%",
        compute=lambda s: ratio(s.standard_s, s.standard_work_s, 100.0),
        numbers=lambda s: f"100 * {fmt(s.standard_s)} / {fmt(s.standard_work_s)}",
    ),
    Metric(
        name="first_pass_yield",
        formula="serials whose first unit event was good / distinct serials",
        explanation="Share of serials good the first time (rework is no pass).",
        direction="higher",
        unit="ratio",
        compute=_first_pass_yield,
        numbers=lambda s: f"{fmt(s.passed)} / {fmt(s.serials)}",
        needs_serials=True,
    ),
    Metric(
        name="units_good",
        formula="Σ good units",
        explanation="Good units counted.",
        direction="higher",
        unit="units",
        compute=lambda s: int(s.units_good),
        numbers=lambda s: "Σ good units",
        integer=True,
        additive=True,
    ),
    Metric(
        name="effective_hours",
        formula="effective_s / 3600",
        explanation="Effective hours worked (logged in, less down time the worker does not own).",
        direction="higher",
        unit="h",
        compute=lambda s: s.effective_s / 3600.0,
        numbers=lambda s: f"{fmt(s.effective_s)} / 3600",
        additive=True,
    ),
)

METRICS: dict[str, Metric] = {m.name: m for m in _ALL}
"""Every KPI metric by name, in the order pages list them."""

SUM_FORMULAS: dict[str, str] = {
    "effective_s": "work_s - machine down time the worker does not own (down_s)",
}
"""Formulas of derived sums that are not metrics themselves (shown with the metrics)."""

FORMULAS: dict[str, str] = {**{m.name: m.formula for m in _ALL}, **SUM_FORMULAS}
"""What ``GET /kpis`` and the worker pages show as ``formulas``."""


def metric(name: str) -> Metric:
    """The metric called ``name``; ``KeyError`` names the known ones."""
    try:
        return METRICS[name]
    except KeyError:
        raise KeyError(f"unknown metric {name!r}; known: {', '.join(sorted(METRICS))}") from None


def values(sums: Sums) -> dict[str, float | None]:
    """Every metric of one set of sums (first pass yield is None when no serials were read)."""
    return {m.name: m.compute(sums) for m in _ALL}
