"""Where a worker worked in a bucket: the main line and station, and every station (pure).

A worker row sums every station the worker was at; HR still needs to see where that was.
The main station is the one with the most logged-in seconds (work intervals), then the
most units (devices without work intervals), then the name, so it is stable.
"""

from __future__ import annotations

from typing import Any, cast

import pandas as pd

Place = dict[str, Any]


def worker_places(units: pd.DataFrame, work: pd.DataFrame) -> dict[tuple[str, int], Place]:
    """(worker, bucket index) -> {"line", "station", "stations": ["line/station", ...]},
    stations ordered main first. Frames as ``compute_kpis`` prepared them (column ``b``)."""
    keys = ["worker", "b", "line", "station"]
    parts = []
    if not work.empty:
        parts.append(work.groupby(keys)["work_s"].sum())
    if not units.empty:
        parts.append(units.groupby(keys)["count"].sum().rename("units"))
    if not parts:
        return {}
    weights = pd.concat(parts, axis=1).fillna(0.0).reset_index()
    for column in ("work_s", "units"):
        if column not in weights:
            weights[column] = 0.0
    weights = weights.sort_values(
        ["worker", "b", "work_s", "units", "line", "station"],
        ascending=[True, True, False, False, True, True],
        kind="stable",
    )
    out: dict[tuple[str, int], Place] = {}
    for key, group in weights.groupby(["worker", "b"], sort=False):
        worker, bucket = cast(tuple[str, int], key)
        lines, stations = list(group["line"]), list(group["station"])
        out[(str(worker), int(bucket))] = {
            "line": str(lines[0]),
            "station": str(stations[0]),
            "stations": [f"{ln}/{st}" for ln, st in zip(lines, stations, strict=True)],
        }
    return out
