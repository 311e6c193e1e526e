"""KPI arithmetic on pre-aggregated frames: pure pandas, no I/O.

Inputs are the sums InfluxDB returns per (time bucket, tags); outputs are one row per
entity and calendar bucket. Standards are applied per station *before* summing up, so a
worker or line that mixes stations with and without a standard gets a % of standard
over exactly the stations that have one.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import pandas as pd

from kpi_service.core.config import Standard
from kpi_service.kpi.calendar import UNSCHEDULED, Bucket
from kpi_service.kpi.metrics import Sums, values
from kpi_service.kpi.places import worker_places
from takt_wire import UNATTRIBUTED

Entity = Literal["worker", "station", "line", "site"]
ENTITY_KEYS: dict[Entity, list[str]] = {
    "worker": ["worker"],
    "station": ["site", "line", "station"],
    "line": ["site", "line"],
    "site": ["site"],
}

UNIT_COLUMNS = ["time", "site", "line", "station", "worker", "outcome", "defect_code", "count"]
WORK_COLUMNS = ["time", "site", "line", "station", "worker", "work_s", "effective_s", "down_s"]
DOWN_COLUMNS = ["time", "site", "line", "station", "worker", "reason", "seconds"]
SERIAL_COLUMNS = ["time", "site", "line", "station", "worker", "outcome", "serial"]


def standard_lookup(standards: list[Standard]) -> dict[tuple[str | None, str], float]:
    return {(s.line, s.station): s.cycle_s for s in standards}


def line_cycles(standards: list[Standard], line: str) -> dict[str, float]:
    """Station -> standard cycle seconds on ``line`` (a line's own standard wins over the
    station-wide one), as ``compute_kpis`` applies them; the alert engine reads the same."""
    out = {s.station: s.cycle_s for s in standards if s.line is None}
    out.update({s.station: s.cycle_s for s in standards if s.line == line})
    return out


def _standard_for(table: dict[tuple[str | None, str], float], line: str, station: str) -> float:
    value = table.get((line, station), table.get((None, station)))
    return float("nan") if value is None else value


def assign_buckets(times: pd.Series, bucket_list: list[Bucket], group: str) -> pd.Series:
    """Index of the bucket holding each time; -1 = between shifts (labelled unscheduled)."""
    starts = np.array([b.start_ns for b in bucket_list], dtype=np.int64)
    ends = np.array([b.end_ns for b in bucket_list], dtype=np.int64)
    t = times.to_numpy(dtype=np.int64)
    idx = np.searchsorted(starts, t, side="right") - 1
    inside = (idx >= 0) & (t < ends[np.clip(idx, 0, None)])
    out = np.where(inside, idx, -2 if group != "shift" else -1)
    out = np.where((t < starts[0]) | (t >= ends[-1]), -2, out)
    return pd.Series(out, index=times.index)


def _prepare(
    frame: pd.DataFrame, bucket_list: list[Bucket], group: str, entity: Entity
) -> pd.DataFrame:
    if frame.empty:
        return frame.assign(b=pd.Series(dtype=np.int64))
    frame = frame.assign(b=assign_buckets(frame["time"], bucket_list, group))
    frame = frame[frame["b"] != -2]
    if entity == "worker":
        frame = frame[frame["worker"] != UNATTRIBUTED]
    return frame


def compute_kpis(
    units: pd.DataFrame,
    work: pd.DataFrame,
    down: pd.DataFrame,
    bucket_list: list[Bucket],
    group: str,
    entity: Entity,
    standards: list[Standard],
    serials: pd.DataFrame | None = None,
) -> list[dict[str, Any]]:
    """One dict per (entity, bucket), sorted by entity then time."""
    keys = [*ENTITY_KEYS[entity], "b"]
    table = standard_lookup(standards)
    units = _prepare(units, bucket_list, group, entity)
    work = _prepare(work, bucket_list, group, entity)
    down = _prepare(down, bucket_list, group, entity)

    parts: list[pd.DataFrame] = []
    if not units.empty:
        std = np.array(
            [
                _standard_for(table, ln, st)
                for ln, st in zip(units["line"], units["station"], strict=True)
            ]
        )
        good = np.where(units["outcome"] == "good", units["count"], 0)
        units = units.assign(
            units_good=good,
            units_defect=np.where(units["outcome"] == "defect", units["count"], 0),
            standard_s=np.where(np.isnan(std), 0.0, good * np.nan_to_num(std)),
        )
        parts.append(units.groupby(keys)[["units_good", "units_defect", "standard_s"]].sum())
        defects = units[units["outcome"] == "defect"]
        if not defects.empty:
            codes = defects.groupby([*keys, "defect_code"])["count"].sum()
            parts.append(_nested(codes, keys, "defects_by_code"))
    if not work.empty:
        has_std = np.array(
            [
                not np.isnan(_standard_for(table, ln, st))
                for ln, st in zip(work["line"], work["station"], strict=True)
            ]
        )
        work = work.assign(
            standard_effective_s=np.where(has_std, work["effective_s"], 0.0),
            standard_work_s=np.where(has_std, work["work_s"], 0.0),
        )
        cols = [
            "work_s",
            "effective_s",
            "down_s",
            "standard_effective_s",
            "standard_work_s",
        ]
        parts.append(work.groupby(keys)[cols].sum())
    if not down.empty:
        reasons = down.groupby([*keys, "reason"])["seconds"].sum()
        parts.append(_nested(reasons, keys, "down_by_reason"))
    if serials is not None and not serials.empty:
        parts.append(first_pass_yield(_prepare(serials, bucket_list, group, entity), keys))
    if not parts:
        return []
    merged = pd.concat(parts, axis=1).reset_index()
    records: list[dict[str, Any]] = merged.to_dict("records")  # type: ignore[assignment]
    rows = [_row(r, keys, bucket_list) for r in records]
    if entity == "worker":  # where the worker worked: main line and station, and the list
        places = worker_places(units, work)
        for row, record in zip(rows, records, strict=True):
            row.update(places.get((str(record["worker"]), int(record["b"])), {}))
    return rows


def _nested(sums: pd.Series, keys: list[str], name: str) -> pd.DataFrame:
    """Fold the last index level (code, reason) into one dict per group."""
    folded: dict[tuple[Any, ...], dict[str, float]] = {}
    for index, value in sums.items():
        assert isinstance(index, tuple)
        folded.setdefault(index[:-1], {})[str(index[-1])] = _num(value)
    frame = pd.DataFrame({name: list(folded.values())}, dtype=object)
    frame.index = pd.MultiIndex.from_tuples(list(folded.keys()), names=keys)
    return frame


def _num(v: Any) -> float:
    f = float(v)
    return int(f) if f.is_integer() else f


def first_pass_yield(serials: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Per group: distinct serials, and those whose first event was good (rework is no pass)."""
    first = serials.sort_values("time", kind="stable").drop_duplicates("serial", keep="first")
    first = first.assign(serials_passed=(first["outcome"] == "good").astype(np.int64), serials=1)
    return first.groupby(keys)[["serials", "serials_passed"]].sum()


def _row(r: dict[str, Any], keys: list[str], bucket_list: list[Bucket]) -> dict[str, Any]:
    def mapping(name: str) -> dict[str, float]:
        v = r.get(name)
        return v if isinstance(v, dict) else {}

    b = int(r["b"])
    if b >= 0:
        bucket = bucket_list[b]
    else:
        bucket = Bucket(UNSCHEDULED, bucket_list[0].start, bucket_list[-1].end)
    sums = Sums.of_row(r)  # the merged sums; NaN where a part had no rows
    out: dict[str, Any] = {k: r[k] for k in keys if k != "b"}
    out.update(
        bucket=bucket.label,
        start=bucket.start,
        end=bucket.end,
        shift=bucket.shift,
        planned_s=bucket.planned_s,
        units_good=int(sums.units_good),
        units_defect=int(sums.units_defect),
        units_total=int(sums.units_total),
        defects_by_code=mapping("defects_by_code"),
        work_s=sums.work_s,
        effective_s=sums.effective_s,
        down_s=sums.down_s,
        down_by_reason=mapping("down_by_reason"),
        standard_s=sums.standard_s,
        standard_effective_s=sums.standard_effective_s,
        standard_work_s=sums.standard_work_s,
        serials=int(sums.serials),
        serials_passed=int(sums.passed),
    )
    out.update(values(sums))
    return out
