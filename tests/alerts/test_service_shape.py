"""``AlertService`` is an async context manager over one TaskGroup with named tasks:
entering starts the loops, leaving stops them and closes what was opened, and a start-up
that fails half-way closes what it had opened already."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from kpi_service.alerts.config import AlertSettings
from kpi_service.alerts.service import AlertService
from kpi_service.core.config import Standard
from takt_cli.localservices import Mosquitto

RULES = """
channels:
  bus: {type: mqtt}
rules:
  - {id: slow, metric: efficiency, scope: station, warning: 70, clear: 80, channels: [bus]}
"""


def _settings(tmp_path: Path, port: int, rules: str = RULES) -> AlertSettings:
    path = tmp_path / "rules.yaml"
    path.write_text(rules)
    return AlertSettings(
        enabled=True,
        rules_file=path,
        state_db=tmp_path / "alerts.sqlite",
        mqtt_port=port,
        mqtt_client_id=f"shape-{uuid.uuid4().hex[:8]}",
        mqtt_group=f"g{uuid.uuid4().hex[:8]}",
        tick_s=0.05,
    )


@pytest.mark.integration
async def test_named_tasks_run_inside_and_stop_on_leaving(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    standards = [Standard(station="S1", cycle_s=30.0)]  # the rule has no standard of its own
    service = AlertService(_settings(tmp_path, mosquitto.port), standards=standards)
    async with service as running:
        assert running is service
        tasks = {t.get_name(): t for t in service._tasks}
        assert set(tasks) == {"alerts-consume", "alerts-tick"}
        assert not any(t.done() for t in tasks.values())
        assert service.engine.cycles("L1") == {"S1": 30.0}
    assert all(t.done() for t in tasks.values())
    assert service._http is not None and service._http.is_closed


async def test_failed_start_closes_what_it_opened(tmp_path: Path) -> None:
    rules = RULES.replace(
        "{type: mqtt}",
        "{type: webhook, url: 'http://127.0.0.1:9/x', secret_env: TAKT_TEST_UNSET_SECRET}",
    )
    settings = _settings(tmp_path, 1, rules)
    service = AlertService(settings, standards=[Standard(station="S1", cycle_s=1)])
    with pytest.raises(ValueError, match="TAKT_TEST_UNSET_SECRET is not set"):
        async with service:
            pytest.fail("the block must not run when start-up fails")
    assert service._http is not None and service._http.is_closed
    assert service._tasks == []


def test_efficiency_rule_without_any_standard_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="needs standard_cycle_s"):
        AlertService(_settings(tmp_path, 1))
