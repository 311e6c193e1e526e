"""Dead-letter store: every rejected message, event or point, kept durably with its reason.

SQLite in WAL mode with ``synchronous=FULL``: a row is on disk before the MQTT
message it came from is acknowledged, so a rejection never loses data. Rows are
never deleted by the collector; ``replay`` marks them replayed instead.
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
"""


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


class DeadLetterStore:
    """Append-only (plus a replayed mark) store of dead letters in one SQLite file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        self._db.close()

    def add(self, letters: Sequence[DeadLetter]) -> None:
        """Store letters in one transaction; returns when they are durable."""
        if not letters:
            return
        now = time.time()
        with self._transaction():
            self._db.executemany(
                "INSERT INTO dead_letters (at, kind, reason, detail, topic, properties, payload)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        letter.at or now,
                        letter.kind,
                        letter.reason,
                        letter.detail,
                        letter.topic,
                        json.dumps(letter.properties, default=str),
                        letter.payload,
                    )
                    for letter in letters
                ],
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
            f"SELECT id, at, kind, reason, detail, topic, properties, payload, replayed_at "
            f"FROM dead_letters {where} ORDER BY id LIMIT ?",
            (*params, limit),
        )
        return [_row(r) for r in rows]

    def get(self, letter_id: int) -> DeadLetter | None:
        row = self._db.execute(
            "SELECT id, at, kind, reason, detail, topic, properties, payload, replayed_at "
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
    letter_id, at, kind, reason, detail, topic, properties, payload, replayed = row
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
    )
