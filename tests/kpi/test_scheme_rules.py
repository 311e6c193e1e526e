"""Scheme validation and the scoring rules on hand-picked numbers; YAML schemes via the CLI."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

import kpi_service.scores as scores_pkg
from kpi_service.cli import app as cli_app
from kpi_service.core.audit import AuditLog
from kpi_service.core.config import load_settings
from kpi_service.scores.loader import load_specs
from kpi_service.scores.model import MetricDef, SchemeSpec
from kpi_service.scores.registry import SchemeRegistry
from kpi_service.scores.scoring import metric_points, score
from kpi_service.store.db import Database

EXAMPLE = Path(scores_pkg.__file__).parent / "schemes.example.yaml"


def metric(**kw: object) -> MetricDef:
    base: dict[str, object] = {"name": "m", "source": "measured", "measure": "defect_rate",
                               "weight": 100}  # fmt: skip
    return MetricDef.model_validate(base | kw)


def test_linear_rule_is_capped_both_ways_and_works_when_lower_is_better() -> None:
    up = metric(measure="pct_of_standard", floor=60, target=100)
    assert [metric_points(v, up) for v in (50, 60, 80, 100, 130)] == [0, 0, 50, 100, 100]
    down = metric(direction="lower", floor=0.1, target=0.02)
    assert metric_points(0.06, down) == pytest.approx(50)
    assert (metric_points(0.2, down), metric_points(0.0, down)) == (0, 100)


def test_step_rule_takes_the_best_step_reached() -> None:
    steps = [{"at": 0.05, "points": 40}, {"at": 0.03, "points": 70}, {"at": 0.01, "points": 100}]
    down = metric(direction="lower", floor=0.1, target=0.01, rule="steps", steps=steps)
    assert [metric_points(v, down) for v in (0.2, 0.05, 0.04, 0.03, 0.0)] == [0, 40, 40, 70, 100]
    with pytest.raises(ValidationError, match="from the worst value to the best"):
        metric(direction="lower", floor=0.1, target=0.01, rule="steps", steps=steps[::-1])


def test_insufficient_evidence_is_not_a_low_score() -> None:
    spec = SchemeSpec.model_validate(
        {
            "scheme": "s",
            "effective_from": "2026-03-01",
            "metrics": [
                {
                    "name": "q",
                    "source": "measured",
                    "measure": "quality_rate",
                    "floor": 0.9,
                    "target": 1.0,
                    "weight": 100,
                }
            ],
            "min_evidence": {"effective_hours": 10, "units": 50},
        }
    )
    thin = score(spec, {"q": 1.0}, effective_hours=9.5, units=49)
    assert (thin.status, thin.score, thin.band) == ("insufficient_data", None, None)
    assert thin.reasons == ["effective hours 9.5 < minimum 10", "units 49 < minimum 50"]
    ok = score(spec, {"q": 0.95}, effective_hours=10, units=50)
    assert (ok.status, ok.score, ok.band) == ("scored", 50.0, "to_improve")


def test_validation_messages_name_the_problem(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "- scheme: s\n  effective_from: 2026-03-01\n  metrics:\n"
        "    - {name: a, source: measured, measure: pct_of_standard, floor: 0, target: 1,"
        " weight: 70}\n"
        "    - {name: b, source: external, external: csat, floor: 0, target: 1, weight: 20}\n"
    )
    with pytest.raises(
        ValueError, match=r"bad.yaml: entry 0: .*weights must add up to 100, not 90"
    ):
        load_specs(bad)
    assert len(load_specs(EXAMPLE)) == 2


def test_cli_applies_yaml_versions_and_refuses_rewriting_history(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TAKT_KPI_STATE_DIR", str(tmp_path))
    monkeypatch.setenv("TAKT_KPI_ENVIRONMENT", "development")
    monkeypatch.delenv("TAKT_KPI_DATABASE_URL", raising=False)
    result = CliRunner().invoke(cli_app, ["scheme", "apply", str(EXAMPLE)])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [
        "assembly version 1 in force from 2026-03-01",
        "assembly version 2 in force from 2026-04-01",
    ]
    again = CliRunner().invoke(cli_app, ["scheme", "apply", str(EXAMPLE)])
    assert again.exit_code == 2 and "must take effect after version 2" in again.output
    listed = CliRunner().invoke(cli_app, ["scheme", "list"]).output
    assert "assembly v2 from 2026-04-01 per month: output 40, new_product 30, quality 30" in listed
    db = Database(load_settings().store_url)
    assert [v.version for v in SchemeRegistry(db).versions("assembly")] == [1, 2]
    statuses = [e.status for e in AuditLog(db).entries() if e.path == "kpi scheme apply"]
    assert statuses == [0, 0, 2]
