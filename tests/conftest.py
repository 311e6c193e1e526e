"""Shared fixtures: real Mosquitto and real influxd on free ports in temp dirs.

The session-scoped ``mosquitto`` and ``influxd`` are shared by tests that only
publish/write; tests that stop, kill or pause a server use the factories, which
give each test its own process. Missing binaries fail with the fix, not a skip.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import settings as hypothesis_settings

from takt_cli.localservices import (
    Influxd,
    Mosquitto,
    ServiceError,
    find_binary,
)
from takt_cli.localservices import (
    influxd as make_influxd,
)
from takt_cli.localservices import (
    mosquitto as make_mosquitto,
)

# CI explores the same examples every run (a red build must be reproducible);
# developers' runs keep exploring new ones.
hypothesis_settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    hypothesis_settings.load_profile("ci")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Anything using a real service fixture is an integration test."""
    service_fixtures = {"mosquitto", "influxd", "mosquitto_factory", "influxd_factory"}
    for item in items:
        if service_fixtures & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.integration)


def _require(binary: str) -> None:
    try:
        find_binary(binary)
    except ServiceError as err:
        pytest.fail(str(err), pytrace=False)


@pytest.fixture(scope="session")
def mosquitto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mosquitto]:
    """One Mosquitto for the whole session (anonymous, loopback only)."""
    _require("mosquitto")
    with make_mosquitto(tmp_path_factory.mktemp("mosquitto")) as broker:
        yield broker


@pytest.fixture(scope="session")
def influxd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Influxd]:
    """One influxd for the whole session; tests use their own database names."""
    _require("influxd")
    with make_influxd(tmp_path_factory.mktemp("influxd")) as server:
        yield server


@pytest.fixture
def mosquitto_factory(tmp_path: Path) -> Iterator[Callable[..., Mosquitto]]:
    """Start private brokers (e.g. to stop one mid-test); all are stopped afterwards."""
    _require("mosquitto")
    started: list[Mosquitto] = []

    def start(**kwargs: object) -> Mosquitto:
        broker = make_mosquitto(tmp_path / f"mosquitto{len(started)}", **kwargs)  # type: ignore[arg-type]
        started.append(broker)
        return broker.start()

    yield start
    for broker in started:
        broker.stop()


@pytest.fixture
def influxd_factory(tmp_path: Path) -> Iterator[Callable[..., Influxd]]:
    """Start private influxd processes; all are stopped afterwards."""
    _require("influxd")
    started: list[Influxd] = []

    def start(**kwargs: object) -> Influxd:
        server = make_influxd(tmp_path / f"influxd{len(started)}", **kwargs)  # type: ignore[arg-type]
        started.append(server)
        return server.start()

    yield start
    for server in started:
        server.stop()
