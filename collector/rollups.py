"""Hourly rollups kept exact by re-aggregating every hour the collector wrote into.

Recomputing a whole hour with ``SELECT ... INTO ... GROUP BY time(1h), *`` is an
idempotent overwrite, so late, replayed and redelivered events all end up in
the rollup without bookkeeping; debouncing turns a stream of writes into one
query per touched hour every few seconds.
"""

from __future__ import annotations

import asyncio
import logging

from collector.config import InfluxSettings
from collector.influx import InfluxWriter
from collector.metrics import Metrics

log = logging.getLogger(__name__)

HOUR_NS = 3_600_000_000_000

ROLLUPS: dict[str, str] = {
    "units": 'sum("count") AS "count"',
    "work": 'sum("work_s") AS "work_s", sum("effective_s") AS "effective_s", '
    'sum("down_s") AS "down_s"',
    "downtime": 'sum("seconds") AS "seconds"',
}
"""Raw measurement -> aggregate written to ``<measurement>_1h`` in the rollup policy."""


def rollup_statements(settings: InfluxSettings, hour_ns: int) -> list[str]:
    """The SELECT ... INTO statements that recompute one hour of every rollup."""
    db, raw, rollup = settings.database, settings.raw_rp, settings.rollup_rp
    end = hour_ns + HOUR_NS
    return [
        f'SELECT {aggregate} INTO "{db}"."{rollup}"."{m}_1h" FROM "{db}"."{raw}"."{m}" '
        f"WHERE time >= {hour_ns} AND time < {end} GROUP BY time(1h), *"
        for m, aggregate in ROLLUPS.items()
    ]


class Rollups:
    """Collects touched hours; :meth:`run` recomputes them every ``debounce_s``."""

    def __init__(self, writer: InfluxWriter, metrics: Metrics, debounce_s: float) -> None:
        self.writer = writer
        self.metrics = metrics
        self.debounce_s = debounce_s
        self._pending: set[int] = set()
        self._wake = asyncio.Event()

    def touch(self, hours: set[int]) -> None:
        if hours:
            self._pending |= hours
            self._wake.set()

    async def run(self) -> None:
        while True:
            await self._wake.wait()
            await asyncio.sleep(self.debounce_s)
            await self.flush()

    async def flush(self) -> None:
        """Recompute every pending hour now; failed hours stay pending."""
        self._wake.clear()
        hours, self._pending = sorted(self._pending), set()
        for index, hour in enumerate(hours):
            try:
                await self.writer.query(";".join(rollup_statements(self.writer.settings, hour)))
                self.metrics.rollups.inc()
            except Exception as err:  # noqa: BLE001 - any failure: keep the hour for later
                log.warning("rollup failed, will retry", extra={"hour_ns": hour, "error": str(err)})
                self._pending.update(hours[index:])
                self._wake.set()
                return
