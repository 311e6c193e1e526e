"""InfluxDB v1 HTTP writer with a Telegraf-like status policy.

2xx accept; 429/503 wait (``Retry-After`` honoured); other 5xx, timeouts and
refused connections retry with capped exponential backoff, forever, because the
caller has not acknowledged the MQTT messages yet (the broker holds the backlog);
413 splits the batch; 400 and other 4xx bisect down to the bad lines, which are
returned as rejected, so one bad point never blocks the rest or loops.
"""

from __future__ import annotations

import asyncio
import gzip
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    wait_exponential_jitter,
)

from collector.config import InfluxSettings
from collector.metrics import Metrics
from takt_common.errors import TaktError

log = logging.getLogger(__name__)


class WriterStopped(TaktError, RuntimeError):
    """Shutdown came while a write was still being retried; nothing was acknowledged."""


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


class InfluxWriter:
    """Writes line-protocol batches to one database/retention policy."""

    def __init__(
        self,
        settings: InfluxSettings,
        metrics: Metrics,
        stopping: Callable[[], bool] = lambda: False,
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self.stopping = stopping
        auth = None
        if settings.username and settings.password:
            auth = httpx.BasicAuth(settings.username, settings.password.get_secret_value())
        self._client = httpx.AsyncClient(
            base_url=settings.url, auth=auth, timeout=settings.timeout_s
        )
        self._params = {"db": settings.database, "rp": settings.raw_rp, "precision": "ns"}
        self.failing_since: float | None = None
        """Monotonic time of the first failure of the current outage (health check)."""
        self._wait = wait_exponential_jitter(multiplier=0.1, max=settings.max_backoff_s, jitter=0.1)

    async def aclose(self) -> None:
        await self._client.aclose()

    # -- writing ---------------------------------------------------------------------------

    async def write(self, lines: list[str]) -> WriteResult:
        """Write every line or return it as rejected; retries until InfluxDB answers."""
        result = WriteResult()
        if lines:
            await self._write_part(lines, result)
        return result

    async def _write_part(self, lines: list[str], result: WriteResult) -> None:
        try:
            await self._post_with_retry(lines, result)
            result.written += len(lines)
        except _Split as split:
            if len(lines) == 1:
                result.rejected.append((lines[0], f"HTTP {split.status}: {split.detail}"))
                return
            self.metrics.retries.labels(cause=f"split_{split.status}").inc()
            half = len(lines) // 2
            await self._write_part(lines[:half], result)
            await self._write_part(lines[half:], result)

    async def _post_with_retry(self, lines: list[str], result: WriteResult) -> None:
        body = "\n".join(lines).encode()
        headers = {"Content-Type": "text/plain; charset=utf-8"}
        if self.settings.gzip:
            body = gzip.compress(body, compresslevel=1, mtime=0)
            headers["Content-Encoding"] = "gzip"
        retrying = AsyncRetrying(
            retry=retry_if_exception_type(_Retry),
            wait=self._wait_for,
            stop=self._stop_when_shutting_down,
            before_sleep=self._count_retry,
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    result.requests += 1
                    await self._post_once(body, headers)
        except _Retry as err:
            raise WriterStopped(str(err)) from None
        self.failing_since = None

    async def _post_once(self, body: bytes, headers: dict[str, str]) -> None:
        try:
            response = await self._client.post(
                "/write", params=self._params, content=body, headers=headers
            )
        except httpx.TransportError as err:
            self._failing()
            raise _Retry("connection", f"{type(err).__name__}: {err}") from None
        status = response.status_code
        if 200 <= status < 300:
            return
        detail = _error_text(response)
        if status in (429, 503):
            self._failing()
            raise _Retry(str(status), detail, _retry_after(response))
        if status >= 500 or status in (401, 403, 404, 408):
            # Server trouble, or a setup problem (auth, missing database) an operator
            # can fix: keep the data and retry; the health check turns red meanwhile.
            self._failing()
            if status == 404:
                await self._ensure_database_quietly()
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

    def _stop_when_shutting_down(self, state: RetryCallState) -> bool:
        return self.stopping()

    def _count_retry(self, state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        cause = exc.cause if isinstance(exc, _Retry) else "unknown"
        self.metrics.retries.labels(cause=cause).inc()
        if state.attempt_number in (1, 10) or state.attempt_number % 100 == 0:
            log.warning(
                "influx write failed, retrying",
                extra={"attempt": state.attempt_number, "error": str(exc)},
            )

    # -- setup and queries -----------------------------------------------------------------

    async def query(self, q: str) -> dict[str, object]:
        """POST an InfluxQL statement (or several, ';'-separated); raise on any error."""
        response = await self._client.post("/query", data={"q": q, "db": self.settings.database})
        response.raise_for_status()
        payload: dict[str, object] = response.json()
        results = payload.get("results")
        if isinstance(results, list):
            for item in results:
                if isinstance(item, dict) and "error" in item:
                    raise RuntimeError(f"InfluxQL error: {item['error']}")
        if "error" in payload:
            raise RuntimeError(f"InfluxQL error: {payload['error']}")
        return payload

    async def _setup(self) -> None:
        s = self.settings
        db = s.database
        await self.query(f'CREATE DATABASE "{db}"')
        shown = await self.query(f'SHOW RETENTION POLICIES ON "{db}"')
        existing = {
            str(row[0])
            for result in shown.get("results", [])  # type: ignore[attr-defined]
            for series in result.get("series", [])
            for row in series.get("values", [])
        }
        for rp, duration, default in (
            (s.raw_rp, s.raw_duration, True),
            (s.rollup_rp, s.rollup_duration, False),
        ):
            verb, replication = ("ALTER", "") if rp in existing else ("CREATE", " REPLICATION 1")
            await self.query(
                f'{verb} RETENTION POLICY "{rp}" ON "{db}" DURATION {duration}{replication}'
                + (" DEFAULT" if default else "")
            )

    async def ensure_database(self) -> None:
        """Create the database and retention policies (idempotent), retrying until reachable."""
        while True:
            try:
                await self._setup()
                return
            except (httpx.HTTPError, RuntimeError) as err:
                if self.stopping():
                    raise WriterStopped(str(err)) from None
                log.warning("influx setup failed, retrying", extra={"error": str(err)})
                await asyncio.sleep(1.0)

    async def _ensure_database_quietly(self) -> None:
        if not self.settings.create:
            return
        try:
            await self._setup()
        except (httpx.HTTPError, RuntimeError) as err:
            log.warning("influx setup failed", extra={"error": str(err)})


def _error_text(response: httpx.Response) -> str:
    try:
        data = response.json()
    except ValueError:
        return response.text[:500]
    if isinstance(data, dict) and "error" in data:
        return str(data["error"])[:500]
    return response.text[:500]
