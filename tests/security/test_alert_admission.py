"""Issue 13, case 1: the alert engine admits exactly what the collector admits.

A real Mosquitto carries forged, unsigned, mis-attributed and far-future batches to
a real alert engine configured as in production (signatures required, keys bound
to agents, default time caps). None of them raises, clears or blinds an alert;
the same messages are refused by the collector's pipeline, and a genuine signed
defect burst afterwards is still alerted.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from collector.pipeline import Pipeline, Rules
from kpi_service.alerts.service import AlertService
from takt_cli.localservices import Influxd, Mosquitto
from takt_wire import Batch, encode_batch
from takt_wire.signing import SIGNATURE_PROPERTY, sign
from takt_wire.topics import events_topic
from tests.alerts.factory import Line
from tests.alerts.harness import Bus, make_app, now_aligned, serve, service, until
from tests.alerts.receivers import HttpReceiver, receiver_fixture

KEYS = {"a1@k1": "a1-signing-key-0123456789", "a2@k1": "a2-signing-key-0123456789"}


@pytest.fixture
def receiver() -> Iterator[HttpReceiver]:
    yield from receiver_fixture()


@pytest.fixture(autouse=True)
def hook_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TAKT_TEST_HOOK_SECRET", "security-hook-secret")


def signed(batch: Batch, key_id: str) -> tuple[bytes, dict[str, str]]:
    payload = encode_batch(batch)
    return payload, {SIGNATURE_PROPERTY: sign(payload, key_id, KEYS[key_id].encode())}


def defect_burst(line: Line, t0: float, n: int) -> Batch:
    """n units of W2 at S2, every one defective: far above the rule's critical level."""
    return line.batch(
        [line.unit(t0 + i * 0.5, station="S2", worker="W2", defect=True) for i in range(n)]
    )


async def test_forged_batches_never_reach_a_rule_and_genuine_ones_still_alert(
    tmp_path: Path, mosquitto: Mosquitto, influxd: Influxd, receiver: HttpReceiver
) -> None:
    app, _ = make_app(
        tmp_path,
        mosquitto.port,
        receiver.url,
        influxd.url,
        "security_admission",
        require_signature=True,
        signing_keys=KEYS,
    )
    bus = Bus(mosquitto.port)
    t0 = now_aligned()
    a1 = Line(agent="a1", boot="b1", t0=t0)
    topic_a1, topic_a2 = events_topic("s1", "a1"), events_topic("s1", "a2")
    collector = Pipeline(Rules(signing_keys={k: v.encode() for k, v in KEYS.items()}))

    unsigned = encode_batch(defect_burst(a1, 0, 30))
    stolen_key = signed(defect_burst(a1, 0, 30), "a2@k1")  # a2's genuine key, a1's batch
    impostor_events = defect_burst(a1, 0, 30)  # events of a1 ...
    impostor = signed(
        Batch(agent="a2", boot="b9", sent_at=datetime.now(UTC), events=impostor_events.events),
        "a2@k1",
    )  # ... in a2's own, correctly signed envelope on a2's topic
    in_2099 = (datetime(2099, 6, 1, tzinfo=UTC) - t0).total_seconds()
    future = a1.batch([a1.unit(in_2099, station="S2", worker="W2", defect=True)])
    future_signed = signed(future, "a1@k1")
    forged = [
        (topic_a1, unsigned, {}),
        (topic_a1, *stolen_key),
        (topic_a2, *impostor),
    ]
    # The collector refuses every one of them whole, and the 2099 event alone.
    for topic, payload, props in forged:
        out = collector.process(topic, payload, props)
        assert out.lines == [] and [r.kind for r in out.rejected] == ["message"]
    refused_future = collector.process(topic_a1, *future_signed)
    assert [r.reason for r in refused_future.rejected] == ["future_timestamp"]

    async with serve(app) as base, httpx.AsyncClient(base_url=base, timeout=10):
        svc: AlertService = service(app)
        for topic, payload, props in forged:
            bus.raw(topic, payload, props)
        bus.raw(topic_a1, *future_signed)
        await until(lambda: svc.invalid_batches == 3 and svc.refused_events == 1, what="refusals")
        assert svc.engine.counters.accepted == 0, "no forged event reached the windows"
        assert svc.engine.clocks == {}, "the 2099 event moved no line clock"
        assert svc.store.find() == []

        # Genuine signed production: healthy units, then a defect burst; it is alerted.
        good = a1.batch([a1.unit(i * 0.5, station="S2", worker="W2") for i in range(10)])
        bus.raw(topic_a1, *signed(good, "a1@k1"))
        bus.raw(topic_a1, *signed(defect_burst(a1, 5, 40), "a1@k1"))
        bus.raw(topic_a1, *signed(a1.batch([a1.unit(40, station="S1", worker="W1")]), "a1@k1"))
        await until(lambda: len(svc.store.find(status="open")) == 1, what="the genuine alert")
        [alert] = svc.store.find(status="open")
        assert (alert.worker, alert.station) == ("W2", "S2")
        assert svc.engine.counters.accepted == 51

        # A forged recovery (1000 unsigned good units for W2, enough to bring the rate
        # far under the clear level) must not clear the real alert.
        forged_good = a1.batch(
            [a1.unit(41 + i * 0.1, station="S2", worker="W2") for i in range(1000)]
        )
        bus.raw(topic_a1, encode_batch(forged_good), {})
        await until(lambda: svc.invalid_batches == 4, what="the forged recovery refused")
        await asyncio.sleep(1.0)  # several ticks
        assert [a.id for a in svc.store.find(status="open")] == [alert.id]
        assert svc.engine.counters.accepted == 51
    bus.close()
