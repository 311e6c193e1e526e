"""What the benchmarks share: timing against a baseline, bulk loading, and target lines.

A benchmark's ``main()`` returns its figures; ``check(...)`` entries under ``"targets"``
are printed by ``python -m bench`` as one line each with the target and whether it is
met, and land in ``var/bench/<name>.json`` with the rest.
"""

from __future__ import annotations

import itertools
import os
import statistics
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import httpx

LOAD_CHUNK = 50_000
COMPACT_AT_ONCE = (
    '  cache-snapshot-write-cold-duration = "2s"\n  compact-full-write-cold-duration = "5s"'
)
"""influxd ``[data]`` settings that compact a bulk load within seconds: a year of history
in production sits in fully compacted TSM files, data loaded a moment ago does not."""


def once(fn: Callable[[], object]) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def timed(fn: Callable[[], object], repeat: int = 7) -> float:
    """Median of ``repeat`` runs after one warm-up."""
    fn()
    return statistics.median(once(fn) for _ in range(repeat))


def paired(
    a: Callable[[], object], b: Callable[[], object], repeat: int = 7
) -> tuple[list[float], list[float]]:
    """Alternate a and b (after a warm-up of each) so both see the same load on a shared
    machine; returns the samples of each."""
    a()
    b()
    xs, ys = [], []
    for _ in range(repeat):
        xs.append(once(a))
        ys.append(once(b))
    return xs, ys


def median_ratio(xs: Sequence[float], ys: Sequence[float]) -> float:
    """Median of the per-pair ratios x/y."""
    return statistics.median(x / y for x, y in zip(xs, ys, strict=True))


def load_lines(url: str, db: str, lines: Iterable[str], rp: str | None = None) -> tuple[int, float]:
    """POST line protocol in chunks (a generator keeps a big load out of memory);
    returns (points, seconds)."""
    params = {"db": db, "precision": "ns"} | ({"rp": rp} if rp else {})
    t = time.perf_counter()
    count = 0
    with httpx.Client(base_url=url, timeout=300) as client:
        iterator = iter(lines)
        while chunk := list(itertools.islice(iterator, LOAD_CHUNK)):
            client.post("/write", params=params, content="\n".join(chunk)).raise_for_status()
            count += len(chunk)
    return count, time.perf_counter() - t


def wait_compacted(workdir: Path, timeout: float = 300) -> float:
    """Wait until influxd (started with :data:`COMPACT_AT_ONCE`) has written its cache out
    and its TSM files stop changing; returns the seconds waited."""
    t = time.perf_counter()
    seen: list[tuple[int, int]] = []
    while time.perf_counter() - t < timeout:
        tsm = sorted(workdir.rglob("*.tsm"))
        wal = sum(p.stat().st_size for p in workdir.rglob("*.wal"))
        seen.append((len(tsm), wal))
        if len(seen) >= 4 and len(set(seen[-4:])) == 1 and wal < 1_000_000:
            break
        time.sleep(2)
    return time.perf_counter() - t


def check(figure: str, value: float, unit: str, target: str, met: bool) -> dict[str, Any]:
    """One target line: ``figure: value unit (target ...): met / NOT met``."""
    return {"figure": figure, "value": value, "unit": unit, "target": target, "met": met}


def load_average() -> str:
    """The 1/5/15-minute load average while measuring (the machine is shared)."""
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def kpi_settings(
    state_dir: Path,
    url: str,
    db: str,
    stations: int,
    *,
    scopes: frozenset[str] = frozenset({"hr:read"}),
    timezone: str = "UTC",
) -> tuple[Any, dict[str, str]]:
    """KPI service settings over ``db`` (a 30 s standard at ST0..ST<stations-1>) and the
    headers of a key with ``scopes``: what every KPI-side bench starts from."""
    from kpi_service.core.apikeys import KeyStore
    from kpi_service.core.config import Settings, Standard
    from takt_store.settings import InfluxSettings

    settings = Settings(
        environment="development",
        state_dir=state_dir,
        timezone=timezone,
        influx=InfluxSettings(url=url, database=db),
        standards=[Standard(station=f"ST{i}", cycle_s=30.0) for i in range(stations)],
        max_page_size=10_000,
    )
    key = KeyStore(settings.keys_db, settings.secret_key.get_secret_value()).create(
        "bench", scopes, None
    )
    return settings, {"Authorization": f"Bearer {key}"}
