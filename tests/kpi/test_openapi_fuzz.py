"""Schemathesis drives every operation of the OpenAPI document: no server errors, responses
match the schema. Runs against the real influxd holding the hand-checked scenario."""

from __future__ import annotations

from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import positive_data_acceptance

from kpi_service.main import create_app
from takt_cli.localservices import Influxd

from . import scenario
from .conftest import Keys, load_events, make_settings


@pytest.fixture(scope="module")
def api_key_and_app(influxd: Influxd, tmp_path_factory: pytest.TempPathFactory):
    db = load_events(influxd, scenario.events())
    conf = make_settings(
        tmp_path_factory.mktemp("fuzz"), influx_url=influxd.url, influx_db=db,
        timezone="Europe/Berlin", standards=scenario.STANDARDS,
    )  # fmt: skip
    app = create_app(conf)
    keys = Keys(conf)
    app.state.fuzz_keys = keys
    return keys.admin, app


NEW = ("/schemes", "/scores", "/external-metrics", "/targets", "/progress", "/self-keys", "/me/")


@pytest.mark.parametrize("who", ["hr", "sup_l1"])
def test_no_server_errors_for_hr_and_supervisors_on_scheme_endpoints(
    api_key_and_app, who: str
) -> None:
    """The scheme, score, external-metric and target endpoints with non-admin keys: refusals
    (403) and validation errors, never a 5xx."""
    _, app = api_key_and_app
    key = getattr(app.state.fuzz_keys, who)
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    headers = {"Authorization": f"Bearer {key}"}
    operations = [result.ok() for result in schema.get_all_operations()]  # type: ignore[union-attr]
    operations = [o for o in operations if any(p in o.path for p in NEW)]
    assert len(operations) >= 10
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=10, deadline=None, suppress_health_check=list(HealthCheck))
        def run(case: schemathesis.Case) -> None:  # type: ignore[type-arg]
            case.call_and_validate(headers=headers, excluded_checks=[positive_data_acceptance])

        run()


def test_no_server_errors(api_key_and_app) -> None:
    """Every operation, a bounded number of generated requests each (schemathesis strategies;
    its pytest plugin does not run on this pytest, so hypothesis drives them directly)."""
    key, app = api_key_and_app
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    headers = {"Authorization": f"Bearer {key}"}
    operations = [result.ok() for result in schema.get_all_operations()]  # type: ignore[union-attr]
    operations = [o for o in operations if not any(p in o.path for p in ("/alerts", "/board"))]
    assert len(operations) >= 8
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
        def run(case: schemathesis.Case) -> None:  # type: ignore[type-arg]
            # Valid-by-schema but semantically refused (end < start, > 366 days) is a 422 by design.
            case.call_and_validate(headers=headers, excluded_checks=[positive_data_acceptance])

        run()


def test_docs_are_written(api_key_and_app, tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    _, app = api_key_and_app
    spec = TestClient(app).get("/openapi.json").json()
    for path, ops in spec["paths"].items():
        if path.startswith("/api/v1") and "/alerts" not in path and "/board" not in path:
            for method, op in ops.items():
                assert op["summary"], (method, path)
    assert spec["components"]["schemas"]["KpiRow"]["examples"]
