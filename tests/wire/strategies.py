"""Hypothesis strategies for valid canonical events and batches."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import strategies as st

from takt_wire import (
    UNATTRIBUTED,
    Batch,
    EventBase,
    GapEvent,
    SessionEvent,
    StateEvent,
    UnitEvent,
    WorkEvent,
)
from takt_wire.events import MAX_SEQ

names = st.from_regex(r"\A[A-Za-z0-9][A-Za-z0-9_.:\-]{0,20}\Z")
codes = st.from_regex(r"\A[A-Za-z0-9_.:\-]{1,10}\Z")
times = st.datetimes(
    min_value=datetime(2020, 1, 1), max_value=datetime(2035, 1, 1), timezones=st.just(UTC)
)
seconds = st.floats(min_value=0, max_value=3600, allow_nan=False, allow_infinity=False)


@st.composite
def base_fields(draw: st.DrawFn, worker: st.SearchStrategy[str] | None = None) -> dict[str, object]:
    return {
        "site": draw(names),
        "line": draw(names),
        "station": draw(names),
        "device": draw(names),
        "worker": draw(worker if worker is not None else st.one_of(names, st.just(UNATTRIBUTED))),
        "ts": draw(times),
        "agent": draw(names),
        "boot": draw(names),
        "seq": draw(st.integers(min_value=0, max_value=MAX_SEQ)),
        "historical": draw(st.booleans()),
    }


@st.composite
def unit_events(draw: st.DrawFn) -> UnitEvent:
    outcome = draw(st.sampled_from(["good", "defect"]))
    serial = draw(st.one_of(st.none(), st.text(min_size=1, max_size=20)))
    return UnitEvent(
        **draw(base_fields()),
        outcome=outcome,
        count=1 if serial is not None else draw(st.integers(min_value=1, max_value=1000)),
        defect_code=draw(codes) if outcome == "defect" else None,
        serial=serial,
        cycle_s=draw(st.one_of(st.none(), seconds)),
    )


@st.composite
def work_events(draw: st.DrawFn) -> WorkEvent:
    fields = draw(base_fields())
    work = draw(seconds)
    down = draw(st.dictionaries(codes, st.floats(min_value=0, max_value=1), max_size=3))
    scale = work / max(sum(down.values()), 1.0)
    down = {reason: value * scale * 0.5 for reason, value in down.items()}
    end: datetime = fields["ts"]  # type: ignore[assignment]
    return WorkEvent(
        **fields,
        start=end - timedelta(seconds=work + draw(st.floats(min_value=0, max_value=10))),
        work_s=work,
        effective_s=max(work - sum(down.values()), 0.0),
        down_s=down,
    )


@st.composite
def session_events(draw: st.DrawFn) -> SessionEvent:
    return SessionEvent(
        **draw(base_fields(worker=names)), action=draw(st.sampled_from(["login", "logout"]))
    )


@st.composite
def state_events(draw: st.DrawFn) -> StateEvent:
    state = draw(st.sampled_from(["running", "idle", "down"]))
    return StateEvent(
        **draw(base_fields()), state=state, reason=draw(codes) if state == "down" else None
    )


@st.composite
def gap_events(draw: st.DrawFn) -> GapEvent:
    fields = draw(base_fields())
    end: datetime = fields["ts"]  # type: ignore[assignment]
    span = draw(st.floats(min_value=0, max_value=7 * 24 * 3600))
    return GapEvent(**fields, start=end - timedelta(seconds=span), reason=draw(codes))


events: st.SearchStrategy[EventBase] = st.one_of(
    unit_events(), work_events(), session_events(), state_events(), gap_events()
)


@st.composite
def batches(draw: st.DrawFn, max_events: int = 20) -> Batch:
    return Batch(
        agent=draw(names),
        boot=draw(names),
        sent_at=draw(times),
        events=draw(st.lists(events, min_size=1, max_size=max_events)),
    )
