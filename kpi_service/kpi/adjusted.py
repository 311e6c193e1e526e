"""The one fetch every KPI and score computation uses: InfluxDB's sums plus approved cases.

``fetch`` has the signature of ``kpi.repository.fetch`` and calls it unchanged (whatever
it reads: raw points, hourly or daily rollups), then adds the delta rows of the approved
cases overlapping the range (``kpi.cases``), computed from the *raw* points of each
case's span only. The KPI list and export, the worker evidence, the distribution, the
scores (and so closes and their pending deltas), progress and the worker's own page all
import this ``fetch``, so an approved case changes every figure computed afterwards, and
nothing else changes a figure.

The approved cases come from a :class:`CaseSource` bound to the app's reader at start-up
(``bind``); a reader without one (tools, tests of the bare computation) fetches plain data.
"""

from __future__ import annotations

import asyncio
import weakref
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import anyio.to_thread
import pandas as pd

from kpi_service.influx import InfluxReader, quote_ident, quote_str
from kpi_service.kpi import repository
from kpi_service.kpi.calendar import Bucket
from kpi_service.kpi.cases import (
    RAW_UNIT_COLUMNS,
    RAW_WORK_COLUMNS,
    CaseEffect,
    Deltas,
    annotate,
    concat,
    excuse,
    reattribute,
)
from kpi_service.kpi.compute import DOWN_COLUMNS, SERIAL_COLUMNS, UNIT_COLUMNS, WORK_COLUMNS, Entity
from kpi_service.kpi.repository import Filters, KpiData

MARGIN_NS = 86_400 * 1_000_000_000
"""How far before a span a work point may start and still overlap it: agent intervals
are at most a minute long; a day leaves room for devices and imports that report long
intervals (an interval longer than a day is not excused where it starts before this)."""


class CaseSource(Protocol):
    def approved(self, start: datetime, end: datetime) -> list[CaseEffect]:
        """Approved cases whose span overlaps [start, end)."""
        ...


_sources: weakref.WeakKeyDictionary[InfluxReader, CaseSource] = weakref.WeakKeyDictionary()


def bind(reader: InfluxReader, source: CaseSource) -> None:
    """Every ``fetch`` through ``reader`` applies the approved cases of ``source``."""
    _sources[reader] = source


@dataclass(frozen=True)
class AdjustedData(KpiData):
    """Fetched data with the cases' delta rows added, and the deltas to show them."""

    deltas: Deltas = field(default_factory=Deltas.empty)
    cases: dict[int, CaseEffect] = field(default_factory=dict)


def _dt(ns: int) -> datetime:
    return datetime.fromtimestamp(ns // 1_000_000_000, UTC).replace(
        microsecond=(ns % 1_000_000_000) // 1000
    )


def relevant(case: CaseEffect, filters: Filters) -> bool:
    if filters.lines is not None and case.line not in filters.lines:
        return False
    if filters.stations is not None and case.station not in filters.stations:
        return False
    return filters.workers is None or bool({case.worker, case.to_worker} & filters.workers)


def _keep(frame: pd.DataFrame, filters: Filters) -> pd.DataFrame:
    """Delta rows inside the caller's filters (a moved unit may land outside them)."""
    if frame.empty:
        return frame
    mask = pd.Series(True, index=frame.index)
    for tag, values in (("site", filters.sites), ("line", filters.lines),
                        ("station", filters.stations), ("worker", filters.workers)):  # fmt: skip
        if values is not None:
            mask &= frame[tag].isin(values)
    return frame[mask]


def _numeric(frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    return frame.assign(**{c: pd.to_numeric(frame[c], errors="coerce") for c in columns})


async def _case_deltas(reader: InfluxReader, case: CaseEffect, start: int, end: int) -> Deltas:
    """The case's delta rows from its span's raw points inside [start, end)."""
    who = (
        f'"worker" = {quote_str(case.worker)} AND "station" = {quote_str(case.station)} '
        f'AND "line" = {quote_str(case.line)}'
    )
    tags = '"site", "line", "station", "worker"'
    if case.effect == "excuse":
        lo, hi = max(start, case.start_ns - MARGIN_NS), min(end, case.end_ns)
        if lo >= hi:
            return Deltas.empty()
        fields = ", ".join(quote_ident(f) for f in ("effective_s", "work_s", "start_ns", "end_ns"))
        (series,) = await reader.query(
            f"SELECT {fields} FROM {reader.source('work')} "
            f"WHERE time >= {lo} AND time < {hi} AND {who} GROUP BY {tags}"
        )
        raw = repository.frame(series, RAW_WORK_COLUMNS, lo)
        raw = _numeric(raw, ["effective_s", "work_s", "start_ns", "end_ns"])
        return excuse(case, raw)
    lo, hi = max(start, case.start_ns), min(end, case.end_ns)
    if lo >= hi:
        return Deltas.empty()
    (series,) = await reader.query(
        f'SELECT "count", "serial" FROM {reader.source("units")} '
        f'WHERE time >= {lo} AND time < {hi} AND {who} GROUP BY {tags}, "outcome", "defect_code"'
    )
    raw = repository.frame(series, RAW_UNIT_COLUMNS, lo)
    serial = raw["serial"].astype("object")
    return reattribute(case, raw.assign(serial=serial.mask(serial == "")))


async def fetch(
    reader: InfluxReader,
    bucket_list: list[Bucket],
    group: str,
    filters: Filters,
    *,
    with_serials: bool,
    now_ns: int | None = None,
) -> KpiData:
    """``repository.fetch`` with the approved cases applied (see the module's doc)."""
    data = await repository.fetch(
        reader, bucket_list, group, filters, with_serials=with_serials, now_ns=now_ns
    )
    source = _sources.get(reader)
    if source is None:
        return data
    start, end = bucket_list[0].start_ns, bucket_list[-1].end_ns
    # A work point inside the range may run past its end into a span starting later.
    found = await anyio.to_thread.run_sync(source.approved, _dt(start), _dt(end + MARGIN_NS))
    cases = {c.id: c for c in found if relevant(c, filters)}
    if not cases:
        return data
    parts = await asyncio.gather(*(_case_deltas(reader, c, start, end) for c in cases.values()))
    d = concat(list(parts))
    d = Deltas(_keep(d.units, filters), _keep(d.work, filters), _keep(d.down, filters),
               _keep(d.serials, filters))  # fmt: skip
    serials = data.serials
    if serials is not None:
        for c in cases.values():
            if c.effect == "reattribute":
                serials = _without_span(serials, c)
        serials = _join(serials, d.serials, SERIAL_COLUMNS)
    return AdjustedData(
        units=_join(data.units, d.units, UNIT_COLUMNS),
        work=_join(data.work, d.work, WORK_COLUMNS),
        down=_join(data.down, d.down, DOWN_COLUMNS),
        serials=serials,
        source=data.source,
        deltas=d,
        cases=cases,
    )


def _without_span(serials: pd.DataFrame, c: CaseEffect) -> pd.DataFrame:
    """The serial rows a re-attribution moves (the deltas bring them back, relabelled)."""
    if serials.empty:
        return serials
    hit = (
        (serials["worker"] == c.worker)
        & (serials["station"] == c.station)
        & (serials["line"] == c.line)
        & (serials["time"] >= c.start_ns)
        & (serials["time"] < c.end_ns)
    )
    return serials[~hit]


def _join(base: pd.DataFrame, delta: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    if delta.empty:
        return base
    if base.empty:
        out = delta[columns].reset_index(drop=True)
    else:
        out = pd.concat([base, delta[columns]], ignore_index=True)
    return out.assign(time=out["time"].astype("int64"))


def annotated(
    data: KpiData,
    rows: list[dict[str, Any]],
    bucket_list: list[Bucket],
    group: str,
    entity: Entity,
) -> list[dict[str, Any]]:
    """``rows`` with the cases that changed each (``cases``), when ``data`` carried any."""
    if isinstance(data, AdjustedData) and data.cases:
        annotate(rows, data.deltas, data.cases, bucket_list, group, entity)
    return rows
