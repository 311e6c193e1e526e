"""InfluxQL for KPIs: sums per (time bucket, tags), turned into the frames ``compute`` expects.

Aggregation is pushed down to InfluxDB; the service only folds buckets into the plant's
calendar. Which part of a period comes from daily rollups, hourly rollups or raw
points is :mod:`kpi_service.kpi.plan`'s decision; this module runs its reads.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

import pandas as pd

from kpi_service.influx import InfluxReader, quote_ident, quote_str, tag_in
from kpi_service.kpi.calendar import Bucket
from kpi_service.kpi.compute import DOWN_COLUMNS, SERIAL_COLUMNS, UNIT_COLUMNS, WORK_COLUMNS
from kpi_service.kpi.plan import Read, plan
from takt_store.schema import DAY_SUFFIX, MONTH_SUFFIX, ROLLUP_SUFFIX, TZ_TAG

TAGS = ["site", "line", "station", "worker"]


@dataclass(frozen=True)
class Filters:
    """Tag filters (None = no filter); ``lines`` already intersected with the caller's lines."""

    sites: frozenset[str] | None = None
    lines: frozenset[str] | None = None
    stations: frozenset[str] | None = None
    workers: frozenset[str] | None = None

    def where(self) -> str:
        parts = []
        for tag, values in (
            ("site", self.sites),
            ("line", self.lines),
            ("station", self.stations),
            ("worker", self.workers),
        ):
            if values is not None:
                parts.append(tag_in(tag, values))
        return "".join(f" AND {p}" for p in parts)


@dataclass(frozen=True)
class KpiData:
    units: pd.DataFrame
    work: pd.DataFrame
    down: pd.DataFrame
    serials: pd.DataFrame | None
    source: str
    """'rollup' when any part was read from rollups (hourly or daily), else 'raw'."""
    reads: tuple[Read, ...] = ()
    """What answered which part of the period (see :mod:`kpi_service.kpi.plan`)."""


def _time_range(start_ns: int, end_ns: int) -> str:
    return f"time >= {start_ns} AND time < {end_ns}"


def frame(
    series: list[dict[str, Any]], columns: list[str], default_time: int, *, fixed: bool = False
) -> pd.DataFrame:
    """Flatten InfluxDB series (tags + rows) into one frame with ``columns``; ``fixed``
    stamps every row at ``default_time`` (a one-sum read belongs to where it starts)."""
    data: dict[str, list[Any]] = {c: [] for c in columns}
    for s in series:
        tags: dict[str, str] = s.get("tags", {})
        cols: list[str] = s["columns"]
        index = {c: i for i, c in enumerate(cols)}
        for row in s["values"]:
            for c in columns:
                if c == "time" and (fixed or "time" not in index or row[index[c]] is None):
                    data[c].append(default_time)
                elif c in index:
                    data[c].append(row[index[c]])
                else:
                    data[c].append(tags.get(c, ""))
    out = pd.DataFrame(data, columns=columns)
    if not out.empty:
        out["time"] = out["time"].astype("int64")
    return out


def _statements(reader: InfluxReader, read: Read, filters: Filters, zone: str | None) -> list[str]:
    """sum(units), sum(work), sum(down time) over one read, grouped by the KPI tags."""
    suffix = {"raw": "", "hour": ROLLUP_SUFFIX, "day": DAY_SUFFIX, "month": MONTH_SUFFIX}[
        read.level
    ]
    rollup = read.level != "raw"

    def src(m: str) -> str:
        return reader.source(m + suffix, rollup=rollup)

    where = _time_range(read.start_ns, read.end_ns) + filters.where()
    if read.level in ("day", "month"):
        assert zone is not None
        where += f" AND {quote_ident(TZ_TAG)} = {quote_str(zone)}"
    by_time = f"time({read.step_s}s), " if read.step_s else ""
    fill = " fill(none)" if read.step_s else ""
    tags = ", ".join(quote_ident(t) for t in TAGS)
    return [
        f'SELECT sum("count") AS "count" FROM {src("units")} '
        f'WHERE {where} GROUP BY {by_time}{tags}, "outcome", "defect_code"{fill}',
        f'SELECT sum("work_s") AS "work_s", sum("effective_s") AS "effective_s", '
        f'sum("down_s") AS "down_s" FROM {src("work")} '
        f"WHERE {where} GROUP BY {by_time}{tags}{fill}",
        f'SELECT sum("seconds") AS "seconds" FROM {src("downtime")} '
        f'WHERE {where} GROUP BY {by_time}{tags}, "reason"{fill}',
    ]


def _concat(frames: list[pd.DataFrame], columns: list[str]) -> pd.DataFrame:
    full = [f for f in frames if not f.empty]
    if not full:
        return pd.DataFrame({c: [] for c in columns}, columns=columns)
    return full[0] if len(full) == 1 else pd.concat(full, ignore_index=True)


async def fetch(
    reader: InfluxReader,
    bucket_list: list[Bucket],
    group: str,
    filters: Filters,
    *,
    with_serials: bool,
    now_ns: int | None = None,
) -> KpiData:
    """The sums behind ``bucket_list``, read as :func:`~kpi_service.kpi.plan.plan` says
    (``group`` is implied by the buckets; kept for callers). ``now_ns``: the clock, for
    which recent part is read raw (default: now)."""
    del group
    start, end = bucket_list[0].start_ns, bucket_list[-1].end_ns
    zone = await reader.daily_zone()
    reads = plan(
        bucket_list,
        hourly=reader.use_rollups,
        zone=ZoneInfo(zone) if zone else None,
        now_ns=time.time_ns() if now_ns is None else now_ns,
    )
    statements = [s for read in reads for s in _statements(reader, read, filters, zone)]
    if with_serials:
        tags = ", ".join(quote_ident(t) for t in TAGS)
        where = _time_range(start, end) + filters.where()
        statements.append(
            f'SELECT "serial" FROM {reader.source("units")} WHERE {where} AND "serial" =~ /./ '
            f'GROUP BY {tags}, "outcome"'
        )
    # One request per statement: InfluxDB runs separate requests on separate cores,
    # while the statements of one request run one after the other.
    answers = await asyncio.gather(*(reader.query(statement) for statement in statements))
    results = [answer[0] for answer in answers]
    parts: list[list[pd.DataFrame]] = [[], [], []]
    for i, read in enumerate(reads):
        fixed = read.step_s is None
        for j, columns in enumerate((UNIT_COLUMNS, WORK_COLUMNS, DOWN_COLUMNS)):
            parts[j].append(frame(results[3 * i + j], columns, read.start_ns, fixed=fixed))
    return KpiData(
        units=_concat(parts[0], UNIT_COLUMNS),
        work=_concat(parts[1], WORK_COLUMNS),
        down=_concat(parts[2], DOWN_COLUMNS),
        serials=frame(results[-1], SERIAL_COLUMNS, start) if with_serials else None,
        source="raw" if all(r.level == "raw" for r in reads) else "rollup",
        reads=tuple(reads),
    )


async def known_workers(reader: InfluxReader, filters: Filters) -> list[str]:
    """Worker tag values seen in work or units (for resolving pseudonyms)."""
    cond = filters.where().removeprefix(" AND ")
    where = f" WHERE {cond}" if cond else ""
    q = "; ".join(
        f'SHOW TAG VALUES FROM {reader.source(m)} WITH KEY = "worker"{where}'
        for m in ("units", "work")
    )
    names: set[str] = set()
    for series in await reader.query(q):
        for s in series:
            names.update(str(row[1]) for row in s["values"])
    return sorted(names)


EVIDENCE_FIELDS: dict[str, list[str]] = {
    "units": [
        "outcome", "defect_code", "count", "serial", "cycle_s",
        "device", "agent", "boot", "seq", "historical",
    ],
    "work": [
        "work_s", "effective_s", "down_s", "start_ns", "device", "agent", "boot", "seq",
        "historical",
    ],
    "downtime": ["reason", "seconds", "agent", "boot", "seq"],
    "gaps": ["reason", "seconds", "start_ns", "device", "agent", "boot", "seq"],
}  # fmt: skip


async def unobserved(
    reader: InfluxReader, worker: str, start_ns: int, end_ns: int, filters: Filters
) -> tuple[float, int]:
    """(seconds, spans) in which a station of the worker's could not be observed."""
    where = f'{_time_range(start_ns, end_ns)} AND "worker" = {quote_str(worker)}{filters.where()}'
    (result,) = await reader.query(
        f'SELECT sum("seconds"), count("seconds") FROM {reader.source("gaps")} WHERE {where}'
    )
    if not result:
        return 0.0, 0
    _time, seconds, spans = result[0]["values"][0]
    return float(seconds or 0.0), int(spans or 0)


async def evidence(
    reader: InfluxReader,
    measurement: str,
    worker: str,
    start_ns: int,
    end_ns: int,
    filters: Filters,
    limit: int,
    offset: int,
) -> tuple[list[dict[str, Any]], int]:
    """Raw points behind a worker's figures (one per event), and how many there are."""
    fields = ", ".join(
        quote_ident(f) for f in ["site", "line", "station", *EVIDENCE_FIELDS[measurement]]
    )
    where = f'{_time_range(start_ns, end_ns)} AND "worker" = {quote_str(worker)}{filters.where()}'
    src = reader.source(measurement)
    count_field = {"units": "count", "work": "work_s", "downtime": "seconds", "gaps": "seconds"}[
        measurement
    ]
    q = (
        f'SELECT {fields} FROM {src} WHERE {where} GROUP BY "site", "line", "station" '
        f"LIMIT {limit} OFFSET {offset}; "
        f"SELECT count({quote_ident(count_field)}) FROM {src} WHERE {where}"
    )
    rows_result, count_result = await reader.query(q)
    rows = [
        {k: v for k, v in zip(s["columns"], values, strict=True) if v is not None}
        for s in rows_result
        for values in s["values"]
    ]
    total = int(count_result[0]["values"][0][1]) if count_result else 0
    return rows, total
