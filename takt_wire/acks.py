"""End-to-end acknowledgement: the collector tells an agent which events are stored.

An MQTT PUBACK only says the broker took a message. The broker can still lose it
(a restart drops ``$share`` subscriptions, a crash drops what it had not saved),
so the agent keeps every event until the collector confirms that InfluxDB (or the
dead-letter store) holds it. The confirmation names the sequence numbers as
closed ranges; sequence numbers are unique per agent across boots, so ranges are
all an agent needs to delete exactly what is safe.

Ranges list only sequence numbers the collector actually saw in the batches it
wrote: an agent deleting a range never deletes an event nobody stored.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from takt_wire.errors import ContractError, describe_validation_error
from takt_wire.events import MAX_SEQ, Name

MAX_ACK_RANGES = 10_000
"""Ranges in one acknowledgement; a collector with more sends several messages."""

Seq = Annotated[int, Field(ge=0, le=MAX_SEQ)]


class Ack(BaseModel):
    """``ranges`` of ``agent``'s sequence numbers are stored downstream."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    v: Literal[1] = 1
    agent: Name
    ranges: Annotated[list[tuple[Seq, Seq]], Field(min_length=1, max_length=MAX_ACK_RANGES)] = (
        Field(description="Closed ranges [first, last] of stored sequence numbers.")
    )
    by: Name = Field(description="The collector that stored them (for diagnosis).")


_adapter: TypeAdapter[Ack] = TypeAdapter(Ack)


def seq_ranges(seqs: Iterable[int]) -> list[tuple[int, int]]:
    """Closed runs of consecutive numbers: [3, 1, 2, 7] -> [(1, 3), (7, 7)]."""
    ranges: list[tuple[int, int]] = []
    for seq in sorted(set(seqs)):
        if ranges and seq == ranges[-1][1] + 1:
            ranges[-1] = (ranges[-1][0], seq)
        else:
            ranges.append((seq, seq))
    return ranges


def encode_ack(agent: str, ranges: list[tuple[int, int]], by: str) -> list[bytes]:
    """Acknowledgement payloads for ``ranges`` (several when there are very many)."""
    return [
        Ack(agent=agent, ranges=ranges[i : i + MAX_ACK_RANGES], by=by).model_dump_json().encode()
        for i in range(0, len(ranges), MAX_ACK_RANGES)
    ]


def decode_ack(payload: bytes | str) -> Ack:
    """Parse and validate an acknowledgement; :class:`ContractError` on anything wrong."""
    try:
        ack = _adapter.validate_json(payload)
    except ValidationError as err:
        raise ContractError("invalid", describe_validation_error(err)) from None
    if any(first > last for first, last in ack.ranges):
        raise ContractError("invalid", "ranges: first must not exceed last")
    return ack
