"""The batch envelope: many events in one MQTT message.

One MQTT message per event caps a Python pipeline near 10k events/s (see
DESIGN.md); batching is where the throughput is. Decoding is one pydantic-core
pass over the bytes (parse and validate in Rust), and every failure becomes a
:class:`ContractError` so callers handle exactly one exception type.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, RootModel, TypeAdapter, ValidationError

from takt_wire.encoding import MAX_PAYLOAD_BYTES as MAX_PAYLOAD_BYTES
from takt_wire.encoding import encode_envelope, encode_event
from takt_wire.errors import ContractError, describe_validation_error
from takt_wire.events import SCHEMA_VERSION, Event, Name, UtcTime

MAX_BATCH_EVENTS = 5_000
"""Events per batch; a producer with more sends several batches."""


class Batch(BaseModel):
    """Envelope published by one agent: its identity, when it sent, and the events."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    v: Literal[1] = Field(default=1, description="Envelope schema version.")
    agent: Name
    boot: Name
    sent_at: UtcTime
    events: Annotated[list[Event], Field(min_length=1, max_length=MAX_BATCH_EVENTS)]


_batch_adapter: TypeAdapter[Batch] = TypeAdapter(Batch)


class AnyEvent(RootModel[Event]):
    """One event of any kind (for producers validating events one at a time)."""


def _check_version(version: object) -> None:
    if version != SCHEMA_VERSION:
        raise ContractError(
            "schema_version",
            f"schema version {version!r} is not supported (this consumer speaks {SCHEMA_VERSION})",
        )


def decode_batch(payload: bytes | bytearray | str) -> Batch:
    """Parse and validate a batch; raise :class:`ContractError` on anything wrong."""
    size = len(payload)
    if size > MAX_PAYLOAD_BYTES:
        raise ContractError("oversized", f"payload of {size} bytes exceeds {MAX_PAYLOAD_BYTES}")
    try:
        return _batch_adapter.validate_json(payload)
    except ValidationError as err:
        raise _classify(payload, err) from None


def _classify(payload: bytes | bytearray | str, err: ValidationError) -> ContractError:
    """Tell malformed JSON, a version we do not speak and invalid content apart."""
    if any(e["type"] == "json_invalid" for e in err.errors(include_url=False)):
        return ContractError("malformed_json", describe_validation_error(err))
    try:
        raw: Any = json.loads(payload)
    except ValueError:
        return ContractError("malformed_json", describe_validation_error(err))
    if isinstance(raw, dict):
        try:
            _check_version(raw.get("v"))
            for event in raw.get("events") or []:
                if isinstance(event, dict) and "v" in event:
                    _check_version(event["v"])
        except ContractError as version_error:
            return version_error
    if any(e["type"] == "too_long" and e["loc"] == ("events",) for e in err.errors()):
        return ContractError("oversized", describe_validation_error(err))
    return ContractError("invalid", describe_validation_error(err))


def decode_event(data: dict[str, Any]) -> Event:
    """Validate one event from a dict (for producers assembling batches event by event)."""
    try:
        return AnyEvent.model_validate(data).root
    except ValidationError as err:
        if data.get("v", SCHEMA_VERSION) != SCHEMA_VERSION:
            _check_version(data.get("v"))
        raise ContractError("invalid", describe_validation_error(err)) from None


def encode_batch(batch: Batch) -> bytes:
    """Serialise a batch to compact JSON bytes (what goes on the wire).

    The same encoder the agent publishes with (:mod:`takt_wire.encoding`): each event's
    canonical encoding inside the envelope; raises ContractError past 1 MiB.
    """
    return encode_envelope(
        batch.agent, batch.boot, batch.sent_at, [encode_event(event) for event in batch.events]
    )
