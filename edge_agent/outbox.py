"""The durable outbox: every event is committed here before it is published.

SQLite in WAL mode. One transaction holds a batch of new events *and* the
station states (counter baselines, open work intervals) that produced them, so
a crash at any point either keeps both or neither: no double count, no loss.
Rows are deleted only when a collector confirmed them stored (takt_wire.acks).
Each row keeps the gateway time at which its event happened (``created``), from
which the publisher tells live events from historical ones.
Sequence numbers are strictly increasing per agent and survive restarts.

A row's body is the event's canonical encoding (``takt_wire.encode_event``,
bytes), so the publisher builds batches without parsing anything. Files written
before that format (hand-made JSON text without ``v`` and ``historical``) are
converted once when opened; ``PRAGMA user_version`` says which format a file holds.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Literal

from takt_wire import ContractError, EventBase, decode_event, encode_event

log = logging.getLogger(__name__)

FORMAT = 1
"""Stored form of the events (``PRAGMA user_version``): 0 hand-made JSON text, 1 canonical."""

Row = tuple[int, float, bytes]
"""(seq, gateway time the event happened, canonical encoding)."""

OnFull = Literal["block", "drop_oldest"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (seq INTEGER PRIMARY KEY, created REAL NOT NULL,
    body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS stations (station TEXT PRIMARY KEY, state TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS dead_letter (id INTEGER PRIMARY KEY, created REAL NOT NULL,
    reason TEXT NOT NULL, body TEXT NOT NULL);
"""


class Outbox:
    """Events waiting to be confirmed stored, plus the station states they came from."""

    def __init__(
        self,
        path: Path,
        *,
        agent: str,
        boot: str,
        max_events: int = 2_000_000,
        on_full: OnFull = "block",
        synchronous: Literal["FULL", "NORMAL"] = "FULL",
    ) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.agent = agent
        self.boot = boot
        self.max_events = max_events
        self.on_full = on_full
        self.dropped = 0
        self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute(f"PRAGMA synchronous={synchronous}")
        self.db.executescript(_SCHEMA)
        self._upgrade()
        row = self.db.execute("SELECT value FROM meta WHERE key='last_seq'").fetchone()
        top = self.db.execute("SELECT max(seq) FROM events").fetchone()[0]
        self.last_seq = max(int(row[0]) if row else -1, top if top is not None else -1)
        self.pending = int(self.db.execute("SELECT count(*) FROM events").fetchone()[0])

    def close(self) -> None:
        self.db.close()

    @property
    def fill_ratio(self) -> float:
        return self.pending / self.max_events

    @property
    def full(self) -> bool:
        return self.pending >= self.max_events

    def _upgrade(self) -> None:
        """Convert events stored by an older version to the canonical encoding, in one
        transaction; an old row the contract refuses moves to the dead-letter table."""
        version = int(self.db.execute("PRAGMA user_version").fetchone()[0])
        if version >= FORMAT:
            return
        db = self.db
        db.execute("BEGIN IMMEDIATE")
        try:
            converted = refused = 0
            after = -1
            while rows := db.execute(
                "SELECT seq, body FROM events WHERE seq > ? ORDER BY seq LIMIT 10000", (after,)
            ).fetchall():  # in chunks: a full outbox holds millions of events
                after = rows[-1][0]
                updates: list[tuple[bytes, int]] = []
                for seq, body in rows:
                    try:
                        event = decode_event(_object(body))
                    except (ValueError, ContractError) as err:
                        refused += 1
                        db.execute(
                            "INSERT INTO dead_letter (created, reason, body) VALUES (?, ?, ?)",
                            (time.time(), f"outbox format {FORMAT}: {err}", str(body)),
                        )
                        db.execute("DELETE FROM events WHERE seq = ?", (seq,))
                        continue
                    updates.append((encode_event(event), seq))
                converted += len(updates)
                db.executemany("UPDATE events SET body = ? WHERE seq = ?", updates)
            db.execute(f"PRAGMA user_version = {FORMAT}")
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        if converted or refused:
            log.warning(
                "outbox %s converted to format %d: %d events, %d refused (dead-lettered)",
                self.path,
                FORMAT,
                converted,
                refused,
            )

    def load_states(self) -> dict[str, str]:
        return dict(self.db.execute("SELECT station, state FROM stations").fetchall())

    def commit(
        self,
        events: Iterable[EventBase],
        states: Mapping[str, str],
        dead: Iterable[tuple[str, str]] = (),
        happened: Sequence[float] | None = None,
    ) -> int:
        """Add events (sequence numbers assigned here) and station states in one transaction.

        Every event must name this outbox's agent and boot. ``happened`` is, per event,
        the gateway time at which it happened (default: now).
        """
        now = time.time()
        rows: list[Row] = []
        seq = self.last_seq
        for index, event in enumerate(events):
            if event.agent != self.agent or event.boot != self.boot:
                raise ValueError(
                    f"event of agent {event.agent!r} boot {event.boot!r} offered to the outbox "
                    f"of agent {self.agent!r} boot {self.boot!r}"
                )
            seq += 1
            at = now if happened is None else min(now, happened[index])
            rows.append((seq, at, encode_event(event.model_copy(update={"seq": seq}))))
        db = self.db
        db.execute("BEGIN IMMEDIATE")
        try:
            if rows:
                db.executemany("INSERT INTO events (seq, created, body) VALUES (?, ?, ?)", rows)
                db.execute("INSERT OR REPLACE INTO meta VALUES ('last_seq', ?)", (str(seq),))
            if states:
                db.executemany("INSERT OR REPLACE INTO stations VALUES (?, ?)", states.items())
            dead_rows = [(now, reason, body) for reason, body in dead]
            if dead_rows:
                db.executemany(
                    "INSERT INTO dead_letter (created, reason, body) VALUES (?, ?, ?)", dead_rows
                )
            dropped = 0
            overflow = self.pending + len(rows) - self.max_events
            if overflow > 0 and self.on_full == "drop_oldest":
                dropped = db.execute(
                    "DELETE FROM events WHERE seq IN (SELECT seq FROM events ORDER BY seq LIMIT ?)",
                    (overflow,),
                ).rowcount
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        self.last_seq = seq
        self.pending += len(rows) - dropped
        if dropped:
            self.dropped += dropped
            log.error(
                "outbox full (%d events): dropped the %d oldest events (policy drop_oldest)",
                self.max_events,
                dropped,
            )
        return len(rows)

    def fetch(self, after_seq: int, limit: int) -> list[Row]:
        """Pending events after ``after_seq``, oldest first."""
        return self.db.execute(
            "SELECT seq, created, body FROM events WHERE seq > ? ORDER BY seq LIMIT ?",
            (after_seq, limit),
        ).fetchall()

    def fetch_range(self, first_seq: int, last_seq: int) -> list[Row]:
        """Pending events in [first_seq, last_seq], oldest first (for a resend)."""
        return self.db.execute(
            "SELECT seq, created, body FROM events WHERE seq BETWEEN ? AND ? ORDER BY seq",
            (first_seq, last_seq),
        ).fetchall()

    def acked(self, first_seq: int, last_seq: int) -> int:
        """Delete the events a collector confirmed stored."""
        deleted = self.db.execute(
            "DELETE FROM events WHERE seq BETWEEN ? AND ?", (first_seq, last_seq)
        ).rowcount
        self.pending -= deleted
        return int(deleted)

    def dead_letters(self) -> list[tuple[str, str]]:
        return self.db.execute("SELECT reason, body FROM dead_letter ORDER BY id").fetchall()


def _object(body: str | bytes) -> dict[str, object]:
    """An old row's JSON object (ValueError when it is not one)."""
    data = json.loads(body)
    if not isinstance(data, dict):
        raise ValueError(f"stored event is not a JSON object: {body!r:.80}")
    return data
