"""Rebuild the engine's windows from InfluxDB after a restart (schema: docs/influx-schema.md).

Only live points (``historical = false``) of the last minutes are read; each becomes an
observation at its event time, and its identity is remembered so the same batch,
redelivered by the broker after the restart, is not counted twice.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

import httpx

from kpi_service.alerts.engine import Engine
from kpi_service.alerts.windows import Obs

log = logging.getLogger(__name__)

MEASUREMENTS = ("units", "work", "states", "sessions")


def point_seconds(time_ns: int) -> float:
    """Event time of a point: the schema puts ``floor(ts ms) * 1e6 + seq % 1e6`` in ns."""
    return (time_ns // 1_000_000) / 1000.0


def rows(series: Iterable[dict[str, Any]]) -> Iterable[dict[str, Any]]:
    for one in series:
        columns = one["columns"]
        for values in one.get("values") or []:
            yield dict(zip(columns, values, strict=True))


def obs_from_row(measurement: str, row: dict[str, Any]) -> tuple[Obs, tuple[str, str, int]] | None:
    """Map one InfluxDB row back to an observation and its identity (pure)."""
    base = {
        "site": row["site"],
        "line": row["line"],
        "station": row["station"],
        "ts": point_seconds(int(row["time"])),
    }
    identity = (str(row["agent"]), str(row["boot"]), int(row["seq"]))
    if measurement == "units":
        count = int(row["count"])
        good = count if row["outcome"] == "good" else 0
        obs = Obs(kind="unit", worker=row["worker"], good=good, defect=count - good, **base)
    elif measurement == "work":
        obs = Obs(
            kind="work",
            worker=row["worker"],
            start=int(row["start_ns"]) / 1e9,
            effective_s=float(row["effective_s"]),
            **base,
        )
    elif measurement == "states":
        obs = Obs(kind="state", worker=str(row.get("worker") or ""), state=row["state"], **base)
    elif measurement == "sessions":
        obs = Obs(kind="session", worker=row["worker"], action=row["action"], **base)
    else:
        return None
    return obs, identity


async def fetch(
    http: httpx.AsyncClient,
    url: str,
    db: str,
    rp: str,
    minutes: float,
    auth: tuple[str, str] | None,
) -> list[tuple[Obs, tuple[str, str, int]]]:
    """All live observations of the last ``minutes``, in event-time order."""
    found: list[tuple[Obs, tuple[str, str, int]]] = []
    for measurement in MEASUREMENTS:
        query = (
            f'SELECT * FROM "{rp}"."{measurement}" '
            f"WHERE time > now() - {int(minutes * 60)}s AND historical = false"
        )
        data = {"q": query, "db": db, "epoch": "ns"}
        # Basic auth: InfluxDB 1.x reads u/p only from the URL, never from a form body.
        basic = httpx.BasicAuth(*auth) if auth is not None else httpx.USE_CLIENT_DEFAULT
        response = await http.post(f"{url}/query", data=data, auth=basic)
        response.raise_for_status()
        result = response.json()["results"][0]
        if "error" in result:
            if "database not found" in result["error"]:
                return []
            raise RuntimeError(f"InfluxQL error on {measurement}: {result['error']}")
        for row in rows(result.get("series") or []):
            mapped = obs_from_row(measurement, row)
            if mapped is not None:
                found.append(mapped)
    found.sort(key=lambda pair: pair[0].ts)
    return found


def replay(engine: Engine, found: list[tuple[Obs, tuple[str, str, int]]], wall: float) -> int:
    """Feed rebuilt observations without evaluating (the next tick judges them)."""
    count = 0
    for obs, identity in found:
        if engine.remember(identity) and engine.observe(obs, wall):
            count += 1
    return count
