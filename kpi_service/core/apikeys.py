"""API keys: random tokens shown once, stored only as a keyed hash (HMAC-SHA256 with the secret).

Keys are 256-bit random, so a fast keyed hash is enough (no password stretching needed);
the pepper means a stolen database alone does not let anyone test guesses offline. A key
can expire, be revoked, or be rotated (a new secret under the same name, scopes and lines;
the old secret stops working at once). The last use is recorded at most once a minute per
key, so busy callers do not turn every read into a write.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from kpi_service.store.db import Database, as_utc, utcnow
from kpi_service.store.tables import apikeys
from takt_common.errors import TaktError

SCOPES = frozenset({"hr:read", "hr:write", "supervisor", "admin", "ingest", "self", "board"})
"""``board``: the supervisor board of some lines only (live figures, alerts, acknowledging),
no KPI reads; what a paired tablet or wall screen gets (``kpi_service/board/pairing.py``)."""
KEY_PREFIX = "takt_"
LAST_USED_RESOLUTION = timedelta(seconds=60)


@dataclass(frozen=True)
class Principal:
    """Who is calling: a key's name, its scopes, and the lines it may see (None = all)."""

    name: str
    scopes: frozenset[str]
    lines: frozenset[str] | None = None
    worker: str | None = None
    """The one worker a ``self`` key belongs to (a worker's own phone or kiosk pairing)."""

    def has(self, scope: str) -> bool:
        if scope == "self":  # never implied: a self key is bound to one worker
            return "self" in self.scopes and self.worker is not None
        return "admin" in self.scopes or scope in self.scopes

    def may_see_line(self, line: str) -> bool:
        return self.lines is None or line in self.lines


@dataclass(frozen=True)
class Refused:
    """A key that exists but may not be used (for the audit log: who tried, and why)."""

    name: str
    reason: str  # "revoked" | "expired"


@dataclass(frozen=True)
class KeyInfo:
    """What ``takt kpi apikey list`` shows; never the key or its hash."""

    name: str
    scopes: tuple[str, ...]
    lines: tuple[str, ...] | None
    worker: str | None
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None
    rotated_at: datetime | None

    def status(self, now: datetime) -> str:
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= now:
            return "expired"
        return "active"


class UnknownKey(TaktError, LookupError):
    """No key of that name."""


def hash_key(key: str, pepper: str) -> str:
    return hmac.new(pepper.encode(), key.encode(), hashlib.sha256).hexdigest()


def _new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def _check(scopes: frozenset[str], lines: frozenset[str] | None, worker: str | None) -> None:
    unknown = scopes - SCOPES
    if unknown or not scopes:
        raise ValueError(f"scopes must be a non-empty subset of {sorted(SCOPES)}")
    if ("self" in scopes) != (worker is not None):
        raise ValueError("a self key is bound to one worker, and only a self key is")
    if "self" in scopes and scopes != {"self"}:
        raise ValueError("a self key has the self scope alone")
    if "supervisor" in scopes and not lines and "admin" not in scopes:
        raise ValueError("a supervisor key needs --lines (the lines it supervises)")
    if "board" in scopes and not lines and "admin" not in scopes:
        raise ValueError("a board key needs --lines (the lines its board shows)")


class KeyStore:
    """Keys in the relational store (table ``apikeys``); the clear key never touches disk."""

    def __init__(self, where: Database | str | Path, pepper: str) -> None:
        self.db = where if isinstance(where, Database) else Database(where)
        self._pepper = pepper

    def create(
        self,
        name: str,
        scopes: frozenset[str],
        lines: frozenset[str] | None,
        *,
        expires_at: datetime | None = None,
        worker: str | None = None,
    ) -> str:
        """Store a new key and return it in clear (the only time it exists in clear)."""
        _check(scopes, lines, worker)
        if not name or len(name) > 64:
            raise ValueError("a key name has 1 to 64 characters")
        now = utcnow()
        if expires_at is not None and expires_at <= now:
            raise ValueError("the expiry lies in the past")
        key = _new_key()
        try:
            with self.db.engine.begin() as conn:
                conn.execute(
                    insert(apikeys).values(
                        name=name,
                        hash=hash_key(key, self._pepper),
                        scopes=json.dumps(sorted(scopes)),
                        lines=json.dumps(sorted(lines)) if lines is not None else None,
                        worker=worker,
                        created_at=now,
                        expires_at=expires_at,
                    )
                )
        except IntegrityError as err:
            raise ValueError(f"a key named {name!r} exists already") from err
        return key

    def authenticate(self, key: str) -> Principal | Refused | None:
        """The key's principal; ``Refused`` if revoked or expired; None if unknown."""
        now = utcnow()
        with self.db.engine.begin() as conn:
            row = conn.execute(
                select(apikeys).where(apikeys.c.hash == hash_key(key, self._pepper))
            ).one_or_none()
            if row is None:
                return None
            if row.revoked_at is not None:
                return Refused(row.name, "revoked")
            expires = as_utc(row.expires_at)
            if expires is not None and expires <= now:
                return Refused(row.name, "expired")
            last = as_utc(row.last_used_at)
            if last is None or now - last >= LAST_USED_RESOLUTION:
                conn.execute(
                    update(apikeys)
                    .where(apikeys.c.id == row.id)
                    .where(
                        or_(
                            apikeys.c.last_used_at.is_(None),
                            apikeys.c.last_used_at <= now - LAST_USED_RESOLUTION,
                        )
                    )
                    .values(last_used_at=now)
                )
        return Principal(
            name=row.name,
            scopes=frozenset(json.loads(row.scopes)),
            lines=frozenset(json.loads(row.lines)) if row.lines is not None else None,
            worker=row.worker,
        )

    def lookup(self, key: str) -> Principal | None:
        found = self.authenticate(key)
        return found if isinstance(found, Principal) else None

    def list(self) -> list[KeyInfo]:
        with self.db.engine.connect() as conn:
            rows = conn.execute(select(apikeys).order_by(apikeys.c.name)).all()
        return [
            KeyInfo(
                name=r.name,
                scopes=tuple(json.loads(r.scopes)),
                lines=tuple(json.loads(r.lines)) if r.lines is not None else None,
                worker=r.worker,
                created_at=as_utc(r.created_at) or utcnow(),
                expires_at=as_utc(r.expires_at),
                last_used_at=as_utc(r.last_used_at),
                revoked_at=as_utc(r.revoked_at),
                rotated_at=as_utc(r.rotated_at),
            )
            for r in rows
        ]

    def revoke(self, name: str) -> None:
        """The key stops working at once; it stays listed (who had access, until when)."""
        with self.db.engine.begin() as conn:
            done = conn.execute(
                update(apikeys)
                .where(apikeys.c.name == name, apikeys.c.revoked_at.is_(None))
                .values(revoked_at=utcnow())
            )
            if done.rowcount == 0:
                exists = conn.execute(select(apikeys.c.id).where(apikeys.c.name == name)).first()
                if exists is None:
                    raise UnknownKey(f"no key named {name!r}")

    def rotate(self, name: str, *, expires_at: datetime | None = None) -> str:
        """A new secret for an active key (same scopes and lines); the old one stops working."""
        now = utcnow()
        if expires_at is not None and expires_at <= now:
            raise ValueError("the expiry lies in the past")
        key = _new_key()
        values: dict[str, object] = {"hash": hash_key(key, self._pepper), "rotated_at": now}
        if expires_at is not None:
            values["expires_at"] = expires_at
        with self.db.engine.begin() as conn:
            done = conn.execute(
                update(apikeys)
                .where(apikeys.c.name == name, apikeys.c.revoked_at.is_(None))
                .values(**values)
            )
            if done.rowcount == 0:
                raise UnknownKey(f"no active key named {name!r} (revoked keys are not rotated)")
        return key
