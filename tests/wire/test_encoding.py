"""takt_wire's one encoder: canonical events, the historical flag, the batch envelope.

The reference each test compares with is independent of the encoder under test:
pydantic's own serialisation of the whole Batch model, or the standard library's
``json`` reading the bytes back.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from takt_wire import (
    MAX_PAYLOAD_BYTES,
    Batch,
    ContractError,
    EventBase,
    UnitEvent,
    decode_batch,
    decode_event,
    encode_batch,
    encode_envelope,
    encode_event,
    flag_historical,
)

from .strategies import batches, events, names, times

SERIAL_LIKE_THE_FLAG = '","historical":false,"x":"'


@settings(max_examples=30, deadline=None)
@given(batches(max_events=8))
def test_the_envelope_encoder_writes_what_pydantic_writes_for_the_whole_batch(
    batch: Batch,
) -> None:
    assert encode_batch(batch) == batch.model_dump_json(exclude_none=True).encode()


@settings(max_examples=100, deadline=None)
@given(events)
def test_the_canonical_encoding_is_compact_json_of_every_field(event: EventBase) -> None:
    encoded = encode_event(event)
    data = json.loads(encoded)
    assert data == json.loads(event.model_dump_json(exclude_none=True))
    assert decode_event(data) == event


@settings(max_examples=100, deadline=None)
@given(events)
def test_the_historical_flag_changes_that_field_and_nothing_else(event: EventBase) -> None:
    flagged = flag_historical(encode_event(event))
    data: dict[str, Any] = json.loads(flagged)
    expected = json.loads(event.model_dump_json(exclude_none=True))
    expected["historical"] = True
    assert data == expected
    assert decode_event(data) == event.model_copy(update={"historical": True})
    assert flag_historical(flagged) == flagged  # flagging twice changes nothing


def test_a_serial_that_looks_like_the_flag_is_left_alone() -> None:
    event = UnitEvent(
        site="P1",
        line="L1",
        station="S1",
        device="d",
        worker="w1",
        ts=datetime(2026, 11, 23, 8, 0, tzinfo=UTC),
        agent="gw-1",
        boot="b1",
        seq=7,
        outcome="good",
        serial=SERIAL_LIKE_THE_FLAG,
    )
    data = json.loads(flag_historical(encode_event(event)))
    assert data["historical"] is True and data["serial"] == SERIAL_LIKE_THE_FLAG


def test_bytes_without_the_field_are_refused_not_guessed() -> None:
    with pytest.raises(ValueError, match="no historical field"):
        flag_historical(b'{"kind":"unit","seq":1}')


@settings(max_examples=50, deadline=None)
@given(names, names, times, st.lists(events, min_size=1, max_size=10), st.data())
def test_envelope_around_stored_events_decodes_to_the_batch(
    agent: str, boot: str, sent_at: datetime, items: list[EventBase], data: st.DataObject
) -> None:
    items = [e.model_copy(update={"agent": agent, "historical": False}) for e in items]
    late = data.draw(st.lists(st.booleans(), min_size=len(items), max_size=len(items)))
    parts = [
        flag_historical(encode_event(e)) if old else encode_event(e)
        for e, old in zip(items, late, strict=True)
    ]
    batch = decode_batch(encode_envelope(agent, boot, sent_at, parts))
    assert (batch.agent, batch.boot, batch.sent_at) == (agent, boot, sent_at)
    assert [e.historical for e in batch.events] == late
    assert batch.events == [
        e.model_copy(update={"historical": old}) for e, old in zip(items, late, strict=True)
    ]


def test_an_envelope_past_one_mebibyte_is_refused() -> None:
    big = b'{"pad":"' + b"x" * MAX_PAYLOAD_BYTES + b'"}'
    with pytest.raises(ContractError) as caught:
        encode_envelope("gw-1", "b1", datetime(2026, 1, 1, tzinfo=UTC), [big])
    assert caught.value.reason == "oversized"
