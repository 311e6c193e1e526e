"""Small builders shared by the collector tests."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from takt_wire import Batch, UnitEvent, encode_batch
from takt_wire.topics import events_topic

NOW = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
TOPIC = events_topic("s1", "a1")


def unit(seq: int, **over: Any) -> UnitEvent:
    fields: dict[str, Any] = {
        "site": "s1",
        "line": "L1",
        "station": "st1",
        "device": "plc1",
        "worker": "w1",
        "ts": NOW - timedelta(minutes=5) + timedelta(milliseconds=seq),
        "agent": "a1",
        "boot": "b1",
        "seq": seq,
        "outcome": "good",
    }
    fields.update(over)
    return UnitEvent(**fields)


def batch(*events: UnitEvent, agent: str = "a1") -> bytes:
    return encode_batch(Batch(agent=agent, boot="b1", sent_at=NOW, events=list(events)))


def raw_batch(events: list[dict[str, Any]], **envelope: Any) -> bytes:
    """A batch built as plain JSON, so it can break the contract on purpose."""
    body = {"v": 1, "agent": "a1", "boot": "b1", "sent_at": NOW.isoformat(), "events": events}
    body.update(envelope)
    return json.dumps(body).encode()


def unit_dict(seq: int, **over: Any) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(unit(seq).model_dump_json(exclude_none=True))
    data.update(over)
    return data


def rows(series: list[dict[str, object]]) -> list[list[Any]]:
    """Values of the first series of an Influxd.query answer ([] when there is none)."""
    if not series:
        return []
    values: list[list[Any]] = series[0]["values"]  # type: ignore[assignment]
    return values
