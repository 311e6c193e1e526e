"""Generate big scenarios for benchmarks: many stations, two operators each (hand-over mid-run)."""

from __future__ import annotations

from typing import Any

CYCLES = (20.0, 30.0, 45.0, 60.0)
CODES = ["E01", "E02", "E03"]


def make_load(
    stations: int = 200,
    *,
    per_line: int = 20,
    hours: float = 1.0,
    acceleration: float = 20.0,
    protocols: tuple[str, ...] = ("mqtt", "opcua"),
    seed: int = 1,
) -> dict[str, Any]:
    """A scenario dict: ``stations`` stations cycling through ``protocols``, 2 workers each."""
    duration = round(hours * 3600)
    half = duration // 2
    lines: list[dict[str, Any]] = []
    workers: list[dict[str, Any]] = []
    for i in range(stations):
        if i % per_line == 0:
            lines.append({"id": f"L{len(lines) + 1:02d}", "stations": []})
        sid = f"S{i + 1:04d}"
        station: dict[str, Any] = {
            "id": sid,
            "protocol": protocols[i % len(protocols)],
            "standard_cycle_s": CYCLES[i % len(CYCLES)],
            "defect_codes": list(CODES),
        }
        if i % 5 == 0:
            start = duration // 4 + (i * 37) % (duration // 8)
            station["downtime"] = [{"start": start, "end": start + 300, "reason": "fault"}]
        if station["protocol"] == "mqtt" and i % 10 == 2:
            station["duplicate_p"] = 0.01
        lines[-1]["stations"].append(station)
        for k, (a, b) in enumerate(((0, half), (half, duration))):
            n = 2 * i + k + 1
            workers.append(
                {
                    "id": f"W{n:05d}",
                    "badge": f"{0xB00000 + n:06X}",
                    "shift": "A",
                    "cycle": {"pace": round(0.85 + (n * 7 % 30) / 100, 2), "cv": 0.12},
                    "defect_rate": round(0.005 + (n * 3 % 10) / 500, 3),
                    "assignments": [{"station": sid, "start": a, "end": b}],
                }
            )
    return {
        "name": f"load{stations}",
        "seed": seed,
        "start": "2026-03-14T06:00:00Z",
        "duration": duration,
        "time_acceleration": acceleration,
        "ledger_bucket": "1h",
        "shifts": {"A": {"start": 0, "end": duration}},
        "lines": lines,
        "workers": workers,
    }
