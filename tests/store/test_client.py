"""The shared client's write status policy and typed errors, against a real influxd.

Accept, bisect on 400, retry on 404 (database missing) and 401 (credentials), retry on a
refused connection until influxd is back, typed query errors: all real. Only 413, 429,
503 with ``Retry-After`` and 500 come from a tiny scripted server (statusserver.py),
because influxd cannot be made to answer them on demand.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import httpx
import pytest
from pydantic import SecretStr

from takt_cli.localservices import Influxd, free_port
from takt_common.errors import TaktError
from takt_store.client import InfluxClient
from takt_store.errors import (
    InfluxAuthError,
    InfluxError,
    InfluxHttpError,
    InfluxQueryError,
    InfluxUnavailable,
    WriterStopped,
)
from takt_store.settings import InfluxSettings
from tests.store.statusserver import Script, status_server


def lines(n: int, start: int = 0) -> list[str]:
    return [f"m,k=v{i % 3} f={i}i {1_795_420_800_000_000_000 + i}" for i in range(start, n)]


def stored(server: Influxd, db: str) -> int:
    series = server.query('SELECT count("f") FROM "m"', db=db)
    return int(series[0]["values"][0][1]) if series else 0  # type: ignore[index]


def fast(url: str, db: str, **over: object) -> InfluxSettings:
    """Short backoff; the database's default retention policy unless told (influxd answers
    500, retried forever, to a write naming a policy that does not exist)."""
    fields: dict[str, object] = {"retention_policies": False, "max_backoff_s": 0.2, "timeout_s": 5}
    return InfluxSettings(url=url, database=db, **(fields | over))


async def test_accepts_and_bisects_a_refused_line_on_400(influxd: Influxd) -> None:
    db = "store_client_400"
    influxd.query(f'CREATE DATABASE "{db}"')
    client = InfluxClient(fast(influxd.url, db, retention_policies=False))
    try:
        good = lines(40)
        bad = "m,k=v0 f=notanumber 1795420800000000999"  # unparseable value: influxd says 400
        result = await client.write([*good[:17], bad, *good[17:]])
    finally:
        await client.aclose()
    assert result.written == 40
    [(line, why)] = result.rejected
    assert line == bad and why.startswith("HTTP 400")
    assert result.requests > 2, "found by bisection"
    assert stored(influxd, db) == 40


async def test_retries_404_until_the_database_exists(influxd: Influxd) -> None:
    db = "store_client_404"
    causes: list[str] = []
    client = InfluxClient(fast(influxd.url, db, retention_policies=False), on_retry=causes.append)
    try:
        writing = asyncio.create_task(client.write(lines(5)))
        await asyncio.sleep(1.0)
        assert not writing.done() and "404" in causes and client.failing_since is not None
        await asyncio.to_thread(influxd.query, f'CREATE DATABASE "{db}"')
        result = await asyncio.wait_for(writing, 30)
    finally:
        await client.aclose()
    assert (result.written, result.rejected) == (5, [])
    assert client.failing_since is None
    assert stored(influxd, db) == 5


async def test_401_retries_and_stops_on_request_and_queries_raise_auth_errors(
    influxd_factory: Callable[..., Influxd],
) -> None:
    server = influxd_factory(admin=("admin", "admin-pw-0123"))
    db = "store_client_401"
    server.query(f'CREATE DATABASE "{db}"')
    stop = False
    causes: list[str] = []
    wrong = fast(
        server.url, db, username="admin", password=SecretStr("wrong"), retention_policies=False
    )
    client = InfluxClient(wrong, stopping=lambda: stop, on_retry=causes.append)
    try:
        writing = asyncio.create_task(client.write(lines(3)))
        await asyncio.sleep(0.8)
        assert not writing.done() and "401" in causes, "kept, retried: an operator can fix it"
        stop = True
        with pytest.raises(WriterStopped):
            await asyncio.wait_for(writing, 10)
        with pytest.raises(InfluxAuthError) as err:
            await client.query("SHOW MEASUREMENTS")
        assert isinstance(err.value, TaktError) and isinstance(err.value, RuntimeError)
    finally:
        await client.aclose()
    right = InfluxClient(wrong.model_copy(update={"password": SecretStr("admin-pw-0123")}))
    try:
        assert (await right.write(lines(3))).written == 3
    finally:
        await right.aclose()
    assert stored(server, db) == 3


async def test_refused_connection_retries_until_influxd_is_back(
    influxd_factory: Callable[..., Influxd],
) -> None:
    server = influxd_factory()
    db = "store_client_down"
    server.query(f'CREATE DATABASE "{db}"')
    server.stop()
    causes: list[str] = []
    client = InfluxClient(fast(server.url, db), on_retry=causes.append)
    try:
        with pytest.raises(InfluxUnavailable):
            await client.query("SHOW MEASUREMENTS")
        writing = asyncio.create_task(client.write(lines(4)))
        await asyncio.sleep(0.8)
        assert not writing.done() and "connection" in causes
        await asyncio.to_thread(server.start)
        result = await asyncio.wait_for(writing, 60)
    finally:
        await client.aclose()
    assert result.written == 4 and stored(server, db) == 4


async def test_one_shot_write_raises_instead_of_waiting() -> None:
    client = InfluxClient(fast(f"http://127.0.0.1:{free_port()}", "nowhere"))
    try:
        with pytest.raises(WriterStopped):
            await client.write(lines(1), retry=False)
    finally:
        await client.aclose()


async def test_query_errors_are_typed(influxd: Influxd) -> None:
    client = InfluxClient(fast(influxd.url, "store_client_missing_db"))
    try:
        with pytest.raises(InfluxQueryError) as missing:
            await client.query('SELECT * FROM "m"')
        assert missing.value.database_missing
        with pytest.raises(InfluxQueryError) as syntax:
            await client.query("SELEKT nonsense")
        assert not syntax.value.database_missing
        assert (await client.ping()).startswith("1."), "influxd says its version"
    finally:
        await client.aclose()


async def test_413_splits_the_batch_in_halves() -> None:
    script = Script(split_over=10)
    with status_server(script) as url:
        client = InfluxClient(fast(url, "db"))
        try:
            result = await client.write(lines(40))
        finally:
            await client.aclose()
    assert (result.written, result.rejected) == (40, [])
    assert script.bodies[:3] == [40, 20, 10] and sum(b for b in script.bodies if b <= 10) == 40


@pytest.mark.parametrize("status", [429, 503])
async def test_busy_server_is_waited_out_honouring_retry_after(status: int) -> None:
    script = Script(answers=[(status, {"Retry-After": "0.5"}, '{"error":"busy"}')])
    causes: list[str] = []
    with status_server(script) as url:
        client = InfluxClient(fast(url, "db", max_backoff_s=5.0), on_retry=causes.append)
        try:
            started = time.monotonic()
            result = await client.write(lines(3))
            waited = time.monotonic() - started
        finally:
            await client.aclose()
    assert result.written == 3 and causes == [str(status)] and script.bodies == [3, 3]
    assert waited >= 0.5, "Retry-After honoured (a lower bound, not a timing assertion)"


async def test_500_retries_and_query_raises_unavailable() -> None:
    script = Script(answers=[(500, {}, "oops"), (500, {}, "oops")])
    causes: list[str] = []
    with status_server(script) as url:
        client = InfluxClient(fast(url, "db"), on_retry=causes.append)
        try:
            assert (await client.write(lines(2))).written == 2
            script.answers.append((502, {}, "bad gateway"))
            with pytest.raises(InfluxUnavailable):
                await client.query("SHOW DATABASES")
            script.answers.append((418, {}, "teapot"))
            with pytest.raises(InfluxHttpError) as other:
                await client.query("SHOW DATABASES")
        finally:
            await client.aclose()
    assert causes == ["500", "500"] and other.value.status == 418
    assert isinstance(other.value, InfluxError)


def test_tls_settings_reach_httpx(tmp_path: object) -> None:
    insecure = InfluxSettings(url="https://influx.example", tls_verify=False)
    assert insecure.verify() is False
    assert InfluxSettings().verify() is True
    with pytest.raises(FileNotFoundError):
        InfluxSettings(tls_ca_file="/nonexistent/ca.pem").verify()
    assert isinstance(httpx.AsyncClient(verify=InfluxSettings().verify()), httpx.AsyncClient)
