"""The wire contract: round trips, and one clear error type for every bad payload."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from takt_cli.schema import schemas
from takt_wire import (
    MAX_BATCH_EVENTS,
    MAX_PAYLOAD_BYTES,
    UNATTRIBUTED,
    Batch,
    ContractError,
    UnitEvent,
    WorkEvent,
    decode_batch,
    decode_event,
    encode_batch,
)
from takt_wire.signing import sign, verify
from takt_wire.topics import events_filter, events_topic, parse_events_topic, shared

from .strategies import batches, events

NOW = datetime(2026, 3, 14, 6, 0, tzinfo=UTC)
SCHEMA_KINDS = {
    ref.rsplit("/", 1)[-1]
    for ref in schemas()["event.schema.json"]["discriminator"]["mapping"].values()  # type: ignore[index]
}


def unit(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "kind": "unit",
        "site": "P1",
        "line": "L1",
        "station": "S1",
        "device": "plc-1",
        "worker": "W001",
        "ts": "2026-03-14T06:00:00Z",
        "agent": "gw-1",
        "boot": "b1",
        "seq": 1,
        "outcome": "good",
    }
    data.update(overrides)
    return data


def batch_payload(*event_dicts: dict[str, Any], **overrides: Any) -> bytes:
    envelope: dict[str, Any] = {
        "v": 1,
        "agent": "gw-1",
        "boot": "b1",
        "sent_at": "2026-03-14T06:00:01Z",
        "events": list(event_dicts),
    }
    envelope.update(overrides)
    return json.dumps(envelope).encode()


@settings(max_examples=100, deadline=None)
@given(batches())
def test_every_batch_round_trips_through_json(batch: Batch) -> None:
    assert decode_batch(encode_batch(batch)) == batch


@settings(max_examples=200, deadline=None)
@given(events)
def test_every_event_round_trips_and_matches_the_exported_schema(event: Any) -> None:
    data = json.loads(event.model_dump_json())
    assert decode_event(data) == event
    assert type(event).__name__ in SCHEMA_KINDS


@pytest.mark.parametrize(
    ("payload", "reason", "names"),
    [
        (b"{not json", "malformed_json", "Invalid JSON"),
        (b"", "malformed_json", "EOF"),
        (b"[1, 2]", "invalid", "(root)"),
        (batch_payload(unit(), v=2), "schema_version", "version 2"),
        (batch_payload(unit(v=7)), "schema_version", "version 7"),
        (batch_payload(unit(seq=-1)), "invalid", "seq"),
        (batch_payload(unit(count=-3)), "invalid", "count"),
        (batch_payload(unit(count=0)), "invalid", "count"),
        (batch_payload(unit(count=1.5)), "invalid", "count"),
        (batch_payload(unit(count="NaN")), "invalid", "count"),
        (batch_payload(unit(ts="2026-03-14T06:00:00")), "invalid", "timezone"),
        (batch_payload(unit(station="S 1")), "invalid", "station"),
        (batch_payload(unit(station="a/b")), "invalid", "station"),
        (batch_payload(unit(outcome="defect")), "invalid", "defect_code"),
        (batch_payload(unit(defect_code="E1")), "invalid", "defect_code"),
        (batch_payload(unit(kind="teleport")), "invalid", "kind"),
        (batch_payload(unit(extra="field")), "invalid", "extra"),
        (batch_payload({k: v for k, v in unit().items() if k != "worker"}), "invalid", "worker"),
        (batch_payload(), "invalid", "events"),
        (batch_payload(unit(), sent_at="yesterday"), "invalid", "sent_at"),
    ],
)
def test_bad_payloads_raise_one_clear_error(payload: bytes, reason: str, names: str) -> None:
    with pytest.raises(ContractError) as caught:
        decode_batch(payload)
    assert caught.value.reason == reason
    assert names in caught.value.detail


def test_nan_and_infinite_seconds_are_refused() -> None:
    work = {
        **unit(kind="work"),
        "start": "2026-03-14T05:59:00Z",
        "work_s": 60.0,
        "effective_s": 60.0,
    }
    del work["outcome"]
    decode_batch(batch_payload(work))
    for bad in (math.nan, math.inf, -1.0):
        payload = batch_payload(work).replace(b'"work_s": 60.0', f'"work_s": {bad}'.encode())
        with pytest.raises(ContractError) as caught:
            decode_batch(payload)
        assert caught.value.reason in {"invalid", "malformed_json"}


def test_work_seconds_must_add_up() -> None:
    with pytest.raises(ValueError, match="do not add up"):
        WorkEvent(
            **{k: v for k, v in unit().items() if k not in {"kind", "outcome", "ts"}},
            ts=NOW,
            start=NOW - timedelta(minutes=1),
            work_s=60,
            effective_s=60,
            down_s={"fault": 10},
        )
    with pytest.raises(ValueError, match="exceeds the interval"):
        WorkEvent(
            **{k: v for k, v in unit().items() if k not in {"kind", "outcome", "ts"}},
            ts=NOW,
            start=NOW - timedelta(seconds=10),
            work_s=60,
            effective_s=60,
        )


def test_logins_name_a_worker() -> None:
    event = {**unit(kind="session", action="login", worker=UNATTRIBUTED)}
    del event["outcome"]
    with pytest.raises(ContractError, match="names the worker"):
        decode_batch(batch_payload(event))


def test_oversized_payload_is_refused_before_parsing() -> None:
    payload = b" " * (MAX_PAYLOAD_BYTES + 1)
    with pytest.raises(ContractError) as caught:
        decode_batch(payload)
    assert caught.value.reason == "oversized"


def test_too_many_events_is_oversized() -> None:
    payload = batch_payload(*[unit(seq=i) for i in range(MAX_BATCH_EVENTS + 1)])
    assert len(payload) < MAX_PAYLOAD_BYTES
    with pytest.raises(ContractError) as caught:
        decode_batch(payload)
    assert caught.value.reason == "oversized"


def test_encode_refuses_what_decode_would_refuse() -> None:
    event = UnitEvent.model_validate(unit(serial="x" * 128))
    batch = Batch(agent="a", boot="b", sent_at=NOW, events=[event] * MAX_BATCH_EVENTS)
    with pytest.raises(ContractError) as caught:
        encode_batch(batch)
    assert caught.value.reason == "oversized"


@given(st.binary(max_size=300))
def test_arbitrary_bytes_never_raise_anything_else(payload: bytes) -> None:
    with pytest.raises(ContractError):
        decode_batch(payload)


def test_signature_covers_the_exact_bytes() -> None:
    keys = {"k1": b"secret-one", "k2": b"secret-two"}
    payload = batch_payload(unit())
    signature = sign(payload, "k2", keys["k2"])
    assert verify(payload, signature, keys) == "k2"
    for bad_payload, bad_signature, why in [
        (payload + b" ", signature, "does not match"),
        (payload, signature.replace("k2:", "k1:"), "does not match"),
        (payload, "k3:" + signature.split(":")[1], "unknown signing key"),
        (payload, None, "not signed"),
    ]:
        with pytest.raises(ContractError, match=why) as caught:
            verify(bad_payload, bad_signature, keys)
        assert caught.value.reason == "bad_signature"


def test_topics_round_trip() -> None:
    topic = events_topic("P1", "gw-1")
    assert topic == "takt/v1/P1/events/gw-1"
    parsed = parse_events_topic(topic)
    assert parsed is not None and (parsed.site, parsed.agent) == ("P1", "gw-1")
    assert parse_events_topic("takt/v1/P1/alerts/L1/S1") is None
    assert shared("collectors", events_filter()) == "$share/collectors/takt/v1/+/events/+"
