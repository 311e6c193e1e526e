"""The one async InfluxDB v1 HTTP client of the house (``/write``, ``/query``, ``/ping``).

Write status policy (Telegraf-like): 2xx accept; 429/503 wait (``Retry-After``
honoured); other 5xx, 401/403/404/408, timeouts and refused connections retry with
capped exponential backoff for as long as the caller lets it (the collector has not
acknowledged the MQTT messages yet, so the broker holds the backlog); 413 splits the
batch; 400 and other 4xx bisect down to the bad lines, which are returned as
rejected, so one bad point never blocks the rest or loops.

Queries raise typed errors (:mod:`takt_store.errors`) and never retry: a reader
decides itself whether to try again. Basic auth (InfluxDB 1.x reads credentials from
the header or the URL, never from a form body) and TLS verification come from
:class:`~takt_store.settings.InfluxSettings`.
"""

from __future__ import annotations

import gzip
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    wait_exponential_jitter,
)

from takt_store.errors import (
    InfluxAuthError,
    InfluxHttpError,
    InfluxQueryError,
    InfluxUnavailable,
    WriterStopped,
)
from takt_store.settings import InfluxSettings

log = logging.getLogger(__name__)

Series = dict[str, Any]


class _Retry(Exception):
    def __init__(self, cause: str, detail: str, retry_after: float | None = None) -> None:
        super().__init__(f"{cause}: {detail}")
        self.cause = cause
        self.retry_after = retry_after


class _Split(Exception):
    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


@dataclass
class WriteResult:
    written: int = 0
    rejected: list[tuple[str, str]] = field(default_factory=list)
    """(line, InfluxDB's explanation) for every line it refused."""
    requests: int = 0


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None  # an HTTP date: fall back to our own backoff


def error_text(response: httpx.Response) -> str:
    """InfluxDB's explanation of a refusal (its JSON ``error``, else the body), bounded."""
    try:
        data = response.json()
    except ValueError:
        return response.text[:500]
    if isinstance(data, dict) and "error" in data:
        return str(data["error"])[:500]
    return response.text[:500]


class InfluxClient:
    """One ``httpx.AsyncClient`` to one InfluxDB; see the module docstring for the policy.

    ``stopping`` is asked before every retry: when it says so, a retried write raises
    :class:`WriterStopped` instead of waiting again. ``on_retry(cause)`` counts retries
    (the collector's metrics); ``on_missing_database`` runs on a 404 write (re-create).
    """

    def __init__(
        self,
        settings: InfluxSettings,
        *,
        stopping: Callable[[], bool] = lambda: False,
        on_retry: Callable[[str], None] = lambda cause: None,
        on_missing_database: Callable[[], Any] | None = None,
        http: httpx.AsyncClient | None = None,
    ) -> None:
        self.settings = settings
        self.stopping = stopping
        self.on_retry = on_retry
        self.on_missing_database = on_missing_database
        auth = settings.basic_auth()
        self._http = http or httpx.AsyncClient(
            base_url=settings.url,
            auth=httpx.BasicAuth(*auth) if auth else None,
            timeout=settings.timeout_s,
            verify=settings.verify(),
        )
        self.failing_since: float | None = None
        """Monotonic time of the first failure of the current outage (health checks)."""
        self._wait = wait_exponential_jitter(multiplier=0.1, max=settings.max_backoff_s, jitter=0.1)

    async def aclose(self) -> None:
        await self._http.aclose()

    # -- writing ---------------------------------------------------------------------------

    def write_params(self, which: str = "raw") -> dict[str, str]:
        params = {"db": self.settings.database, "precision": "ns"}
        rp = self.settings.rp(which)
        if rp is not None:
            params["rp"] = rp
        return params

    async def write(
        self, lines: list[str], *, which: str = "raw", retry: bool = True
    ) -> WriteResult:
        """Write every line or return it as rejected.

        ``which`` picks the retention policy (``raw`` or ``rollup``). With ``retry``
        the write waits out server trouble until ``stopping``; without, the first
        transient failure raises :class:`WriterStopped` (one-shot callers: replay).
        """
        result = WriteResult()
        if lines:
            params = self.write_params(which)
            await self._write_part(lines, result, params, retry)
        return result

    async def _write_part(
        self, lines: list[str], result: WriteResult, params: dict[str, str], retry: bool
    ) -> None:
        try:
            await self._post_with_retry(lines, result, params, retry)
            result.written += len(lines)
        except _Split as split:
            if len(lines) == 1:
                result.rejected.append((lines[0], f"HTTP {split.status}: {split.detail}"))
                return
            self.on_retry(f"split_{split.status}")
            half = len(lines) // 2
            await self._write_part(lines[:half], result, params, retry)
            await self._write_part(lines[half:], result, params, retry)

    async def _post_with_retry(
        self, lines: list[str], result: WriteResult, params: dict[str, str], retry: bool
    ) -> None:
        body = "\n".join(lines).encode()
        headers = {"Content-Type": "text/plain; charset=utf-8"}
        if self.settings.gzip:
            body = gzip.compress(body, compresslevel=1, mtime=0)
            headers["Content-Encoding"] = "gzip"
        retrying = AsyncRetrying(
            retry=retry_if_exception_type(_Retry),
            wait=self._wait_for,
            stop=(lambda _state: self.stopping()) if retry else (lambda _state: True),
            before_sleep=self._count_retry,
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    result.requests += 1
                    await self._post_once(body, headers, params)
        except _Retry as err:
            raise WriterStopped(str(err)) from None
        self.failing_since = None

    async def _post_once(
        self, body: bytes, headers: dict[str, str], params: dict[str, str]
    ) -> None:
        try:
            response = await self._http.post("/write", params=params, content=body, headers=headers)
        except httpx.TransportError as err:
            self._failing()
            raise _Retry("connection", f"{type(err).__name__}: {err}") from None
        status = response.status_code
        if 200 <= status < 300:
            return
        detail = error_text(response)
        if status in (429, 503):
            self._failing()
            raise _Retry(str(status), detail, _retry_after(response))
        if status >= 500 or status in (401, 403, 404, 408):
            # Server trouble, or a setup problem (auth, missing database) an operator
            # can fix: keep the data and retry; the health check turns red meanwhile.
            self._failing()
            if status == 404 and self.on_missing_database is not None:
                await self.on_missing_database()
            raise _Retry(str(status), detail, _retry_after(response))
        raise _Split(status, detail)

    def _failing(self) -> None:
        if self.failing_since is None:
            self.failing_since = time.monotonic()

    def _wait_for(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, _Retry) and exc.retry_after is not None:
            return min(exc.retry_after, self.settings.max_backoff_s)
        return float(self._wait(state))

    def _count_retry(self, state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        cause = exc.cause if isinstance(exc, _Retry) else "unknown"
        self.on_retry(cause)
        if state.attempt_number in (1, 10) or state.attempt_number % 100 == 0:
            log.warning(
                "influx write failed, retrying",
                extra={"attempt": state.attempt_number, "error": str(exc)},
            )

    # -- reading ---------------------------------------------------------------------------

    async def query(self, q: str, *, epoch: str | None = "ns") -> list[list[Series]]:
        """Run one or more ``;``-separated statements; the series of each statement.

        Raises :class:`InfluxUnavailable` (no answer, 5xx), :class:`InfluxAuthError`
        (401/403), :class:`InfluxHttpError` (other statuses) or
        :class:`InfluxQueryError` (a statement refused, or 400: it did not parse).
        """
        data = {"q": q, "db": self.settings.database}
        if epoch:
            data["epoch"] = epoch
        try:
            response = await self._http.post("/query", data=data)
        except httpx.TransportError as err:
            raise InfluxUnavailable(f"InfluxDB unreachable: {type(err).__name__}: {err}") from err
        status = response.status_code
        if status in (401, 403):
            raise InfluxAuthError(f"InfluxDB answered {status}: {error_text(response)}")
        if status >= 500 or status == 429:
            raise InfluxUnavailable(f"InfluxDB answered {status}: {error_text(response)}")
        if status == 400:
            raise InfluxQueryError(error_text(response))  # the statement did not parse
        if status != 200:
            raise InfluxHttpError(status, error_text(response))
        payload = response.json()
        if "error" in payload:
            raise InfluxQueryError(str(payload["error"]))
        out: list[list[Series]] = []
        for result in payload.get("results", []):
            if "error" in result:
                raise InfluxQueryError(str(result["error"]))
            out.append(result.get("series", []))
        return out

    async def ping(self) -> str:
        """The server's version (``X-Influxdb-Version``, '' when it does not say)."""
        try:
            response = await self._http.get("/ping")
        except httpx.TransportError as err:
            raise InfluxUnavailable(f"InfluxDB unreachable: {type(err).__name__}: {err}") from err
        if response.status_code in (401, 403):
            raise InfluxAuthError(f"InfluxDB answered {response.status_code} on /ping")
        if response.status_code not in (200, 204):
            raise InfluxHttpError(response.status_code, error_text(response))
        return str(response.headers.get("X-Influxdb-Version", ""))

    def source(self, measurement: str, which: str = "raw") -> str:
        """The InfluxQL name of a measurement: ``"db"."rp"."m"``, or ``"m"`` without
        retention policies (the database is the request's ``db``)."""
        return qualified(self.settings, measurement, which)


def quote_ident(name: str) -> str:
    """An InfluxQL identifier, double-quoted with backslashes and quotes escaped."""
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def quote_str(value: str) -> str:
    """An InfluxQL string literal."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def qualified(settings: InfluxSettings, measurement: str, which: str = "raw") -> str:
    """See :meth:`InfluxClient.source`."""
    rp = settings.rp(which)
    if rp is None:
        return quote_ident(measurement)
    return f"{quote_ident(settings.database)}.{quote_ident(rp)}.{quote_ident(measurement)}"
