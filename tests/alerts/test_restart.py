"""After a restart the engine neither forgets a running problem nor raises it twice."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from kpi_service.alerts.rebuild import fetch
from kpi_service.alerts.windows import Series, efficiency_inputs, obs_from_event
from kpi_service.testing import AnyEvent, lines_of, setup_statements
from takt_cli.localservices import Influxd, Mosquitto
from takt_store.errors import InfluxAuthError
from takt_store.settings import InfluxSettings
from tests.alerts.factory import Line
from tests.alerts.harness import Bus, make_app, now_aligned, serve, service, until
from tests.alerts.receivers import HttpReceiver, receiver_fixture


@pytest.fixture
def receiver() -> Iterator[HttpReceiver]:
    yield from receiver_fixture()


@pytest.fixture(autouse=True)
def hook_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TAKT_TEST_HOOK_SECRET", "restart-secret")


def produce(bus: Bus, influxd: Influxd, db: str, line: Line, t0: float, n: int, every: int) -> None:
    """Batches on MQTT and, as the collector would, the same events in InfluxDB."""
    events = [
        line.unit(t0 + i, station="S2", worker="W2", defect=bool(every) and i % every == 0)
        for i in range(n)
    ]
    size = 1 if every else 20  # bad seconds one by one (the alert's timing), good ones in bulk
    for start in range(0, n, size):
        bus.publish(line.batch(events[start : start + size]))
    influxd.write(db, lines_of(events))


async def test_restart_rebuilds_windows_and_keeps_the_alert(
    tmp_path: Path, mosquitto: Mosquitto, influxd: Influxd, receiver: HttpReceiver
) -> None:
    db = "alerts_restart"
    for statement in setup_statements(db):
        influxd.query(statement)
    # The line runs faster than the wall clock: event times up to an hour ahead are admitted.
    options: dict[str, Any] = {
        "mqtt_group": "restart-group",
        "mqtt_client_id": "alerts-restart",
        "max_future_s": 3600,
    }
    bus = Bus(mosquitto.port)
    line = Line(t0=now_aligned())

    app, _ = make_app(tmp_path, mosquitto.port, receiver.url, influxd.url, db, **options)
    async with serve(app):
        svc = service(app)
        await asyncio.to_thread(produce, bus, influxd, db, line, 0, 40, 2)
        await until(lambda: len(svc.store.find(status="open")) == 1, what="raised")
        [first] = svc.store.find()

    # While the engine is down the line goes on (still bad); the broker keeps the batches.
    await asyncio.to_thread(produce, bus, influxd, db, line, 40, 20, 2)

    app, _ = make_app(
        tmp_path, mosquitto.port, receiver.url, influxd.url, db, create_keys=False, **options
    )
    async with serve(app):
        svc = service(app)
        assert svc.rebuilt == 60, "windows rebuilt from every live point of the last hour"
        await until(lambda: svc.engine.counters.duplicate >= 20, what="queued batches redelivered")
        await asyncio.to_thread(produce, bus, influxd, db, line, 60, 30, 2)
        await until(lambda: svc.engine.counters.accepted >= 90)
        await asyncio.sleep(0.5)
        assert [a.id for a in svc.store.find()] == [first.id], "the same alert, not a second"
        # Recovery clears the alert raised before the restart.
        await asyncio.to_thread(produce, bus, influxd, db, line, 90, 600, 0)
        await until(lambda: svc.store.find(status="open") == [], what="cleared")
        kinds = [t["kind"] for t in svc.store.transitions(first.id)]
        assert kinds == ["raised", "cleared"]
    bus.close()


async def test_rebuild_reads_an_influxdb_with_authentication(
    influxd_factory: Callable[..., Influxd],
) -> None:
    server = influxd_factory(admin=("takt", "pw-for-tests"))
    db = "alerts_auth"
    for statement in setup_statements(db):
        server.query(statement)
    line = Line(t0=now_aligned())
    events: list[AnyEvent] = [
        *line.units(0, 5, defect_every=5),
        line.state(1, "down"),
        line.work(0, 5),
    ]
    server.write(db, lines_of(events))
    anonymous = InfluxSettings(url=server.url, database=db)
    with pytest.raises(InfluxAuthError):
        await fetch(anonymous, 60)
    found = await fetch(
        anonymous.model_copy(update={"username": "takt", "password": SecretStr("pw-for-tests")}),
        60,
    )
    assert sorted(obs.kind for obs, _ in found) == ["state", "unit", "unit", "unit", "unit",
                                                    "unit", "work"]  # fmt: skip
    units = [obs for obs, _ in found if obs.kind == "unit"]
    assert sum(o.defect for o in units) == 1 and sum(o.good for o in units) == 4
    assert {identity for _, identity in found} == {e.identity for e in events}
    assert units[0].ts == pytest.approx(events[0].ts.timestamp(), abs=0.001)


async def test_rebuilt_work_counts_pro_rata_like_the_live_one(influxd: Influxd) -> None:
    """Work points are stamped at the interval's start; the rebuild must give back its end.

    Before the shared inverse, a rebuilt interval had zero span and counted whole in a
    window that only overlaps part of it. The expected figures are worked out by hand.
    """
    db = "alerts_pro_rata"
    for statement in setup_statements(db):
        influxd.query(statement)
    line = Line(t0=now_aligned() - timedelta(minutes=10))
    events: list[AnyEvent] = [
        line.work(0, 60),  # effective 60
        *line.units(5, 50, every=2.0),  # 50 good units, t = 5 ... 103
        line.work(60, 120, down=20),  # effective 40
        line.work(120, 180, down=6),  # effective 54
    ]
    influxd.write(db, lines_of(events))
    found = await fetch(InfluxSettings(url=influxd.url, database=db), 60)
    assert {identity for _, identity in found} == {e.identity for e in events}

    rebuilt, live = Series(), Series()
    for obs, _ in found:
        rebuilt.add(obs)
    for event in events:
        one = obs_from_event(event)
        assert one is not None
        live.add(one)
    t0 = line.t0.timestamp()
    now, minutes = t0 + 150, 2.0  # window (t0 + 30, t0 + 150]: half of the first and last
    cycle = 2.0
    earned, effective, units = efficiency_inputs(rebuilt, now, minutes, cycle)
    # By hand: 0.5 x 60 + 40 + 0.5 x 54 effective seconds; units at t = 31, 33, ..., 103.
    in_window = [5 + 2 * i for i in range(50) if 30 < 5 + 2 * i <= 150]
    assert effective == pytest.approx(0.5 * 60 + 40 + 0.5 * 54)
    assert units == len(in_window) and earned == pytest.approx(len(in_window) * cycle)
    assert (earned, effective, units) == pytest.approx(
        efficiency_inputs(live, now, minutes, cycle)
    ), "rebuilt windows give the live figures"
    work = sorted((o for o, _ in found if o.kind == "work"), key=lambda o: o.start)
    spans = [x for o in work for x in (o.start - t0, o.ts - t0)]
    assert spans == pytest.approx([0, 60, 60, 120, 120, 180], abs=1e-6)
