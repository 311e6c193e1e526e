"""Alert rules: what to watch, where, over which window, and when to raise, clear and escalate.

Rules live in a YAML file (``rules: [...]``, plus named ``channels``) that is validated
as a whole at load time; an error names the file and the field, so a typo never
silently disables an alert. Percentages are written as percent (``warning: 5`` = 5 %),
time-based metrics in minutes, durations in seconds.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    model_validator,
)

from kpi_service.kpi.metrics import METRICS, Sums
from takt_common.errors import TaktError
from takt_wire.errors import describe_validation_error

Metric = Literal["defect_rate", "efficiency", "no_output", "down_time"]
Scope = Literal["worker", "station", "line"]
RuleId = Annotated[
    str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
]

KPI_METRICS: dict[Metric, str] = {"defect_rate": "defect_rate", "efficiency": "pct_of_standard"}
"""Alert metrics that are KPI metrics over a sliding window: the registry
(``kpi_service.kpi.metrics``) gives their computation, direction and unit."""


def _shown_in_percent(metric: Metric) -> bool:
    """Ratios are written and shown as percent in rules (``warning: 5`` = 5 %)."""
    return metric in KPI_METRICS and METRICS[KPI_METRICS[metric]].unit == "ratio"


def kpi_value(metric: Metric, sums: Sums) -> float | None:
    """An alert's KPI figure over a window's sums, on the rule's scale (ratios in %)."""
    value = METRICS[KPI_METRICS[metric]].compute(sums)
    if value is None or not _shown_in_percent(metric):
        return value
    return 100.0 * value


HIGHER_IS_WORSE: dict[Metric, bool] = {
    **{m: METRICS[name].lower_is_better for m, name in KPI_METRICS.items()},
    "no_output": True,
    "down_time": True,
}
UNITS: dict[Metric, str] = {
    **{m: "%" if _shown_in_percent(m) else METRICS[n].unit for m, n in KPI_METRICS.items()},
    "no_output": "min",
    "down_time": "min",
}


class RulesError(TaktError, ValueError):
    """The rules file is invalid; the message names the file and the field."""


class Window(BaseModel):
    """Event-time window: the last N minutes or the last N units (exactly one)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    minutes: float | None = Field(default=None, gt=0, le=24 * 60)
    units: int | None = Field(default=None, ge=1, le=100_000)

    @model_validator(mode="after")
    def _one(self) -> Window:
        if (self.minutes is None) == (self.units is None):
            raise ValueError("give exactly one of minutes or units")
        return self


class Rule(BaseModel):
    """One threshold rule; see docs/alerts.md for the semantics of each field."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: RuleId
    metric: Metric
    scope: Scope
    window: Window = Window(minutes=15)
    lines: tuple[str, ...] | None = Field(default=None, description="Only these lines.")
    min_samples: int = Field(default=20, ge=0, description="Units needed in the window.")
    warning: float = Field(allow_inf_nan=False)
    critical: float | None = Field(default=None, allow_inf_nan=False)
    clear: float = Field(allow_inf_nan=False, description="Level that clears (hysteresis).")
    for_s: float = Field(default=0.0, ge=0, description="Breach must last this long (event time).")
    cooldown_s: float = Field(default=300.0, ge=0, description="Quiet time after a clear.")
    escalate_after_s: float | None = Field(
        default=None, gt=0, description="Escalate when not acknowledged within this (wall) time."
    )
    standard_cycle_s: float | dict[str, float] | None = Field(
        default=None,
        description="Efficiency: overrides the KPI standards (settings ``standards``) for this "
        "rule: one value for every station, or per station (stations not listed are left out). "
        "Omitted: the KPI standards of the scope's line.",
    )
    channels: tuple[str, ...] = ()
    escalation_channels: tuple[str, ...] = ()
    notify_worker: bool = Field(
        default=False,
        description="Worker-scope rules: the worker concerned sees the alert on their own page "
        "(GET /api/v1/me/alerts) and gets it on worker_channels too.",
    )
    worker_channels: tuple[str, ...] = Field(
        default=(),
        description="With notify_worker: extra channels that reach the worker (e.g. the "
        "station display's MQTT topic), never a supervisors' group.",
    )
    enabled: bool = True

    @property
    def higher_is_worse(self) -> bool:
        return HIGHER_IS_WORSE[self.metric]

    def worse(self, value: float, threshold: float) -> bool:
        """True when ``value`` is at or beyond ``threshold`` in the bad direction."""
        return value >= threshold if self.higher_is_worse else value <= threshold

    def applies_to_line(self, line: str) -> bool:
        return self.lines is None or line in self.lines

    def cycle_for(self, station: str) -> float | None:
        if isinstance(self.standard_cycle_s, dict):
            return self.standard_cycle_s.get(station)
        return self.standard_cycle_s

    @model_validator(mode="after")
    def _consistent(self, info: ValidationInfo) -> Rule:
        up = self.higher_is_worse
        if self.critical is not None and not self.worse(self.critical, self.warning):
            raise ValueError(
                f"critical must be {'above' if up else 'below'} warning for {self.metric}"
            )
        if self.worse(self.clear, self.warning):
            raise ValueError(
                f"clear must be {'below' if up else 'above'} warning for {self.metric} "
                "(hysteresis: the level that ends an alert is better than the one that raises it)"
            )
        if self.metric in ("no_output", "down_time") and self.window.units is not None:
            raise ValueError(f"{self.metric} needs a window in minutes")
        if self.metric in ("no_output",) and self.scope == "line":
            raise ValueError("no_output is watched per station or worker")
        if self.notify_worker and self.scope != "worker":
            raise ValueError("notify_worker needs scope worker (a station or line alert "
                             "concerns no one worker)")  # fmt: skip
        if self.worker_channels and not self.notify_worker:
            raise ValueError("worker_channels need notify_worker: true")
        if self.metric == "down_time" and self.scope == "worker":
            raise ValueError("down_time is a machine figure: scope station or line")
        # Without a context (a rule set sent to the API) the service checks this itself.
        no_standards = info.context is not None and not info.context.get("standards")
        if self.metric == "efficiency" and self.standard_cycle_s is None and no_standards:
            raise ValueError(
                "efficiency needs standard_cycle_s (one value or per station) when the KPI "
                "settings have no standards"
            )
        if self.metric == "efficiency" and self.window.units is not None:
            raise ValueError("efficiency needs a window in minutes (it divides by work time)")
        if isinstance(self.standard_cycle_s, dict) and any(
            v <= 0 for v in self.standard_cycle_s.values()
        ):
            raise ValueError("standard_cycle_s values must be positive")
        if isinstance(self.standard_cycle_s, float | int) and self.standard_cycle_s <= 0:
            raise ValueError("standard_cycle_s must be positive")
        return self


class ChannelDef(BaseModel):
    """A named delivery channel; secrets are named by environment variable, never inlined."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["mqtt", "webhook", "dingtalk", "wecom", "slack", "email"]
    url: str | None = None
    secret_env: str | None = Field(default=None, description="Env var holding the signing secret.")
    to: tuple[str, ...] = ()
    sender: str | None = None
    language: Literal["zh", "en", "both"] = "both"

    @model_validator(mode="after")
    def _needs(self) -> ChannelDef:
        if self.type in ("webhook", "dingtalk", "wecom", "slack") and not self.url:
            raise ValueError(f"a {self.type} channel needs a url")
        if self.type == "email" and (not self.to or not self.sender):
            raise ValueError("an email channel needs to (recipients) and sender")
        return self


class RuleSet(BaseModel):
    """The whole rules file: channels by name and the rules that route to them."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    channels: dict[RuleId, ChannelDef] = Field(default_factory=dict)
    rules: tuple[Rule, ...] = ()

    @model_validator(mode="after")
    def _references(self) -> RuleSet:
        ids = [r.id for r in self.rules]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"rule ids must be unique: {dupes}")
        for index, rule in enumerate(self.rules):
            for name in (*rule.channels, *rule.escalation_channels, *rule.worker_channels):
                if name not in self.channels:
                    raise ValueError(f"rules.{index} ({rule.id}): unknown channel {name!r}")
        return self

    def check_standards(self, has_standards: bool) -> None:
        """Refuse efficiency rules that have no standard to use (neither their own nor the
        KPI settings')."""
        if has_standards:
            return
        for index, rule in enumerate(self.rules):
            if rule.metric == "efficiency" and rule.standard_cycle_s is None:
                raise ValueError(
                    f"rules.{index} ({rule.id}): efficiency needs standard_cycle_s (one value "
                    "or per station) when the KPI settings have no standards"
                )

    def rule(self, rule_id: str) -> Rule | None:
        return next((r for r in self.rules if r.id == rule_id), None)


def parse_rules(text: str, source: str = "<rules>", *, has_standards: bool = False) -> RuleSet:
    """Parse and validate rules YAML; :class:`RulesError` names ``source`` and the field.

    ``has_standards``: the KPI settings define standards, so an efficiency rule may leave
    ``standard_cycle_s`` out and use them.
    """
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise RulesError(f"{source}: not valid YAML: {err}") from err
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise RulesError(f"{source}: expected a mapping with 'channels' and 'rules'")
    try:
        return RuleSet.model_validate(data, context={"standards": has_standards})
    except ValidationError as err:
        raise RulesError(f"{source}: {describe_validation_error(err)}") from None


def load_rules(path: Path, *, has_standards: bool = False) -> RuleSet:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise RulesError(f"{path}: cannot read rules: {err}") from err
    return parse_rules(text, str(path), has_standards=has_standards)


def dump_rules(rules: RuleSet) -> str:
    return yaml.safe_dump(rules.model_dump(mode="json", exclude_defaults=True), sort_keys=False)
