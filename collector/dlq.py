"""Dead-letter store: every rejected message, event or point, kept durably with its reason.

SQLite in WAL mode with ``synchronous=FULL``: a row is on disk before the MQTT
message it came from is acknowledged, so a rejection never loses its evidence.
``replay`` marks rows replayed instead of deleting them.

The store is bounded, because whoever can publish can fill it: a payload over
``max_payload_bytes`` is kept as its first bytes (enough to see what it was) with
its real size; rows older than ``max_age_s`` and, beyond ``max_total_bytes`` of
stored payloads, the oldest rows are deleted. What was truncated or evicted is
counted durably (:meth:`DeadLetterStore.stats`) and exported by
:class:`DeadLetterMetrics`.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

Kind = Literal["message", "event", "point"]
"""What the payload is: a whole MQTT payload, one event's JSON, or one line-protocol line."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS dead_letters (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at REAL NOT NULL,
    kind TEXT NOT NULL,
    reason TEXT NOT NULL,
    detail TEXT NOT NULL,
    topic TEXT NOT NULL,
    properties TEXT NOT NULL,
    payload BLOB NOT NULL,
    replayed_at REAL
);
CREATE INDEX IF NOT EXISTS dead_letters_reason ON dead_letters(reason);
CREATE INDEX IF NOT EXISTS dead_letters_at ON dead_letters(at);
CREATE TABLE IF NOT EXISTS dead_letter_stats (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""

MAX_PAYLOAD_BYTES = 64 * 1024
"""Bytes of a payload kept; the rest of an oversized one is dropped (its size is kept)."""
MAX_TOTAL_BYTES = 512 * 1024 * 1024
"""Stored payload bytes at most; the oldest rows go first."""
MAX_AGE_S = 90 * 86_400.0
"""Rows older than this are deleted (replayed or not): evidence, not an archive."""


@dataclass(frozen=True)
class DeadLetter:
    """One rejected item as it arrived, with why and when."""

    kind: Kind
    reason: str
    detail: str
    topic: str
    payload: bytes
    properties: dict[str, object]
    at: float = 0.0
    id: int = 0
    replayed_at: float | None = None
    size: int | None = None
    """Size of the payload as it arrived (None: the stored payload is all of it)."""

    @property
    def truncated(self) -> bool:
        return self.size is not None and self.size > len(self.payload)


@dataclass(frozen=True)
class Stats:
    rows: int
    payload_bytes: int
    truncated: int
    """Payloads stored as a prefix since the store was created."""
    evicted: int
    """Rows deleted by the age or size cap since the store was created."""


class DeadLetterStore:
    """Bounded store of dead letters in one SQLite file (append, mark replayed, evict)."""

    def __init__(
        self,
        path: Path,
        *,
        max_payload_bytes: int = MAX_PAYLOAD_BYTES,
        max_total_bytes: int = MAX_TOTAL_BYTES,
        max_age_s: float = MAX_AGE_S,
    ) -> None:
        self.path = path
        self.max_payload_bytes = max_payload_bytes
        self.max_total_bytes = max_total_bytes
        self.max_age_s = max_age_s
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(dead_letters)")}
        if "size" not in columns:  # stores made before payloads were bounded
            self._db.execute("ALTER TABLE dead_letters ADD COLUMN size INTEGER")
        (total,) = self._db.execute(
            "SELECT coalesce(sum(length(payload)), 0) FROM dead_letters"
        ).fetchone()
        self._total = int(total)

    def close(self) -> None:
        self._db.close()

    def add(self, letters: Sequence[DeadLetter]) -> None:
        """Store letters in one transaction; returns when they are durable."""
        if not letters:
            return
        now = time.time()
        keep = self.max_payload_bytes
        rows = []
        truncated = 0
        for letter in letters:
            payload = letter.payload
            size = letter.size
            if len(payload) > keep:
                size = len(payload) if size is None else size
                payload = payload[:keep]
                truncated += 1
            rows.append(
                (
                    letter.at or now,
                    letter.kind,
                    letter.reason,
                    letter.detail,
                    letter.topic,
                    json.dumps(letter.properties, default=str),
                    payload,
                    size,
                )
            )
        with self._transaction():
            self._db.executemany(
                "INSERT INTO dead_letters"
                " (at, kind, reason, detail, topic, properties, payload, size)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
            self._total += sum(len(row[6]) for row in rows)
            evicted = self._evict(now)
            self._bump("truncated", truncated)
            self._bump("evicted", evicted)

    def _evict(self, now: float) -> int:
        """Delete rows past the age cap, then the oldest while over the size cap."""
        db = self._db
        freed, deleted = db.execute(
            "SELECT coalesce(sum(length(payload)), 0), count(*) FROM dead_letters WHERE at < ?",
            (now - self.max_age_s,),
        ).fetchone()
        if deleted:
            db.execute("DELETE FROM dead_letters WHERE at < ?", (now - self.max_age_s,))
            self._total -= int(freed)
        evicted = int(deleted)
        while self._total > self.max_total_bytes:
            oldest = db.execute(
                "SELECT id, length(payload) FROM dead_letters ORDER BY id LIMIT 256"
            ).fetchall()
            if not oldest:
                self._total = 0
                break
            ids = []
            for letter_id, length in oldest:
                ids.append((letter_id,))
                self._total -= int(length)
                if self._total <= self.max_total_bytes:
                    break
            db.executemany("DELETE FROM dead_letters WHERE id = ?", ids)
            evicted += len(ids)
        return evicted

    def _bump(self, name: str, by: int) -> None:
        if by:
            self._db.execute(
                "INSERT INTO dead_letter_stats VALUES (?, ?)"
                " ON CONFLICT(name) DO UPDATE SET value = value + excluded.value",
                (name, by),
            )

    def stats(self) -> Stats:
        counters = dict(self._db.execute("SELECT name, value FROM dead_letter_stats").fetchall())
        (rows,) = self._db.execute("SELECT count(*) FROM dead_letters").fetchone()
        return Stats(
            rows=int(rows),
            payload_bytes=self._total,
            truncated=int(counters.get("truncated", 0)),
            evicted=int(counters.get("evicted", 0)),
        )

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def list(
        self,
        *,
        reason: str | None = None,
        include_replayed: bool = False,
        limit: int = 100,
    ) -> list[DeadLetter]:
        clauses, params = [], []
        if reason:
            clauses.append("reason = ?")
            params.append(reason)
        if not include_replayed:
            clauses.append("replayed_at IS NULL")
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        rows = self._db.execute(
            f"SELECT id, at, kind, reason, detail, topic, properties, payload, replayed_at, size "
            f"FROM dead_letters {where} ORDER BY id LIMIT ?",
            (*params, limit),
        )
        return [_row(r) for r in rows]

    def get(self, letter_id: int) -> DeadLetter | None:
        row = self._db.execute(
            "SELECT id, at, kind, reason, detail, topic, properties, payload, replayed_at, size "
            "FROM dead_letters WHERE id = ?",
            (letter_id,),
        ).fetchone()
        return _row(row) if row else None

    def counts(self) -> dict[str, int]:
        """Unreplayed letters by reason."""
        rows = self._db.execute(
            "SELECT reason, count(*) FROM dead_letters WHERE replayed_at IS NULL GROUP BY reason"
        )
        return {reason: n for reason, n in rows}

    def mark_replayed(self, ids: Sequence[int]) -> None:
        with self._transaction():
            self._db.executemany(
                "UPDATE dead_letters SET replayed_at = ? WHERE id = ?",
                [(time.time(), i) for i in ids],
            )

    def __iter__(self) -> Iterator[DeadLetter]:
        return iter(self.list(include_replayed=True, limit=-1))


def _row(row: tuple[Any, ...]) -> DeadLetter:
    letter_id, at, kind, reason, detail, topic, properties, payload, replayed, size = row
    return DeadLetter(
        id=int(letter_id),
        at=float(at),
        kind=kind,
        reason=str(reason),
        detail=str(detail),
        topic=str(topic),
        properties=json.loads(str(properties)),
        payload=bytes(payload),
        replayed_at=None if replayed is None else float(replayed),
        size=None if size is None else int(size),
    )


class DeadLetterMetrics(Collector):
    """Prometheus view of a store: rows, bytes, truncated and evicted (read at scrape time)."""

    def __init__(self, store: DeadLetterStore) -> None:
        self.store = store

    def collect(self) -> Iterator[Metric]:
        stats = self.store.stats()
        yield GaugeMetricFamily(
            "takt_collector_dead_letters", "Rows in the dead-letter store.", value=stats.rows
        )
        yield GaugeMetricFamily(
            "takt_collector_dead_letter_bytes",
            "Payload bytes in the dead-letter store (capped).",
            value=stats.payload_bytes,
        )
        yield CounterMetricFamily(
            "takt_collector_dead_letters_truncated",
            "Oversized payloads stored as a prefix.",
            value=stats.truncated,
        )
        yield CounterMetricFamily(
            "takt_collector_dead_letters_evicted",
            "Dead letters deleted by the age or size cap.",
            value=stats.evicted,
        )
