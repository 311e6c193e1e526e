"""Shared fixtures: real Mosquitto and real influxd on free ports in temp dirs.

The session-scoped ``mosquitto`` and ``influxd`` are shared by tests that only
publish/write; tests that stop, kill or pause a server use the factories, which
give each test its own process. Missing binaries fail with the fix, not a skip.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest
from hypothesis import settings as hypothesis_settings

from takt_cli.localservices import (
    Influxd,
    LocalService,
    Mosquitto,
    Postgres,
    ServiceError,
    find_binary,
)
from takt_cli.localservices import (
    influxd as make_influxd,
)
from takt_cli.localservices import (
    mosquitto as make_mosquitto,
)
from takt_cli.localservices import (
    postgres as make_postgres,
)
from tests.browser import browser  # noqa: F401 (a fixture for page tests)
from tests.hrapi import hr  # noqa: F401 (device tests end at the HR API)

S = TypeVar("S", bound=LocalService)

# CI explores the same examples every run (a red build must be reproducible);
# developers' runs keep exploring new ones.
hypothesis_settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    hypothesis_settings.load_profile("ci")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Anything using a real service fixture is an integration test."""
    service_fixtures = {
        "mosquitto", "influxd", "mosquitto_factory", "influxd_factory", "postgres", "store_url",
    }  # fmt: skip
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


@pytest.fixture(scope="session")
def postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Postgres]:
    """One PostgreSQL 15 for the whole session; tests create their own databases."""
    _require_postgres()
    server = make_postgres(tmp_path_factory.mktemp("postgres"))
    server.start()
    try:
        yield server
    finally:
        server.remove()


def _require_postgres() -> None:
    try:
        find_binary("postgres", ("/usr/lib/postgresql/15/bin",))
    except ServiceError as err:
        pytest.fail(str(err), pytrace=False)


_store_dbs = itertools.count()


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty relational store, once embedded SQLite and once real PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.sqlite'}"
    server: Postgres = request.getfixturevalue("postgres")
    return server.create_database(f"store_{os.getpid()}_{next(_store_dbs)}")


def _private(make: Callable[..., S], folder: Path) -> Iterator[Callable[..., S]]:
    """Start private servers of one kind in ``folder``; all are stopped afterwards."""
    started: list[S] = []

    def start(**kwargs: object) -> S:
        service = make(folder / f"{len(started)}", **kwargs)
        started.append(service)
        return service.start()

    yield start
    for service in started:
        service.stop()


@pytest.fixture
def mosquitto_factory(tmp_path: Path) -> Iterator[Callable[..., Mosquitto]]:
    """Start private brokers (e.g. to stop one mid-test); all are stopped afterwards."""
    _require("mosquitto")
    yield from _private(make_mosquitto, tmp_path / "mosquitto")


@pytest.fixture
def influxd_factory(tmp_path: Path) -> Iterator[Callable[..., Influxd]]:
    """Start private influxd processes; all are stopped afterwards."""
    _require("influxd")
    yield from _private(make_influxd, tmp_path / "influxd")
