"""The hours whose rollups must be recomputed, kept durably beside the dead letters.

An hour is recorded here after its points are in InfluxDB and *before* the MQTT
messages that carried them are acknowledged. A collector killed at any moment
therefore either has the hour on disk or has not acknowledged the messages (and
gets them again): a rollup can be late, never stale for good. Each hour carries
its own retry schedule, so an hour that cannot be recomputed never holds up the
others.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

INT64 = (-(2**63), 2**63 - 1)
"""InfluxDB (and SQLite) timestamps are signed 64-bit nanoseconds."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS rollup_hours (
    hour INTEGER PRIMARY KEY,
    touched REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_at REAL NOT NULL DEFAULT 0,
    error TEXT
);
"""


@dataclass(frozen=True)
class PendingHour:
    hour: int
    """Start of the UTC hour in ns."""
    touched: float
    """Wall time of the latest write into the hour (a recompute covers writes up to it)."""
    attempts: int


class RollupQueue:
    """Pending hours in one SQLite table (``synchronous=FULL``: durable on return)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("PRAGMA busy_timeout=5000")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        self._db.close()

    def add(self, hours: Iterable[int], now: float | None = None) -> None:
        """Record writes into ``hours``; a new write makes a failing hour due again."""
        at = time.time() if now is None else now
        rows = []
        for hour in hours:
            if INT64[0] <= hour <= INT64[1]:
                rows.append((int(hour), at))
            else:  # no point can be stored there, so there is nothing to roll up
                log.warning("hour outside InfluxDB's time range ignored", extra={"hour_ns": hour})
        if not rows:
            return
        self._db.executemany(
            "INSERT INTO rollup_hours (hour, touched) VALUES (?, ?) ON CONFLICT(hour) DO "
            "UPDATE SET touched = excluded.touched, attempts = 0, next_at = 0, error = NULL",
            rows,
        )

    def due(self, now: float, settled_before: float, limit: int = 1000) -> list[PendingHour]:
        """Hours whose retry time has come and that nobody wrote into since ``settled_before``."""
        rows = self._db.execute(
            "SELECT hour, touched, attempts FROM rollup_hours WHERE next_at <= ? AND touched <= ? "
            "ORDER BY hour LIMIT ?",
            (now, settled_before, limit),
        ).fetchall()
        return [PendingHour(int(h), float(t), int(a)) for h, t, a in rows]

    def done(self, pending: PendingHour) -> None:
        """The hour was recomputed; keep it if a write came in meanwhile."""
        self._db.execute(
            "DELETE FROM rollup_hours WHERE hour = ? AND touched <= ?",
            (pending.hour, pending.touched),
        )

    def failed(self, pending: PendingHour, error: str, retry_at: float) -> None:
        self._db.execute(
            "UPDATE rollup_hours SET attempts = attempts + 1, next_at = ?, error = ? "
            "WHERE hour = ?",
            (retry_at, error[:500], pending.hour),
        )

    def stats(self) -> tuple[int, float | None]:
        """(pending hours, wall time of the oldest pending write or None)."""
        count, oldest = self._db.execute(
            "SELECT count(*), min(touched) FROM rollup_hours"
        ).fetchone()
        return int(count), None if oldest is None else float(oldest)

    def failing(self) -> list[tuple[int, int, str]]:
        """(hour, attempts, last error) of hours that failed at least once."""
        rows = self._db.execute(
            "SELECT hour, attempts, error FROM rollup_hours WHERE attempts > 0 ORDER BY hour"
        ).fetchall()
        return [(int(h), int(a), str(e)) for h, a, e in rows]
