"""SQLite store of alerts, their transitions, deliveries, and cooldowns.

It is the engine's memory across restarts: open alerts and the last clear of each
rule and scope are read back at start-up, so a running problem is neither forgotten
nor raised twice. A raise whose alert id is already stored is refused (idempotent).
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Literal

from kpi_service.alerts.engine import RuleKey
from kpi_service.alerts.model import Alert, Transition

DeliveryStatus = Literal["pending", "delivered", "failed"]

SCHEMA = """
CREATE TABLE IF NOT EXISTS alerts (
  id TEXT PRIMARY KEY, rule_id TEXT NOT NULL, line TEXT NOT NULL, status TEXT NOT NULL,
  raised_at REAL NOT NULL, body TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS alerts_status ON alerts(status, raised_at);
CREATE TABLE IF NOT EXISTS transitions (
  id INTEGER PRIMARY KEY AUTOINCREMENT, alert_id TEXT NOT NULL, kind TEXT NOT NULL,
  at REAL NOT NULL, event_ts REAL, body TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS transitions_alert ON transitions(alert_id);
CREATE TABLE IF NOT EXISTS deliveries (
  transition_id INTEGER NOT NULL, channel TEXT NOT NULL, status TEXT NOT NULL,
  attempts INTEGER NOT NULL, error TEXT, at REAL NOT NULL,
  PRIMARY KEY (transition_id, channel));
CREATE TABLE IF NOT EXISTS cooldowns (
  rule_id TEXT NOT NULL, scope_key TEXT NOT NULL, cleared_event_ts REAL NOT NULL,
  PRIMARY KEY (rule_id, scope_key));
"""


class AlertStore:
    """One connection, used from the event loop only (the API handlers are async; WAL journal)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._db = sqlite3.connect(path, timeout=10, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(SCHEMA)

    def close(self) -> None:
        self._db.close()

    def apply(self, transition: Transition) -> int | None:
        """Persist a transition and the alert after it; None when it is a duplicate raise."""
        alert = transition.alert
        body = alert.model_dump_json()
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            if transition.kind == "raised":
                exists = self._db.execute("SELECT 1 FROM alerts WHERE id = ?", (alert.id,))
                if exists.fetchone():
                    return None
            self._db.execute(
                "INSERT OR REPLACE INTO alerts VALUES (?, ?, ?, ?, ?, ?)",
                (alert.id, alert.rule_id, alert.line, alert.status, alert.raised_at, body),
            )
            cursor = self._db.execute(
                "INSERT INTO transitions (alert_id, kind, at, event_ts, body)"
                " VALUES (?, ?, ?, ?, ?)",
                (alert.id, transition.kind, transition.at, transition.event_ts, body),
            )
            if transition.kind == "cleared" and transition.event_ts is not None:
                self._db.execute(
                    "INSERT OR REPLACE INTO cooldowns VALUES (?, ?, ?)",
                    (alert.rule_id, json.dumps(list(alert.key)), transition.event_ts),
                )
            assert cursor.lastrowid is not None
            return cursor.lastrowid

    def record_delivery(
        self,
        transition_id: int,
        channel: str,
        status: DeliveryStatus,
        attempts: int,
        error: str | None,
        at: float,
    ) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO deliveries VALUES (?, ?, ?, ?, ?, ?)",
            (transition_id, channel, status, attempts, error, at),
        )

    def open_alerts(self) -> list[Alert]:
        rows = self._db.execute(
            "SELECT body FROM alerts WHERE status != 'cleared' ORDER BY raised_at"
        ).fetchall()
        return [Alert.model_validate_json(r[0]) for r in rows]

    def cooldowns(self) -> dict[RuleKey, float]:
        out: dict[RuleKey, float] = {}
        for rule_id, key, ts in self._db.execute("SELECT * FROM cooldowns"):
            scope, site, line, station, worker = json.loads(key)
            out[(rule_id, (scope, site, line, station, worker))] = ts
        return out

    def get(self, alert_id: str) -> Alert | None:
        row = self._db.execute("SELECT body FROM alerts WHERE id = ?", (alert_id,)).fetchone()
        return Alert.model_validate_json(row[0]) if row else None

    def find(
        self,
        *,
        status: str | None = None,
        lines: frozenset[str] | None = None,
        limit: int = 100,
        offset: int = 0,
        rules: frozenset[str] | None = None,
        worker: str | None = None,
    ) -> list[Alert]:
        """Newest first; ``status='open'`` means active or acknowledged."""
        where: list[str] = []
        params: list[object] = []
        if status == "open":
            where.append("status != 'cleared'")
        elif status:
            where.append("status = ?")
            params.append(status)
        if lines is not None:
            where.append(f"line IN ({','.join('?' * len(lines))})" if lines else "0")
            params.extend(sorted(lines))
        if rules is not None:
            where.append(f"rule_id IN ({','.join('?' * len(rules))})" if rules else "0")
            params.extend(sorted(rules))
        if worker is not None:  # the worker is in the body only (the worker's own page)
            where.append("json_extract(body, '$.worker') = ?")
            params.append(worker)
        sql = "SELECT body FROM alerts"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY raised_at DESC LIMIT ? OFFSET ?"
        rows = self._db.execute(sql, (*params, limit, offset)).fetchall()
        return [Alert.model_validate_json(r[0]) for r in rows]

    def transitions(self, alert_id: str) -> list[dict[str, object]]:
        rows = self._db.execute(
            "SELECT id, kind, at, event_ts FROM transitions WHERE alert_id = ? ORDER BY id",
            (alert_id,),
        ).fetchall()
        return [{"id": r[0], "kind": r[1], "at": r[2], "event_ts": r[3]} for r in rows]

    def deliveries(self, alert_id: str) -> list[dict[str, object]]:
        rows = self._db.execute(
            "SELECT d.transition_id, t.kind, d.channel, d.status, d.attempts, d.error, d.at "
            "FROM deliveries d JOIN transitions t ON t.id = d.transition_id "
            "WHERE t.alert_id = ? ORDER BY d.transition_id, d.channel",
            (alert_id,),
        ).fetchall()
        keys = ("transition_id", "kind", "channel", "status", "attempts", "error", "at")
        return [dict(zip(keys, r, strict=True)) for r in rows]
