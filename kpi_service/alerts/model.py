"""Alerts and their transitions: what the engine emits, the store keeps and channels send."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict

Severity = Literal["warning", "critical"]
TransitionKind = Literal["raised", "severity", "escalated", "acknowledged", "cleared"]
Status = Literal["active", "acknowledged", "cleared"]


def alert_id(rule_id: str, key: tuple[object, ...], raised_event_ts: float) -> str:
    """Deterministic id: the same raise computed twice (e.g. after a restart) is the same alert."""
    text = f"{rule_id}|{'|'.join(str(k) for k in key)}|{raised_event_ts:.3f}"
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


class Alert(BaseModel):
    """An alert as stored and listed; every lifecycle step has its own timestamp."""

    model_config = ConfigDict(extra="forbid")

    id: str
    rule_id: str
    metric: str
    scope: str
    site: str
    line: str
    station: str | None
    worker: str | None
    severity: Severity
    status: Status
    value: float
    threshold: float
    unit: str
    raised_event_ts: float
    raised_at: float
    acknowledged_at: float | None = None
    acknowledged_by: str | None = None
    escalated_at: float | None = None
    cleared_at: float | None = None
    cleared_event_ts: float | None = None

    @property
    def key(self) -> tuple[str, str, str, str | None, str | None]:
        return (self.scope, self.site, self.line, self.station, self.worker)


class Transition(BaseModel):
    """One lifecycle step of an alert, with the alert as it is after the step."""

    model_config = ConfigDict(extra="forbid")

    kind: TransitionKind
    at: float
    """Wall-clock time of the step (UTC epoch seconds)."""
    event_ts: float | None = None
    """Event time that caused it (raise, severity, clear)."""
    alert: Alert

    def summary(self, language: Literal["zh", "en", "both"] = "both") -> str:
        """Short human text for chat and e-mail channels."""
        a = self.alert
        where = "/".join(x for x in (a.line, a.station or "", a.worker or "") if x)
        en = {
            "defect_rate": "defect rate",
            "efficiency": "efficiency",
            "no_output": "no output",
            "down_time": "down time",
        }.get(a.metric, a.metric)
        zh = {
            "defect_rate": "不良率",
            "efficiency": "效率",
            "no_output": "无产出",
            "down_time": "停机时间",
        }.get(a.metric, a.metric)
        kind_en = self.kind
        kind_zh = {
            "raised": "报警",
            "severity": "升级",
            "escalated": "未确认升级",
            "acknowledged": "已确认",
            "cleared": "已解除",
        }[self.kind]
        sev_zh = "严重" if a.severity == "critical" else "警告"
        figure = f"{a.value:.1f}{a.unit} (threshold {a.threshold:g}{a.unit})"
        text_en = f"[{a.severity} {kind_en}] {en} {figure} at {where}"
        figure_zh = f"{a.value:.1f}{a.unit} (阈值 {a.threshold:g}{a.unit})"
        text_zh = f"【{sev_zh}·{kind_zh}】{zh} {figure_zh} {where}"
        if language == "en":
            return text_en
        if language == "zh":
            return text_zh
        return f"{text_zh}\n{text_en}"
