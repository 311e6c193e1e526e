"""The one encoder of events and batch envelopes: what the agent stores and publishes.

An event's canonical encoding is its compact JSON as pydantic-core writes it
(fields in model order, absent optionals left out). The agent's outbox stores
exactly these bytes, and a batch is assembled from stored events without
parsing them again: the envelope is a few byte joins around the events, and the
historical flag is one byte substitution at a position the contract fixes.

Why the substitution is safe: in the canonical encoding ``historical`` follows
``v``, the identifiers (``site`` … ``boot``, which cannot contain a quote), ``ts``
and ``seq``; nothing before it can contain the text ``"historical":``, so its
first occurrence is the field (a serial number later in the event cannot be
mistaken for it). The round-trip tests in tests/wire check this against
arbitrary events.

Every producer uses these functions: the agent's publisher, the collector's
replay (through :func:`takt_wire.encode_batch`), tests and benchmarks.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime

from pydantic import TypeAdapter

from takt_wire.errors import ContractError
from takt_wire.events import SCHEMA_VERSION, EventBase

MAX_PAYLOAD_BYTES = 1_048_576
"""Largest accepted MQTT payload (1 MiB), checked before parsing."""

_LIVE = b'"historical":false'
_HISTORICAL = b'"historical":true'
_HEAD = b'{"v":%d,"agent":' % SCHEMA_VERSION
_time_json = TypeAdapter(datetime).dump_json


def encode_event(event: EventBase) -> bytes:
    """An event's canonical encoding: compact JSON bytes, ``None`` fields left out."""
    return event.__pydantic_serializer__.to_json(event, exclude_none=True)


def flag_historical(encoded: bytes) -> bytes:
    """The canonical encoding ``encoded`` with ``historical`` set to true.

    Raises ValueError for bytes that are not a canonical event encoding (no
    ``historical`` field): guessing where to put the flag could corrupt the event.
    """
    flagged = encoded.replace(_LIVE, _HISTORICAL, 1)
    if len(flagged) < len(encoded) or _HISTORICAL in encoded:  # "true" is one byte shorter
        return flagged
    raise ValueError("not a canonical event encoding: it has no historical field")


def encode_envelope(agent: str, boot: str, sent_at: datetime, events: Sequence[bytes]) -> bytes:
    """The batch envelope around already encoded events (canonical encodings).

    Produces the same bytes as the :class:`takt_wire.Batch` model would, at the
    cost of a few joins; raises :class:`ContractError` (``oversized``) past 1 MiB.
    """
    head = b"".join(
        (
            _HEAD,
            json.dumps(agent).encode(),
            b',"boot":',
            json.dumps(boot).encode(),
            b',"sent_at":',
            _time_json(sent_at),
            b',"events":[',
        )
    )
    if events:  # one join over the events (the payload is copied once, not twice)
        parts = list(events)
        parts[0] = head + parts[0]
        parts[-1] += b"]}"
        payload = b",".join(parts)
    else:
        payload = head + b"]}"
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise ContractError(
            "oversized", f"encoded batch of {len(payload)} bytes exceeds {MAX_PAYLOAD_BYTES}"
        )
    return payload
