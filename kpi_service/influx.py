"""Read-only InfluxQL for the KPI service, over the shared client (:mod:`takt_store.client`).

``InfluxReader`` takes an :class:`~takt_store.settings.InfluxSettings`: the KPI
settings' ``influx`` section, the same model as the collector's.
"""

from __future__ import annotations

import re

import httpx

from takt_store.client import InfluxClient, Series, quote_ident, quote_str
from takt_store.errors import InfluxError
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
        use_rollups: bool = True,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self.settings = settings
        self.use_rollups = use_rollups
        self._client = InfluxClient(settings, http=client)

    def source(self, measurement: str, *, rollup: bool = False) -> str:
        """InfluxQL name of a raw (or rollup) measurement, with or without retention policies."""
        return self._client.source(measurement, "rollup" if rollup else "raw")

    async def query(self, q: str) -> list[list[Series]]:
        """Run one or more ``;``-separated statements; returns the series of each statement."""
        return await self._client.query(q)

    async def aclose(self) -> None:
        await self._client.aclose()
