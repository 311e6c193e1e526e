"""The collector's InfluxDB writer: the shared client (:mod:`takt_store.client`) wired to
the collector's metrics, plus database setup that retries until InfluxDB is reachable.

The status policy itself (accept / retry / split / bisect) lives in the shared client.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from collector.metrics import Metrics
from takt_store.capabilities import Capabilities, check, ensure_schema
from takt_store.client import InfluxClient, WriteResult
from takt_store.errors import CapabilityError, InfluxError, WriterStopped
from takt_store.settings import InfluxSettings

log = logging.getLogger(__name__)

__all__ = ["InfluxWriter", "WriteResult", "WriterStopped"]


class InfluxWriter(InfluxClient):
    """:class:`InfluxClient` counting retries in ``takt_collector_write_retries_total``."""

    def __init__(
        self,
        settings: InfluxSettings,
        metrics: Metrics,
        stopping: Callable[[], bool] = lambda: False,
    ) -> None:
        super().__init__(
            settings,
            stopping=stopping,
            on_retry=lambda cause: metrics.retries.labels(cause=cause).inc(),
            on_missing_database=self._ensure_database_quietly,
        )
        self.metrics = metrics
        self.capabilities: Capabilities | None = None

    async def ensure_database(self) -> None:
        """Set up (when ``create``) and check what the server supports, retrying until it
        answers; a missing capability (:class:`CapabilityError`) is fatal at once."""
        while True:
            try:
                self.capabilities = await check(self)
                return
            except CapabilityError:
                raise
            except InfluxError as err:
                if self.stopping():
                    raise WriterStopped(str(err)) from None
                log.warning("influx setup failed, retrying", extra={"error": str(err)})
                await asyncio.sleep(1.0)

    async def _ensure_database_quietly(self) -> None:
        if not self.settings.create:
            return
        try:
            await ensure_schema(self)
        except InfluxError as err:
            log.warning("influx setup failed", extra={"error": str(err)})
