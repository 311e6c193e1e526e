"""Pairing a tablet or wall screen with the board: a short code, redeemed once for a board key.

A supervisor (or an admin) issues a code for some of its lines; the tablet redeems it
once, within minutes, for a ``board`` key confined to those lines (live figures, alerts,
acknowledging; no KPI reads). The code is stored only as a keyed hash, like API keys.
Redeeming needs no key, so guessing is what to defend against: 8 characters from a
31-letter alphabet (~40 bits) that expire in minutes, and a throttle that refuses every
attempt from a client (and, past a global ceiling, from everyone) after a few failures,
before the code is even looked at. The resulting keys are listed with their pairing and
revoked through it (``takt kpi apikey revoke`` works on them too).
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Row, insert, select, update

from kpi_service.core.apikeys import KeyStore, hash_key
from kpi_service.store.db import Database, as_utc, utcnow
from kpi_service.store.tables import board_pairings
from takt_common.errors import TaktError

ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
"""No 0/O, 1/I/L: read off a screen and typed on a tablet without confusion."""
CODE_LENGTH = 8


class PairingRefused(TaktError, LookupError):
    """Unknown, expired or already used code (one answer for all three: nothing leaks)."""


def new_code() -> str:
    return "".join(secrets.choice(ALPHABET) for _ in range(CODE_LENGTH))


def normalize(code: str) -> str:
    """What the person typed, as the code was issued: case, spaces and dashes do not count."""
    return "".join(c for c in code.upper() if c not in " -")


def shown(code: str) -> str:
    """``ABCD-EFGH``: easier to read aloud and to type."""
    return f"{code[:4]}-{code[4:]}"


@dataclass(frozen=True)
class Pairing:
    id: int
    issued_by: str
    lines: tuple[str, ...]
    label: str
    created_at: datetime
    expires_at: datetime
    key_days: int
    redeemed_at: datetime | None
    key_name: str | None


class Throttle:
    """Failed redemptions per client in a sliding window, and over all clients.

    Past either limit every attempt is refused before the code is checked, so the
    guessing rate is bounded whatever the code: ``global_failures`` per ``window_s``.
    """

    def __init__(
        self,
        *,
        per_client: int = 5,
        global_failures: int = 30,
        window_s: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.per_client = per_client
        self.global_failures = global_failures
        self.window_s = window_s
        self.clock = clock
        self._clients: dict[str, deque[float]] = {}
        self._all: deque[float] = deque()
        self._lock = threading.Lock()

    def _trim(self, times: deque[float], now: float) -> None:
        while times and times[0] <= now - self.window_s:
            times.popleft()

    def retry_after(self, client: str) -> float | None:
        """Seconds until ``client`` may try again; None when it may try now."""
        with self._lock:
            now = self.clock()
            self._trim(self._all, now)
            mine = self._clients.get(client, deque())
            self._trim(mine, now)
            waits = []
            if len(mine) >= self.per_client:
                waits.append(mine[0] + self.window_s - now)
            if len(self._all) >= self.global_failures:
                waits.append(self._all[0] + self.window_s - now)
            return max(waits) if waits else None

    def failed(self, client: str) -> None:
        with self._lock:
            now = self.clock()
            self._clients.setdefault(client, deque()).append(now)
            self._all.append(now)
            if len(self._clients) > 10_000:  # forget the quiet ones (bounded memory)
                for name in [c for c, t in self._clients.items() if not t][:5_000]:
                    del self._clients[name]


class PairingBook:
    """Pairing codes in the relational store; board keys in the key store."""

    def __init__(self, db: Database, keys: KeyStore, pepper: str) -> None:
        self.db = db
        self.keys = keys
        self._pepper = pepper

    def issue(
        self,
        issued_by: str,
        lines: frozenset[str],
        *,
        label: str,
        minutes: int,
        key_days: int,
    ) -> tuple[str, Pairing]:
        """A new code (returned in clear, the only time) and its pairing."""
        if not lines:
            raise ValueError("a pairing needs at least one line")
        now = utcnow()
        code = new_code()
        values = {
            "code_hash": hash_key(code, self._pepper),
            "issued_by": issued_by,
            "lines": json.dumps(sorted(lines)),
            "label": label,
            "created_at": now,
            "expires_at": now + timedelta(minutes=minutes),
            "key_days": key_days,
        }
        with self.db.engine.begin() as conn:
            row_id = conn.execute(insert(board_pairings).values(**values)).inserted_primary_key
        assert row_id is not None
        return code, self.get(int(row_id[0]))

    def get(self, pairing_id: int) -> Pairing:
        with self.db.engine.connect() as conn:
            row = conn.execute(
                select(board_pairings).where(board_pairings.c.id == pairing_id)
            ).one_or_none()
        if row is None:
            raise PairingRefused(f"no pairing {pairing_id}")
        return _pairing(row)

    def redeem(self, code: str) -> tuple[str, Pairing]:
        """The board key for ``code`` (in clear, once) and the pairing; single use."""
        now = utcnow()
        digest = hash_key(normalize(code), self._pepper)
        with self.db.engine.begin() as conn:
            row = conn.execute(
                select(board_pairings).where(board_pairings.c.code_hash == digest)
            ).one_or_none()
            expires = as_utc(row.expires_at) if row is not None else None
            if row is None or row.redeemed_at is not None or expires is None or expires <= now:
                raise PairingRefused("unknown, expired or used code")
            name = f"{row.issued_by[:40]}/tablet-{secrets.token_hex(3)}"
            claimed = conn.execute(
                update(board_pairings)
                .where(board_pairings.c.id == row.id, board_pairings.c.redeemed_at.is_(None))
                .values(redeemed_at=now, key_name=name)
            )
            if claimed.rowcount != 1:  # redeemed at the same moment by someone else
                raise PairingRefused("unknown, expired or used code")
        key = self.keys.create(
            name,
            frozenset({"board"}),
            frozenset(json.loads(row.lines)),
            expires_at=now + timedelta(days=row.key_days),
        )
        return key, self.get(row.id)

    def list(self) -> list[Pairing]:
        with self.db.engine.connect() as conn:
            rows = conn.execute(
                select(board_pairings).order_by(board_pairings.c.created_at.desc())
            ).all()
        return [_pairing(r) for r in rows]

    def revoke(self, pairing_id: int) -> Pairing:
        """Revoke the board key the pairing became, or void the code if not redeemed yet."""
        pairing = self.get(pairing_id)
        if pairing.key_name is not None:
            self.keys.revoke(pairing.key_name)
        else:
            with self.db.engine.begin() as conn:
                conn.execute(
                    update(board_pairings)
                    .where(board_pairings.c.id == pairing_id)
                    .values(expires_at=utcnow())
                )
        return self.get(pairing_id)


def _pairing(r: Row[Any]) -> Pairing:
    return Pairing(
        id=int(r.id),
        issued_by=r.issued_by,
        lines=tuple(json.loads(r.lines)),
        label=r.label,
        created_at=as_utc(r.created_at) or utcnow(),
        expires_at=as_utc(r.expires_at) or utcnow(),
        key_days=int(r.key_days),
        redeemed_at=as_utc(r.redeemed_at),
        key_name=r.key_name,
    )
