"""Hourly rollups kept exact by re-aggregating every hour the collector wrote into.

Recomputing a whole hour (a query plus a write: :mod:`takt_store.rollups`) is an
idempotent overwrite, so late, replayed and redelivered events all end up in
the rollup without bookkeeping; debouncing turns a stream of writes into one
query per touched hour every few seconds. The hours to recompute live in a
durable queue (:mod:`collector.rollupqueue`) that is worked off at start, and
every hour is retried on its own schedule: one hour that InfluxDB refuses never
blocks the rest.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from collector.config import RollupSettings
from collector.influx import InfluxWriter
from collector.metrics import Metrics
from collector.rollupqueue import PendingHour, RollupQueue
from takt_common.backoff import step
from takt_store.rollups import recompute

log = logging.getLogger(__name__)


class Rollups:
    """Recomputes the queue's hours once no write touched them for ``debounce_s``."""

    def __init__(
        self,
        writer: InfluxWriter,
        metrics: Metrics,
        settings: RollupSettings,
        queue: RollupQueue,
    ) -> None:
        self.writer = writer
        self.metrics = metrics
        self.settings = settings
        self.queue = queue
        self._wake = asyncio.Event()

    def touch(self, hours: set[int]) -> None:
        """Record hours written into; durable when this returns (call before the MQTT ack)."""
        if hours:
            self.queue.add(hours)
            self._wake.set()

    def health(self) -> tuple[bool, dict[str, object]]:
        count, oldest = self.queue.stats()
        age = 0.0 if oldest is None else max(0.0, time.time() - oldest)
        self.metrics.rollup_pending.set(count)
        self.metrics.rollup_oldest.set(age)
        detail: dict[str, object] = {"rollup_pending_hours": count, "rollup_oldest_s": round(age)}
        return age < self.settings.stale_after_s, detail

    async def run(self) -> None:
        """Work off what the last run left, then whatever writes add."""
        while True:
            await self.flush(settled=False)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self.settings.debounce_s)
            self._wake.clear()

    async def flush(self, *, settled: bool = True) -> int:
        """Recompute due hours now; ``settled=False`` leaves hours written in the last
        ``debounce_s`` for later. Returns how many hours failed."""
        now = time.time()
        cutoff = now if settled else now - self.settings.debounce_s
        failures = 0
        while batch := self.queue.due(now, cutoff):
            for pending in batch:
                if not await self._recompute(pending):
                    failures += 1
            if len(batch) < 1000:
                break
        self.health()
        return failures

    async def _recompute(self, pending: PendingHour) -> bool:
        try:
            await recompute(self.writer, pending.hour)
        except Exception as err:  # noqa: BLE001 - any failure: this hour is retried alone
            delay = step(self.settings.debounce_s, self.settings.retry_max_s, pending.attempts)
            self.queue.failed(pending, str(err), time.time() + delay)
            self.metrics.rollup_failures.inc()
            log.warning(
                "rollup failed, will retry",
                extra={"hour_ns": pending.hour, "retry_in_s": delay, "error": str(err)[:300]},
            )
            return False
        self.queue.done(pending)
        self.metrics.rollups.inc()
        return True
