"""Rebuild the engine's windows from InfluxDB after a restart (schema: :mod:`takt_store.schema`).

Only live points (``historical = false``) of the last minutes are read; each becomes the
observation the live engine made of the same event, through the schema's inverse of the
point time (so a work interval, stamped at its start, comes back with its end and counts
pro rata), and its identity is remembered so the same batch, redelivered by the broker
after the restart, is not counted twice.
"""

from __future__ import annotations

import logging

from kpi_service.alerts.engine import Engine
from kpi_service.alerts.windows import Obs
from takt_store.client import InfluxClient
from takt_store.errors import InfluxQueryError
from takt_store.schema import StoredPoint, decode_row, rows
from takt_store.settings import InfluxSettings

log = logging.getLogger(__name__)

MEASUREMENTS = ("units", "work", "states", "sessions")

Found = list[tuple[Obs, tuple[str, str, int]]]


def obs_of(point: StoredPoint) -> Obs | None:
    """The live observation of the event behind a stored point (pure)."""
    tags, fields = point.tags, point.fields
    site, line, station, ts = tags["site"], tags["line"], tags["station"], point.ts
    m = point.measurement
    if m == "units":
        count = int(fields["count"])
        good = count if tags["outcome"] == "good" else 0
        worker = tags["worker"]
        return Obs("unit", site, line, station, worker, ts, good=good, defect=count - good)
    if m == "work":
        assert point.start is not None
        effective = float(fields["effective_s"])
        return Obs("work", site, line, station, tags["worker"], ts, start=point.start,
                   effective_s=effective)  # fmt: skip
    if m == "states":
        worker = str(fields.get("worker") or "")
        reason = tags.get("reason") or ""
        reason = "" if reason == "none" else reason  # the collector's tag for "no reason"
        return Obs("state", site, line, station, worker, ts, state=tags["state"], reason=reason)
    if m == "sessions":
        return Obs("session", site, line, station, tags["worker"], ts, action=tags["action"])
    return None


async def fetch(influx: InfluxSettings, minutes: float) -> Found:
    """All live observations of the last ``minutes``, in event-time order.

    Raises the shared client's typed errors (``InfluxAuthError`` for refused
    credentials); a database that does not exist yet simply has nothing to rebuild.
    """
    found: Found = []
    client = InfluxClient(influx)
    try:
        for measurement in MEASUREMENTS:
            query = (
                f"SELECT * FROM {client.source(measurement)} "
                f"WHERE time > now() - {int(minutes * 60)}s AND historical = false"
            )
            try:
                [series] = await client.query(query)
            except InfluxQueryError as err:
                if err.database_missing:
                    return []
                raise
            for row in rows(series):
                point = decode_row(measurement, row)
                obs = obs_of(point)
                if obs is not None:
                    found.append((obs, point.identity))
    finally:
        await client.aclose()
    found.sort(key=lambda pair: pair[0].ts)
    return found


def replay(engine: Engine, found: Found, wall: float) -> int:
    """Feed rebuilt observations without evaluating (the next tick judges them)."""
    count = 0
    for obs, identity in found:
        if engine.remember(identity) and engine.observe(obs, wall):
            count += 1
    return count
