"""The ground truth: what really happened, per worker, station and time bucket.

Computed from the plan alone (never from what devices delivered), in integer
milliseconds, and serialised with sorted keys and fixed rounding, so the same
seed gives byte-identical files.
"""

from __future__ import annotations

import csv
import io
import json
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from simulators.devicestate import DeviceState
from simulators.plan import StationPlan, Unit
from simulators.scenario import EXCUSED, Scenario


def iso(start: datetime, offset_ms: int) -> str:
    """UTC ISO-8601 with milliseconds only when needed, e.g. 2026-03-14T06:00:00Z."""
    t = start + timedelta(milliseconds=offset_ms)
    ms = t.microsecond // 1000
    return t.strftime("%Y-%m-%dT%H:%M:%S") + (f".{ms:03d}" if ms else "") + "Z"


@dataclass
class _Acc:
    good: int = 0
    defects: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    work_ms: int = 0
    effective_ms: int = 0
    idle_ms: int = 0
    down_ms: dict[str, int] = field(default_factory=lambda: defaultdict(int))


def _split(start: int, end: int, bucket: int) -> list[tuple[int, int, int]]:
    """(bucket index, from, to) pieces of [start, end)."""
    out = []
    t = start
    while t < end:
        b = t // bucket
        upto = min(end, (b + 1) * bucket)
        out.append((b, t, upto))
        t = upto
    return out


def _kpis(
    worker: str, good: int, defects: int, work_ms: int, eff_ms: int, std_good_s: float
) -> dict[str, Any]:
    units = good + defects
    eff_s = eff_ms / 1000
    return {
        "worker": worker,
        "good": good,
        "defects": defects,
        "units": units,
        "defect_rate": round(defects / units, 6) if units else None,
        "work_s": work_ms / 1000,
        "effective_s": eff_s,
        "efficiency_per_h": round(good / (eff_s / 3600), 4) if eff_s else None,
        "pct_of_standard": round(100 * std_good_s / eff_s, 4) if eff_s else None,
    }


def build_ledger(scenario: Scenario, plans: dict[str, StationPlan]) -> dict[str, Any]:
    """The ledger document (see docs/simulators.md for every field)."""
    bucket = round(scenario.ledger_bucket * 1000)
    end_ms = round(scenario.duration * 1000)
    rows: dict[tuple[str, str, str, int], _Acc] = defaultdict(_Acc)
    unattributed: dict[tuple[str, str, int], _Acc] = defaultdict(_Acc)
    stations_out = []
    for plan in plans.values():
        line, st = plan.line.id, plan.station.id
        for seg in plan.segments:
            if seg.worker is None:
                continue
            for b, t0, t1 in _split(seg.start_ms, seg.end_ms, bucket):
                acc = rows[(seg.worker, line, st, b)]
                acc.work_ms += t1 - t0
                if seg.state in EXCUSED:
                    acc.down_ms[seg.state] += t1 - t0
                else:
                    acc.effective_ms += t1 - t0
                    if seg.state == "idle":
                        acc.idle_ms += t1 - t0
        device = DeviceState.initial(plan.station, scenario.counter_bits)
        good = restarts = 0
        defects: dict[str, int] = defaultdict(int)
        for ev in plan.events:
            device.apply(ev)
            if not isinstance(ev, Unit):
                restarts += ev.__class__.__name__ == "Restart"
                continue
            b = ev.t_ms // bucket
            acc = rows[(ev.worker, line, st, b)] if ev.worker else unattributed[(line, st, b)]
            if ev.good:
                acc.good += 1
                good += 1
            else:
                acc.defects[ev.code] += 1
                defects[ev.code] += 1
        down: dict[str, int] = defaultdict(int)
        for seg in plan.segments:
            if seg.state in EXCUSED:
                down[seg.state] += seg.end_ms - seg.start_ms
        stations_out.append(
            {
                "line": line,
                "station": st,
                "protocol": plan.station.protocol,
                "model": plan.station.model,
                "standard_cycle_s": plan.station.standard_cycle_s,
                "good": good,
                "defects": dict(sorted(defects.items())),
                "down_s": {k: v / 1000 for k, v in sorted(down.items())},
                "restarts": restarts,
                "rollovers": device.rollovers,
                "final_counters": {
                    "good": device.good,
                    "rejects": dict(sorted(device.rejects.items())),
                    "reject_total": device.reject_total,
                },
            }
        )
    std = {st.id: st.standard_cycle_s for _, st in scenario.stations()}
    row_list = []
    totals: dict[str, list[float]] = {}
    for (worker, line, st, b), acc in sorted(rows.items()):
        row_list.append(
            {
                "worker": worker,
                "line": line,
                "station": st,
                "start": iso(scenario.start, b * bucket),
                "end": iso(scenario.start, min((b + 1) * bucket, end_ms)),
                "good": acc.good,
                "defects": dict(sorted(acc.defects.items())),
                "work_s": acc.work_ms / 1000,
                "effective_s": acc.effective_ms / 1000,
                "idle_s": acc.idle_ms / 1000,
                "down_s": {k: v / 1000 for k, v in sorted(acc.down_ms.items())},
                "standard_cycle_s": std[st],
            }
        )
        t = totals.setdefault(worker, [0, 0, 0, 0, 0.0])
        t[0] += acc.good
        t[1] += sum(acc.defects.values())
        t[2] += acc.work_ms
        t[3] += acc.effective_ms
        t[4] += acc.good * std[st]
    kpis = [
        _kpis(w, int(t[0]), int(t[1]), int(t[2]), int(t[3]), t[4])
        for w, t in sorted(totals.items())
    ]
    return {
        "scenario": scenario.name,
        "seed": scenario.seed,
        "start": iso(scenario.start, 0),
        "end": iso(scenario.start, end_ms),
        "bucket_s": bucket / 1000,
        "rows": row_list,
        "unattributed": [
            {
                "line": line,
                "station": st,
                "start": iso(scenario.start, b * bucket),
                "end": iso(scenario.start, min((b + 1) * bucket, end_ms)),
                "good": acc.good,
                "defects": dict(sorted(acc.defects.items())),
            }
            for (line, st, b), acc in sorted(unattributed.items())
        ],
        "kpis": kpis,
        "stations": stations_out,
    }


CSV_FIELDS = [
    "worker",
    "line",
    "station",
    "start",
    "end",
    "good",
    "defects",
    "defects_by_code",
    "work_s",
    "effective_s",
    "idle_s",
    "down_s",
    "down_by_reason",
    "standard_cycle_s",
]


def ledger_csv(ledger: dict[str, Any]) -> str:
    """One line per worker row and one per unattributed row (worker empty)."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_FIELDS, lineterminator="\n")
    writer.writeheader()
    for row in ledger["rows"]:
        writer.writerow(
            {
                **{k: row[k] for k in ("worker", "line", "station", "start", "end", "good")},
                "defects": sum(row["defects"].values()),
                "defects_by_code": ";".join(f"{k}:{v}" for k, v in row["defects"].items()),
                "work_s": row["work_s"],
                "effective_s": row["effective_s"],
                "idle_s": row["idle_s"],
                "down_s": sum(row["down_s"].values()),
                "down_by_reason": ";".join(f"{k}:{v}" for k, v in row["down_s"].items()),
                "standard_cycle_s": row["standard_cycle_s"],
            }
        )
    for row in ledger["unattributed"]:
        writer.writerow(
            {
                "worker": "",
                **{k: row[k] for k in ("line", "station", "start", "end", "good")},
                "defects": sum(row["defects"].values()),
                "defects_by_code": ";".join(f"{k}:{v}" for k, v in row["defects"].items()),
            }
        )
    return buf.getvalue()


def ledger_json(ledger: dict[str, Any]) -> str:
    return json.dumps(ledger, indent=1) + "\n"


def write_ledger(ledger: dict[str, Any], folder: Path) -> None:
    """ledger.json and ledger.csv into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "ledger.json").write_text(ledger_json(ledger))
    (folder / "ledger.csv").write_text(ledger_csv(ledger))


def write_roster(scenario: Scenario, folder: Path) -> Path:
    """roster.yaml: ``badges: {badge: worker id}``, what the agent maps badges through."""
    folder.mkdir(parents=True, exist_ok=True)
    roster = {"badges": {w.badge: w.id for w in sorted(scenario.workers, key=lambda w: w.badge)}}
    path = folder / "roster.yaml"
    path.write_text(yaml.safe_dump(roster, sort_keys=True))
    return path
