"""API keys: random tokens shown once, stored only as a keyed hash (HMAC-SHA256 with the secret).

Keys are 256-bit random, so a fast keyed hash is enough (no password stretching needed);
the pepper means a stolen key file alone does not let anyone test guesses offline.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

SCOPES = frozenset({"hr:read", "supervisor", "admin"})
KEY_PREFIX = "takt_"


@dataclass(frozen=True)
class Principal:
    """Who is calling: a key's name, its scopes, and the lines it may see (None = all)."""

    name: str
    scopes: frozenset[str]
    lines: frozenset[str] | None = None

    def has(self, scope: str) -> bool:
        return "admin" in self.scopes or scope in self.scopes

    def may_see_line(self, line: str) -> bool:
        return self.lines is None or line in self.lines


def hash_key(key: str, pepper: str) -> str:
    return hmac.new(pepper.encode(), key.encode(), hashlib.sha256).hexdigest()


class KeyStore:
    """SQLite file of (name, hash, scopes, lines); the clear key never touches disk."""

    def __init__(self, path: Path, pepper: str) -> None:
        self.path = path
        self._pepper = pepper
        path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as db:
            db.execute(
                "CREATE TABLE IF NOT EXISTS apikeys ("
                " hash TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, scopes TEXT NOT NULL,"
                " lines TEXT, created TEXT NOT NULL)"
            )

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path, timeout=10)

    def create(self, name: str, scopes: frozenset[str], lines: frozenset[str] | None) -> str:
        """Store a new key and return it in clear (the only time it exists in clear)."""
        unknown = scopes - SCOPES
        if unknown or not scopes:
            raise ValueError(f"scopes must be a non-empty subset of {sorted(SCOPES)}")
        if "supervisor" in scopes and not lines and "admin" not in scopes:
            raise ValueError("a supervisor key needs --lines (the lines it supervises)")
        key = KEY_PREFIX + secrets.token_urlsafe(32)
        with self._connect() as db:
            db.execute(
                "INSERT INTO apikeys VALUES (?, ?, ?, ?, ?)",
                (
                    hash_key(key, self._pepper),
                    name,
                    json.dumps(sorted(scopes)),
                    json.dumps(sorted(lines)) if lines is not None else None,
                    datetime.now(UTC).isoformat(),
                ),
            )
        return key

    def lookup(self, key: str) -> Principal | None:
        with self._connect() as db:
            row = db.execute(
                "SELECT name, scopes, lines FROM apikeys WHERE hash = ?",
                (hash_key(key, self._pepper),),
            ).fetchone()
        if row is None:
            return None
        name, scopes, lines = row
        return Principal(
            name=name,
            scopes=frozenset(json.loads(scopes)),
            lines=frozenset(json.loads(lines)) if lines is not None else None,
        )
