"""Hourly, daily and monthly rollups kept exact by re-aggregating every hour the collector
wrote into, then the local day(s) of those hours and their months.

Recomputing a whole hour (a query plus a write: :mod:`takt_store.rollups`) is an
idempotent overwrite, so late, replayed and redelivered events all end up in
the rollup without bookkeeping; debouncing turns a stream of writes into one
query per touched hour every few seconds. The hours to recompute live in a
durable queue (:mod:`collector.rollupqueue`) that is worked off at start, and
every hour is retried on its own schedule: one hour that InfluxDB refuses never
blocks the rest. An hour leaves the queue only once its day is recomputed too: a
day that fails keeps its hours queued, and the retry recomputes both.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import defaultdict
from datetime import date
from zoneinfo import ZoneInfo

from collector.config import RollupSettings
from collector.influx import InfluxWriter
from collector.metrics import Metrics
from collector.rollupqueue import PendingHour, RollupQueue
from takt_common.backoff import step
from takt_store.rollups import recompute, recompute_days, recompute_months
from takt_store.schema import days_of_hour

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
        self.zone = ZoneInfo(settings.timezone) if settings.daily else None
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
            hours = [pending for pending in batch if await self._recompute(pending)]
            failures += len(batch) - len(hours)
            failures += await self._days(hours)
            if len(batch) < 1000:
                break
        self.health()
        return failures

    async def _days(self, hours: list[PendingHour]) -> int:
        """Recompute the days (and their months) of the recomputed ``hours``; an hour is
        done once all its days are. Returns how many hours stay queued because a day failed."""
        if self.zone is None:
            for pending in hours:
                self.queue.done(pending)
            return 0
        by_day: dict[date, list[PendingHour]] = defaultdict(list)
        for pending in hours:
            for day in days_of_hour(pending.hour, self.zone):
                by_day[day].append(pending)
        failed: dict[int, str] = {}
        for day, pendings in sorted(by_day.items()):
            try:
                await recompute_days(self.writer, [day], self.zone)
                await recompute_months(self.writer, [day], self.zone)
            except Exception as err:  # noqa: BLE001 - any failure: this day is retried alone
                self.metrics.rollup_failures.inc()
                log.warning(
                    "daily rollup failed, will retry",
                    extra={"day": day.isoformat(), "error": str(err)[:300]},
                )
                failed.update((p.hour, f"day {day}: {err}") for p in pendings)
            else:
                self.metrics.rollup_days.inc()
        for pending in hours:
            if pending.hour in failed:
                self._retry(pending, failed[pending.hour])
            else:
                self.queue.done(pending)
        return len(failed)

    def _retry(self, pending: PendingHour, error: str) -> None:
        delay = step(self.settings.debounce_s, self.settings.retry_max_s, pending.attempts)
        self.queue.failed(pending, error, time.time() + delay)

    async def _recompute(self, pending: PendingHour) -> bool:
        """Recompute one hour (left queued: its day comes next, see :meth:`_days`)."""
        try:
            await recompute(self.writer, pending.hour)
        except Exception as err:  # noqa: BLE001 - any failure: this hour is retried alone
            self._retry(pending, str(err))
            self.metrics.rollup_failures.inc()
            log.warning(
                "rollup failed, will retry",
                extra={"hour_ns": pending.hour, "error": str(err)[:300]},
            )
            return False
        self.metrics.rollups.inc()
        return True
