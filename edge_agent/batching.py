"""Outbox rows → one batch payload and its signature (pure): the publisher's encoding side.

Rows hold canonical event encodings (see edge_agent/outbox.py), so a batch is
built without parsing: events that waited too long get the historical flag and
the envelope goes around them, both through takt_wire's encoder, the one every
producer uses. Kept apart from the MQTT session so it can be tested (and
benchmarked) without a broker.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from edge_agent.outbox import Row
from takt_wire.encoding import encode_envelope, flag_historical
from takt_wire.signing import sign


@dataclass(frozen=True)
class Payload:
    """One message: its bytes, the outbox rows it took, and its signature (if signing)."""

    data: bytes
    used: int
    """How many of the offered rows it carries (a prefix)."""
    first: int
    last: int
    historical: int
    """How many of its events are flagged historical."""
    signature: str | None


def compose(
    rows: Sequence[Row],
    *,
    agent: str,
    boot: str,
    now: float,
    historical_after_s: float,
    max_bytes: int,
    key: tuple[str, bytes] | None = None,
) -> Payload:
    """The longest prefix of ``rows`` that fits ``max_bytes`` (at least one row) as a batch.

    An event that happened (gateway time) more than ``historical_after_s`` before
    ``now`` is flagged historical. ``key`` is (key id, secret) to sign the bytes with.
    """
    if not rows:
        raise ValueError("a batch needs at least one event")
    late = now - historical_after_s
    flags = [happened < late for _seq, happened, _body in rows]
    parts = [
        flag_historical(row[2]) if old else row[2] for row, old in zip(rows, flags, strict=True)
    ]
    used = len(parts)
    if sum(map(len, parts)) + used - 1 > max_bytes:  # rare: keep the prefix that fits
        size = 0
        for index, body in enumerate(parts):
            if index and size + len(body) > max_bytes:
                used = index
                break
            size += len(body) + 1
        del parts[used:]
    historical = sum(flags[:used])
    data = encode_envelope(agent, boot, datetime.fromtimestamp(now, UTC), parts)
    signature = sign(data, key[0], key[1]) if key is not None else None
    return Payload(data, used, rows[0][0], rows[used - 1][0], historical, signature)
