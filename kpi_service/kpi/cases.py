"""What an approved case does to the KPI data: delta rows from the raw points of its span.

Pure pandas, no I/O (``kpi_service.kpi.adjusted`` reads the points and applies these).
A case is turned into *delta rows* in the frames ``compute_kpis`` sums, never into an
edit of stored points, so:

- the deltas add up with whatever answered the rest of the range (raw points or hourly
  rollups): each delta row carries the time and tags of the raw point it corrects, so it
  falls into the same calendar bucket and the same entity as that point;
- every computation that sums those frames (KPI list and export, evidence, distribution,
  scores, self-service, progress, the pending deltas of a closed period) sees the same
  correction, and the raw data stays what the devices said.

Two effects:

``excuse`` (equipment problem not signalled, material shortage, training, other): the
span's effective work time of that worker at that station becomes excused down time.
Per raw work point ``p`` (one agent interval, at most a minute long) the excused seconds
are ``p.effective_s * overlap(p, span) / length(p)``: the whole effective time of every
interval inside the span, pro rata for an interval the span cuts. They are taken out of
``effective_s`` and added to ``down_s`` (reason ``case``); ``work_s`` (logged-in time)
stays. Down time the worker already did not own is not excused twice.

``reattribute`` (wrong operator attribution): every unit event of the worker at that
station inside the span (good and defective, with its defect code, and its serial) is
moved to the right worker: ``-count`` for the one, ``+count`` for the other. Logged-in
time stays with whoever was logged in (a separate excuse case takes it out of effective
time when it should not count).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import numpy as np
import pandas as pd

from kpi_service.kpi.calendar import UNSCHEDULED, Bucket, epoch_ns
from kpi_service.kpi.compute import (
    DOWN_COLUMNS,
    ENTITY_KEYS,
    SERIAL_COLUMNS,
    UNIT_COLUMNS,
    WORK_COLUMNS,
    Entity,
    assign_buckets,
)
from takt_wire import UNATTRIBUTED

Effect = Literal["excuse", "reattribute"]
EXCUSED_REASON = "case"
"""The down reason excused seconds are shown under (``down_by_reason``)."""
RAW_WORK_COLUMNS = ["time", "site", "line", "station", "worker", "effective_s", "work_s",
                    "start_ns", "end_ns"]  # fmt: skip
RAW_UNIT_COLUMNS = ["time", "site", "line", "station", "worker", "outcome", "defect_code",
                    "count", "serial"]  # fmt: skip


@dataclass(frozen=True)
class CaseEffect:
    """An approved case as the KPI computation needs it."""

    id: int
    kind: str
    effect: Effect
    worker: str
    to_worker: str | None
    line: str
    station: str
    start: datetime
    end: datetime

    @property
    def start_ns(self) -> int:
        return epoch_ns(self.start)

    @property
    def end_ns(self) -> int:
        return epoch_ns(self.end)


@dataclass(frozen=True)
class Deltas:
    """Rows to add to the fetched frames (each with a ``case`` column naming its case)."""

    units: pd.DataFrame
    work: pd.DataFrame
    down: pd.DataFrame
    serials: pd.DataFrame

    @classmethod
    def empty(cls) -> Deltas:
        return cls(
            pd.DataFrame(columns=[*UNIT_COLUMNS, "case"]),
            pd.DataFrame(columns=[*WORK_COLUMNS, "case"]),
            pd.DataFrame(columns=[*DOWN_COLUMNS, "case"]),
            pd.DataFrame(columns=[*SERIAL_COLUMNS, "case"]),
        )


def excuse(case: CaseEffect, raw_work: pd.DataFrame) -> Deltas:
    """Delta rows excusing the case's span: ``raw_work`` holds the worker's raw work points
    at the case's station that may overlap the span (``RAW_WORK_COLUMNS``)."""
    out = Deltas.empty()
    if raw_work.empty:
        return out
    w = raw_work.reset_index(drop=True)
    start = w["start_ns"].to_numpy(dtype="float64").astype(np.int64)
    logged = (w["work_s"].to_numpy(dtype="float64") * 1e9).astype(np.int64)
    end_f = w["end_ns"].to_numpy(dtype="float64")
    # Points written before end_ns existed: the interval is its logged-in seconds long.
    end = np.where(np.isnan(end_f), start + logged, np.nan_to_num(end_f).astype(np.int64))
    length = end - start
    overlap = np.clip(np.minimum(end, case.end_ns) - np.maximum(start, case.start_ns), 0, None)
    inside = (start >= case.start_ns) & (start < case.end_ns)
    share = np.where(length > 0, overlap / np.where(length > 0, length, 1), inside * 1.0)
    seconds_all = np.nan_to_num(w["effective_s"].to_numpy(dtype="float64")) * share
    keep = seconds_all > 0
    if not bool(keep.any()):
        return out
    w = w[keep]
    seconds = pd.Series(seconds_all[keep])
    tags = w[["time", "site", "line", "station", "worker"]].reset_index(drop=True)
    work = tags.assign(work_s=0.0, effective_s=-seconds, down_s=seconds, case=case.id)
    down = tags.assign(reason=EXCUSED_REASON, seconds=seconds, case=case.id)
    return Deltas(out.units, work[[*WORK_COLUMNS, "case"]], down[[*DOWN_COLUMNS, "case"]],
                  out.serials)  # fmt: skip


def reattribute(case: CaseEffect, raw_units: pd.DataFrame) -> Deltas:
    """Delta rows moving the span's unit events (``RAW_UNIT_COLUMNS``, the worker's at the
    case's station) to ``case.to_worker``."""
    out = Deltas.empty()
    if raw_units.empty or case.to_worker is None:
        return out
    u = raw_units
    u = u[(u["time"] >= case.start_ns) & (u["time"] < case.end_ns)].reset_index(drop=True)
    if u.empty:
        return out
    base = u[UNIT_COLUMNS[:-1]].assign(count=u["count"].astype("int64"), case=case.id)
    units = pd.concat(
        [base.assign(count=-base["count"]), base.assign(worker=case.to_worker)],
        ignore_index=True,
    )
    with_serial = u[u["serial"].notna() & (u["serial"] != "")]
    serials = with_serial[SERIAL_COLUMNS].assign(worker=case.to_worker, case=case.id)
    return Deltas(units, out.work, out.down, serials.reset_index(drop=True))


def concat(parts: list[Deltas]) -> Deltas:
    """All parts' rows in one ``Deltas`` (empty frames left out: they carry no dtypes)."""
    empty = Deltas.empty()

    def join(name: str) -> pd.DataFrame:
        frames: list[pd.DataFrame] = [getattr(p, name) for p in parts]
        frames = [f for f in frames if not f.empty]
        fallback: pd.DataFrame = getattr(empty, name)
        return pd.concat(frames, ignore_index=True) if frames else fallback

    return Deltas(join("units"), join("work"), join("down"), join("serials"))


def annotate(
    rows: list[dict[str, Any]],
    deltas: Deltas,
    cases: dict[int, CaseEffect],
    bucket_list: list[Bucket],
    group: str,
    entity: Entity,
) -> None:
    """Add ``cases`` to every KPI row a case changed: id, kind, effect, span and what it
    did to that row (excused seconds, units moved in or out)."""
    keys = ENTITY_KEYS[entity]
    effects: dict[tuple[Any, ...], dict[int, dict[str, float]]] = {}

    def collect(frame: pd.DataFrame, fields: dict[str, pd.Series]) -> None:
        if frame.empty:
            return
        b = assign_buckets(frame["time"].astype("int64"), bucket_list, group)
        f = frame.assign(b=b, **fields)
        f = f[f["b"] != -2]
        if entity == "worker":
            f = f[f["worker"] != UNATTRIBUTED]
        sums = f.groupby([*keys, "b", "case"])[list(fields)].sum()
        for index, values in sums.iterrows():
            assert isinstance(index, tuple)
            *ident, bi, case_id = index
            label = bucket_list[int(bi)].label if int(bi) >= 0 else UNSCHEDULED
            slot = effects.setdefault((*ident, label), {}).setdefault(int(case_id), {})
            for name, value in values.items():
                slot[str(name)] = slot.get(str(name), 0.0) + float(value)

    work, units = deltas.work, deltas.units
    if not work.empty:
        collect(work, {"excused_s": work["down_s"].astype("float64")})
    if not units.empty:
        good = units["outcome"] == "good"
        count = units["count"].astype("float64")
        collect(units, {"units_good": count.where(good, 0.0),
                        "units_defect": count.where(~good, 0.0)})  # fmt: skip
    for row in rows:
        found = effects.get((*(row[k] for k in keys), row["bucket"]))
        if not found:
            continue
        shown = sorted((i, a) for i, a in found.items() if any(a.values()))
        if shown:
            row["cases"] = [describe(cases[i], amounts) for i, amounts in shown]


def describe(case: CaseEffect, amounts: dict[str, float]) -> dict[str, Any]:
    """One case as a KPI row, its evidence and the exports show it (no worker ids: rows
    may be pseudonymised; the sign of the units says moved in or out)."""
    effect: dict[str, float | int] = {}
    if "excused_s" in amounts:
        effect["excused_s"] = round(amounts["excused_s"], 6)
    for k in ("units_good", "units_defect"):
        if k in amounts:
            effect[k] = round(amounts[k])
    return {
        "case": case.id,
        "kind": case.kind,
        "effect": case.effect,
        "line": case.line,
        "station": case.station,
        "start": case.start.isoformat(),
        "end": case.end.isoformat(),
        "change": effect,
    }
