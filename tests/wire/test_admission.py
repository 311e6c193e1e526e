"""The shared admission check, on hand-built batches: identity, key binding, time window."""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from takt_wire import Batch, ContractError, UnitEvent, WorkEvent, encode_batch
from takt_wire.admission import Policy, admit
from takt_wire.signing import SIGNATURE_PROPERTY
from takt_wire.topics import events_topic

RECEIVED = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
TOPIC = events_topic("s1", "a1")
PLUS2 = timezone(timedelta(hours=2))
MINUS5 = timezone(timedelta(hours=-5))


def unit(seq: int, ts: datetime, **over: Any) -> UnitEvent:
    fields: dict[str, Any] = {
        "site": "s1", "line": "L1", "station": "st1", "device": "d", "worker": "w1",
        "ts": ts, "agent": "a1", "boot": "b1", "seq": seq, "outcome": "good",
    }  # fmt: skip
    return UnitEvent(**(fields | over))


def payload(*events: UnitEvent | WorkEvent, agent: str = "a1", boot: str = "b1") -> bytes:
    return encode_batch(Batch(agent=agent, boot=boot, sent_at=RECEIVED, events=list(events)))


def test_the_window_is_exact_whatever_the_offsets() -> None:
    # The same instants written in three offsets; the check compares instants.
    edge = RECEIVED + timedelta(seconds=300)
    past = RECEIVED - timedelta(days=730)
    events = [
        unit(0, edge.astimezone(PLUS2)),  # exactly at the future cap: admitted
        unit(1, (edge + timedelta(seconds=1)).astimezone(MINUS5)),  # one second over
        unit(2, past.astimezone(MINUS5)),  # exactly at the past cap: admitted
        unit(3, (past - timedelta(seconds=1)).astimezone(PLUS2)),  # one second over
        unit(4, RECEIVED),
    ]
    out = admit(TOPIC, payload(*events), None, Policy(), RECEIVED)
    assert [e.seq for e in out.events] == [0, 2, 4]
    assert [(r.event.seq, r.reason) for r in out.refused] == [
        (1, "future_timestamp"),
        (3, "past_timestamp"),
    ]


def test_a_work_interval_starting_before_the_past_cap_is_refused() -> None:
    start = RECEIVED - timedelta(days=731)
    work = WorkEvent(
        site="s1", line="L1", station="st1", device="d", worker="w1", ts=RECEIVED,
        agent="a1", boot="b1", seq=0, start=start, work_s=60.0, effective_s=60.0,
    )  # fmt: skip
    out = admit(TOPIC, payload(work), None, Policy(), RECEIVED)
    assert out.events == [] and out.refused[0].reason == "past_timestamp"
    assert out.refused[0].detail.startswith("start ")
    assert admit(TOPIC, payload(work), None, Policy(max_past_s=None), RECEIVED).events


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        (payload(unit(0, RECEIVED, agent="a2")), "agent_mismatch"),
        (payload(unit(0, RECEIVED), agent="a2"), "topic_mismatch"),
        # the outbox's earlier boot first, then the current one: fine; the reverse is not
        (payload(unit(0, RECEIVED, boot="b2"), unit(1, RECEIVED), boot="b2"), "boot_mismatch"),
    ],
    ids=["event-of-another-agent", "envelope-of-another-agent", "boot-after-current"],
)
def test_identity_is_checked_for_every_event(message: bytes, reason: str) -> None:
    with pytest.raises(ContractError) as err:
        admit(TOPIC, message, None, Policy(), RECEIVED)
    assert err.value.reason == reason


def test_earlier_boots_may_precede_the_current_one() -> None:
    message = payload(unit(0, RECEIVED, boot="b1"), unit(1, RECEIVED, boot="b2"), boot="b2")
    assert len(admit(TOPIC, message, None, Policy(), RECEIVED).events) == 2


def signed(message: bytes, key_id: str, key: bytes) -> dict[str, object]:
    """The signature property as the wire contract describes it, not as takt_wire makes it:
    '<key id>:<hex HMAC-SHA256 of the payload bytes>'."""
    return {SIGNATURE_PROPERTY: f"{key_id}:" + hmac.new(key, message, hashlib.sha256).hexdigest()}


def test_a_key_signs_only_for_its_own_agent() -> None:
    keys = {"a1@2026": b"k" * 32, "a2": b"m" * 32}
    policy = Policy(signing_keys=keys)
    message = payload(unit(0, RECEIVED))
    assert admit(TOPIC, message, signed(message, "a1@2026", keys["a1@2026"]), policy, RECEIVED)
    with pytest.raises(ContractError, match="not bound to agent 'a1'"):
        admit(TOPIC, message, signed(message, "a2", keys["a2"]), policy, RECEIVED)


def test_without_the_topic_check_a_key_still_binds_every_event() -> None:
    """A deployment that turns the topic check off must not let a1's key vouch for events
    that claim to be a2's."""
    keys = {"a1": b"k" * 32}
    policy = Policy(signing_keys=keys, check_topic=False)
    forged = payload(unit(0, RECEIVED), unit(1, RECEIVED, agent="a2"))
    with pytest.raises(ContractError) as err:
        admit(
            events_topic("s1", "elsewhere"),
            forged,
            signed(forged, "a1", keys["a1"]),
            policy,
            RECEIVED,
        )
    assert err.value.reason == "agent_mismatch"
    honest = payload(unit(0, RECEIVED))
    assert admit(
        events_topic("s1", "elsewhere"), honest, signed(honest, "a1", keys["a1"]), policy, RECEIVED
    ).events
