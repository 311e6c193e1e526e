"""Read-only InfluxQL over the v1 HTTP API (the only module here that talks to InfluxDB)."""

from __future__ import annotations

import re
from typing import Any

import httpx

from kpi_service.core.config import Settings
from takt_common.errors import TaktError

_IDENT = re.compile(r"^[A-Za-z0-9_.:\-]+$")


class InfluxError(TaktError, RuntimeError):
    """InfluxDB refused or failed a query (the message carries its answer)."""


def quote_ident(name: str) -> str:
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def quote_str(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def tag_in(tag: str, values: frozenset[str] | set[str] | list[str]) -> str:
    """``(tag = 'a' OR tag = 'b')``: exact matches (no regex), values escaped."""
    if not values:
        return "false"
    return "(" + " OR ".join(f"{quote_ident(tag)} = {quote_str(v)}" for v in sorted(values)) + ")"


def is_name(value: str) -> bool:
    return bool(_IDENT.match(value)) and len(value) <= 64


Series = dict[str, Any]


class InfluxReader:
    """Wraps one ``httpx.AsyncClient``; every query asks for nanosecond epochs."""

    def __init__(self, settings: Settings, client: httpx.AsyncClient | None = None) -> None:
        self.settings = settings
        auth: tuple[str, str] | None = None
        if settings.influx_username:
            secret = settings.influx_password
            password = secret.get_secret_value() if secret else ""
            auth = (settings.influx_username, password)
        self._client = client or httpx.AsyncClient(
            base_url=settings.influx_url, auth=auth, timeout=settings.influx_timeout_s
        )

    @property
    def raw(self) -> str:
        return f"{quote_ident(self.settings.influx_db)}.{quote_ident(self.settings.influx_rp_raw)}"

    @property
    def rollup(self) -> str:
        db = quote_ident(self.settings.influx_db)
        return f"{db}.{quote_ident(self.settings.influx_rp_rollup)}"

    async def query(self, q: str) -> list[list[Series]]:
        """Run one or more ``;``-separated statements; returns the series of each statement."""
        try:
            response = await self._client.post(
                "/query", data={"q": q, "db": self.settings.influx_db, "epoch": "ns"}
            )
        except httpx.HTTPError as err:
            raise InfluxError(f"InfluxDB unreachable: {err}") from err
        if response.status_code != 200:
            raise InfluxError(f"InfluxDB answered {response.status_code}: {response.text[:300]}")
        out: list[list[Series]] = []
        for result in response.json().get("results", []):
            if "error" in result:
                raise InfluxError(f"InfluxQL error: {result['error']}")
            out.append(result.get("series", []))
        return out

    async def aclose(self) -> None:
        await self._client.aclose()
