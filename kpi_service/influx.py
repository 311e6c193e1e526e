"""Read-only InfluxQL for the KPI service, over the shared client (:mod:`takt_store.client`).

``InfluxReader`` takes an :class:`~takt_store.settings.InfluxSettings`: the KPI
settings' ``influx`` section, the same model as the collector's, and the service's
time zone, whose daily rollups it reads once it has seen the collector keep them.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable

import httpx

from takt_store.client import InfluxClient, Series, quote_ident, quote_str
from takt_store.errors import InfluxError
from takt_store.schema import DAY_SUFFIX, TZ_TAG
from takt_store.settings import InfluxSettings

__all__ = [
    "InfluxError",
    "InfluxReader",
    "Series",
    "is_name",
    "quote_ident",
    "quote_str",
    "tag_in",
]

DAILY_CHECK_S = 60.0
"""How long the answer to "are there daily rollups in our zone?" is reused."""

_IDENT = re.compile(r"^[A-Za-z0-9_.:\-]+$")


def tag_in(tag: str, values: frozenset[str] | set[str] | list[str]) -> str:
    """``(tag = 'a' OR tag = 'b')``: exact matches (no regex), values escaped."""
    if not values:
        return "false"
    return "(" + " OR ".join(f"{quote_ident(tag)} = {quote_str(v)}" for v in sorted(values)) + ")"


def is_name(value: str) -> bool:
    return bool(_IDENT.match(value)) and len(value) <= 64


class InfluxReader:
    """The shared client plus where the KPI measurements live; every query asks for ns."""

    def __init__(
        self,
        settings: InfluxSettings,
        *,
        use_rollups: Callable[[], bool] = lambda: True,
        timezone: str | None = None,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self.settings = settings
        self._use_rollups = use_rollups
        self.timezone = timezone
        """The service's zone: daily rollups are read only if kept in this zone."""
        self._client = InfluxClient(settings, http=client)
        self._daily: tuple[float, bool] | None = None

    @property
    def use_rollups(self) -> bool:
        """The KPI setting, read at every query (a running app's settings may be changed,
        as the benchmark does to time the raw path)."""
        return self._use_rollups()

    async def daily_zone(self) -> str | None:
        """The zone whose daily rollups the planner may read, or None (hourly and raw only).

        Daily points are tagged with the zone of their calendar day; the service reads
        them only when the collector keeps them in the service's zone (checked at most
        every ``DAILY_CHECK_S``: a cheap index lookup), so a collector set to another
        zone, or without daily rollups, never makes a day sum the wrong 24 hours.
        """
        if self.timezone is None or not self.use_rollups:
            return None
        now = time.monotonic()
        if self._daily is None or now - self._daily[0] > DAILY_CHECK_S:
            q = "; ".join(
                f"SHOW TAG VALUES FROM {self.source(m + DAY_SUFFIX, rollup=True)} "
                f"WITH KEY = {quote_ident(TZ_TAG)}"
                for m in ("units", "work")
            )
            zones = {str(row[1]) for series in await self.query(q) for s in series
                     for row in s["values"]}  # fmt: skip
            self._daily = (now, self.timezone in zones)
        return self.timezone if self._daily[1] else None

    def source(self, measurement: str, *, rollup: bool = False) -> str:
        """InfluxQL name of a raw (or rollup) measurement, with or without retention policies."""
        return self._client.source(measurement, "rollup" if rollup else "raw")

    async def query(self, q: str) -> list[list[Series]]:
        """Run one or more ``;``-separated statements; returns the series of each statement."""
        return await self._client.query(q)

    async def aclose(self) -> None:
        await self._client.aclose()
