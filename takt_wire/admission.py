"""The one admission check every consumer of event batches applies.

The collector and the alert engine read the same MQTT messages. Whatever the
collector refuses must never reach an alert rule either, so both call
:func:`admit` with the same :class:`Policy`; nothing else decides what is
admitted. Order: size and signature on the raw bytes (a forged payload is never
parsed), the wire contract, the topic and the identity of every event, then each
event's time against the time the message was received.

A message-level problem raises :class:`ContractError` (the whole message is
refused: it is forged or broken, so none of it can be trusted); an event outside
the time window is refused alone, and the rest of its batch is admitted.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, tzinfo

from takt_wire.batch import MAX_PAYLOAD_BYTES, Batch, decode_batch
from takt_wire.errors import ContractError
from takt_wire.events import Event, WorkEvent
from takt_wire.signing import SIGNATURE_PROPERTY, key_agent, verify
from takt_wire.topics import parse_events_topic

DEFAULT_MAX_FUTURE_S = 300.0
"""An event more than five minutes ahead of its receiver's clock is a broken device clock."""
DEFAULT_MAX_PAST_S = 730 * 86_400.0
"""As far back as the collector's raw retention (730 days): InfluxDB drops older points anyway."""


@dataclass(frozen=True)
class Policy:
    """What a consumer admits; the defaults are the production defaults (caps on)."""

    signing_keys: Mapping[str, bytes] | None = None
    """Key id -> HMAC key; None: signatures are not required. Key ids are bound to agents
    (see :func:`takt_wire.signing.key_agent`): a key signs only its own agent's batches."""
    check_topic: bool = True
    """The topic's agent, the envelope's agent and every event's agent must be one agent."""
    max_future_s: float = DEFAULT_MAX_FUTURE_S
    max_past_s: float | None = DEFAULT_MAX_PAST_S


@dataclass(frozen=True)
class Refused:
    """One event refused on its own (the rest of its batch is admitted)."""

    event: Event
    reason: str
    """``future_timestamp`` or ``past_timestamp``: stable, a metric label and dead-letter reason."""
    detail: str


@dataclass
class Admitted:
    batch: Batch
    events: list[Event] = field(default_factory=list)
    """Events inside the time window, in batch order."""
    refused: list[Refused] = field(default_factory=list)


def admit(
    topic: str,
    payload: bytes | bytearray,
    properties: Mapping[str, object] | None,
    policy: Policy,
    received: datetime,
) -> Admitted:
    """Admit the events of one message; raise ContractError when the message is refused whole."""
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise ContractError("oversized", f"payload of {len(payload)} bytes")
    signer: str | None = None
    if policy.signing_keys is not None:
        signature = (properties or {}).get(SIGNATURE_PROPERTY)
        signer = verify(
            payload, signature if isinstance(signature, str) else None, policy.signing_keys
        )
    batch = decode_batch(payload)
    if policy.check_topic:
        where = parse_events_topic(topic)
        if where is None or where.agent != batch.agent:
            raise ContractError(
                "topic_mismatch", f"batch of agent {batch.agent!r} arrived on topic {topic!r}"
            )
    _check_identity(batch)  # always: a key bound to the envelope's agent binds its events
    if signer is not None and key_agent(signer) != batch.agent:
        raise ContractError(
            "bad_signature", f"key {signer!r} is not bound to agent {batch.agent!r}"
        )
    return _window(batch, policy, received)


def _check_identity(batch: Batch) -> None:
    """Envelope and events name one agent; boots are in the order an agent sends them.

    An agent's outbox keeps events across a restart with the boot they were made
    under, so a batch may start with events of earlier boots, but once the
    envelope's (current) boot appears no other boot can follow it.
    """
    events = batch.events
    if {e.agent for e in events} == {batch.agent} and {e.boot for e in events} == {batch.boot}:
        return  # the common case, in two set passes
    current = False
    for index, event in enumerate(events):
        if event.agent != batch.agent:
            raise ContractError(
                "agent_mismatch",
                f"events.{index}: event of agent {event.agent!r} in a batch of {batch.agent!r}",
            )
        if event.boot == batch.boot:
            current = True
        elif current:
            raise ContractError(
                "boot_mismatch",
                f"events.{index}: boot {event.boot!r} after the current boot {batch.boot!r}",
            )


def _window(batch: Batch, policy: Policy, received: datetime) -> Admitted:
    out = Admitted(batch)
    latest = received + timedelta(seconds=policy.max_future_s)
    earliest = received - timedelta(seconds=policy.max_past_s or 0.0)
    capped = policy.max_past_s is not None
    # Bounds in the events' own tzinfo: comparing datetimes that share a tzinfo object
    # skips the offset arithmetic (about 10x faster on the collector's hot path), and
    # is exact for the fixed offsets the wire carries.
    zone: tzinfo | None = None
    hi = latest
    lo = earliest
    for event in batch.events:
        ts = event.ts
        if ts.tzinfo is not zone:
            zone = ts.tzinfo
            hi, lo = latest.astimezone(zone), earliest.astimezone(zone)
        if ts > hi:
            detail = f"ts {ts.isoformat()} is after {latest.isoformat()}"
            out.refused.append(Refused(event, "future_timestamp", detail))
            continue
        if capped:
            first = event.start if isinstance(event, WorkEvent) else ts
            if first < (lo if first.tzinfo is zone else earliest):
                name = "ts" if first is ts else "start"
                detail = f"{name} {first.isoformat()} is before {earliest.isoformat()}"
                out.refused.append(Refused(event, "past_timestamp", detail))
                continue
        out.events.append(event)
    return out
