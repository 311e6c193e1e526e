"""Schemathesis over every endpoint, alerts included, as an admin, an HR reader and a
supervisor: no request generated from the OpenAPI document gets a 5xx.

The app runs under uvicorn in its own thread with the alert engine on (real
Mosquitto) and the hand-checked scenario in a real influxd, so the alert routes
answer from a live engine instead of 503.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
import uvicorn
from hypothesis import HealthCheck, given, settings

from kpi_service.core.apikeys import KeyStore
from takt_cli.localservices import Influxd, Mosquitto, free_port
from tests.alerts.harness import make_app
from tests.kpi import scenario
from tests.kpi.conftest import load_events

EXAMPLES = 15
"""Generated requests per operation and role (hypothesis explores; CI runs derandomized)."""


@pytest.fixture
def base_and_keys(
    tmp_path: Path, mosquitto: Mosquitto, influxd: Influxd, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[str, dict[str, str]]]:
    monkeypatch.setenv("TAKT_TEST_HOOK_SECRET", "fuzz-hook-secret")
    db = load_events(influxd, scenario.events())
    app, keys = make_app(tmp_path, mosquitto.port, "http://127.0.0.1:9", influxd.url, db)
    assert keys is not None
    conf = app.state.settings
    hr = KeyStore(conf.keys_db, conf.secret_key.get_secret_value()).create(
        "hr-fuzz", frozenset({"hr:read"}), None
    )
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, name="uvicorn-fuzz", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the app did not start"
        time.sleep(0.05)
    try:
        yield (
            f"http://127.0.0.1:{port}",
            {"admin": keys.admin, "hr": hr, "supervisor": keys.sup_l1},
        )
    finally:
        server.should_exit = True
        thread.join(30)


def test_no_server_error_for_any_role(base_and_keys: tuple[str, dict[str, str]]) -> None:
    base, keys = base_and_keys
    schema = schemathesis.openapi.from_url(f"{base}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]  # type: ignore[union-attr]
    # The live stream never ends by design (server-sent events); everything else is fuzzed.
    operations = [o for o in operations if not o.path.endswith("/stream")]
    paths = {o.path for o in operations}
    assert {"/api/v1/alerts", "/api/v1/alerts/rules", "/api/v1/kpis/export"} <= paths
    failures: list[str] = []
    for role, key in keys.items():
        for operation in operations:
            fuzz(operation, base, role, key, failures)
    assert failures == []


def fuzz(
    operation: schemathesis.APIOperation,  # type: ignore[type-arg]
    base: str,
    role: str,
    key: str,
    failures: list[str],
) -> None:
    headers = {"Authorization": f"Bearer {key}"}

    @given(case=operation.as_strategy())
    @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
    def run(case: schemathesis.Case) -> None:  # type: ignore[type-arg]
        response = case.call(base_url=base, headers=headers, timeout=60)
        if response.status_code >= 500:
            failures.append(
                f"{role} {case.method} {case.formatted_path} {case.query}: "
                f"{response.status_code} {response.text[:200]}"
            )

    run()
