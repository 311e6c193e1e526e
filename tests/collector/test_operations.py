"""Clean shutdown flushes and acknowledges; credentials work end to end; dead letters replay."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from collector.cli import app
from collector.dlq import DeadLetter, DeadLetterStore
from collector.testing import Scenario, publish
from takt_cli.localservices import Influxd, Mosquitto
from takt_wire import Batch, encode_batch
from takt_wire.topics import events_topic
from tests.collector.conftest import SettingsFactory, eventually, running
from tests.collector.helpers import rows, unit
from tests.collector.test_end_to_end import influx_totals


async def test_stop_flushes_the_open_batch_and_acknowledges_it(
    mosquitto: Mosquitto, influxd: Influxd, make_settings: SettingsFactory
) -> None:
    scenario = Scenario(agents=1, events_per_agent=300, batch_size=100)
    settings = make_settings(
        mosquitto.port, influxd.url, influx={"flush_interval_s": 60, "batch_size": 100_000}
    )
    async with running(settings) as collector:
        await asyncio.to_thread(publish, "127.0.0.1", mosquitto.port, scenario.all_batches())
        await eventually(lambda: collector._unacked == 3, what="three messages held")
        assert influx_totals(influxd, settings.influx.database)["units"] == 0
    assert influx_totals(influxd, settings.influx.database) == scenario.totals()
    async with running(settings) as again:  # same session: nothing left to redeliver
        await asyncio.sleep(1.0)
        assert again.metrics.messages._value.get() == 0


async def test_production_settings_with_broker_and_database_credentials(
    mosquitto_factory: Callable[..., Mosquitto],
    influxd_factory: Callable[..., Influxd],
    make_settings: SettingsFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    broker = mosquitto_factory(users={"collector": "m-pass", "agent": "a-pass"})
    server = influxd_factory(admin=("admin", "i-pass"))
    monkeypatch.setenv("TAKT_COLLECTOR_MQTT__PASSWORD", "m-pass")
    monkeypatch.setenv("TAKT_COLLECTOR_INFLUX__PASSWORD", "i-pass")
    settings = make_settings(
        broker.port,
        server.url,
        environment="production",
        mqtt={"username": "collector"},
        influx={"username": "admin"},
    )
    now = datetime.now(UTC)
    payload = encode_batch(
        Batch(agent="a1", boot="b1", sent_at=now, events=[unit(0, ts=now - timedelta(seconds=5))])
    )
    async with running(settings) as collector:
        # the agent account publishes; anonymous clients are refused by the broker
        import paho.mqtt.client as paho
        from paho.mqtt.enums import CallbackAPIVersion

        client = paho.Client(callback_api_version=CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5)
        client.username_pw_set("agent", "a-pass")
        client.connect("127.0.0.1", broker.port)
        client.loop_start()
        client.publish(events_topic("s1", "a1"), payload, qos=1).wait_for_publish(10)
        client.disconnect()
        client.loop_stop()
        await eventually(lambda: collector.written == 1)
    assert rows(server.query('SELECT "seq" FROM "units"', db=settings.influx.database))


async def test_dead_letters_replay_after_the_fix(
    mosquitto: Mosquitto, influxd: Influxd, make_settings: SettingsFactory, tmp_path: Path
) -> None:
    now = datetime.now(UTC)
    stations = {"validation": {"stations": ["s1/L1/st1"]}}
    settings = make_settings(mosquitto.port, influxd.url, **stations)
    events = [unit(0, ts=now - timedelta(seconds=5)), unit(1, station="st2", ts=now)]
    payload = encode_batch(Batch(agent="a1", boot="b1", sent_at=now, events=events))
    async with running(settings) as collector:
        await asyncio.to_thread(
            publish, "127.0.0.1", mosquitto.port, [(events_topic("s1", "a1"), payload)]
        )
        await eventually(lambda: collector.written == 1 and collector._unacked == 0)

    config = tmp_path / "collector.yaml"
    data = settings.model_dump(mode="json", exclude={"mqtt": {"password"}, "influx": {"password"}})
    data["validation"] = {"stations": ["s1/L1/st1", "s1/L1/st2"]}  # the fix: register st2
    config.write_text(yaml.safe_dump(data))
    runner = CliRunner()
    listed = runner.invoke(app, ["dlq", "list", "--config", str(config)])
    assert listed.exit_code == 0 and "unknown_station" in listed.output
    letter_id = listed.output.split("\t", 1)[0]
    shown = runner.invoke(app, ["dlq", "show", letter_id, "--config", str(config)])
    assert '"station":"st2"' in shown.output and "s1/L1/st2 is not registered" in shown.output

    fixed = make_settings(
        mosquitto.port, influxd.url, validation={"stations": ["s1/L1/st1", "s1/L1/st2"]}
    )
    async with running(fixed) as collector:
        replayed = await asyncio.to_thread(
            runner.invoke, app, ["dlq", "replay", "--config", str(config)]
        )
        assert replayed.exit_code == 0, replayed.output
        await eventually(lambda: collector.written == 1, what="replayed event written")
    seqs = rows(influxd.query('SELECT "seq" FROM "units"', db=settings.influx.database))
    assert sorted(r[1] for r in seqs) == [0, 1]
    assert DeadLetterStore(settings.dlq_path).list() == []


def test_a_replay_the_broker_refuses_is_not_marked_replayed(
    mosquitto_factory: Callable[..., Mosquitto], tmp_path: Path
) -> None:
    """With the production ACL the collector's account may not publish events: the broker
    answers 'not authorized', and the letter must stay to be replayed another way."""
    from collector.config import load_settings
    from collector.dlq import DeadLetter
    from collector.replay import replay
    from takt_cli.stack import ACL_FILE

    broker = mosquitto_factory(
        users={"takt-collector": "collector-pw-0123456789"}, extra_config=f"acl_file {ACL_FILE}\n"
    )
    settings = load_settings(
        None,
        environment="development",
        mqtt={"port": broker.port, "username": "takt-collector",
              "password": "collector-pw-0123456789"},
        dlq_path=str(tmp_path / "dlq.sqlite"),
    )  # fmt: skip
    now = datetime.now(UTC)
    payload = encode_batch(Batch(agent="a1", boot="b1", sent_at=now, events=[unit(0, ts=now)]))
    store = DeadLetterStore(settings.dlq_path)
    store.add([DeadLetter("message", "invalid", "test", events_topic("s1", "a1"), payload, {})])
    assert replay(store, settings, store.list()) == 0
    assert len(store.list()) == 1, "a refused publish must not mark the letter replayed"


def test_reading_dead_letters_needs_no_network_secrets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`dlq list|show` on a gateway-less laptop: a production file, no passwords set."""
    for name in ("TAKT_COLLECTOR_MQTT__PASSWORD", "TAKT_COLLECTOR_INFLUX__PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("TAKT_COLLECTOR_DLQ_PATH", raising=False)
    store_path = tmp_path / "letters.sqlite"
    store = DeadLetterStore(store_path)
    store.add([DeadLetter("message", "malformed_json", "not JSON", "takt/v1/s1/events/a1",
                          b"{oops", {})])  # fmt: skip
    store.close()
    config = tmp_path / "collector.yaml"
    config.write_text(
        "environment: production\n"
        "mqtt: {username: takt-collector}\n"
        "validation: {require_signature: true}\n"  # would fail a full load (no keys)
        f"dlq_path: {store_path}\n"
    )
    runner = CliRunner()
    assert runner.invoke(app, ["run", "--config", str(config)]).exit_code == 2  # full load fails

    listed = runner.invoke(app, ["dlq", "list", "--config", str(config)])
    assert listed.exit_code == 0, listed.output
    assert "malformed_json" in listed.output and "config error" not in listed.output
    letter_id = listed.output.split("\t", 1)[0]
    shown = runner.invoke(app, ["dlq", "show", letter_id, "--dlq", str(store_path)])
    assert shown.exit_code == 0 and "{oops" in shown.output

    monkeypatch.setenv("TAKT_COLLECTOR_DLQ_PATH", str(store_path))
    assert "malformed_json" in runner.invoke(app, ["dlq", "list"]).output

    missing = runner.invoke(app, ["dlq", "list", "--dlq", str(tmp_path / "none.sqlite")])
    assert missing.exit_code == 1 and "no dead-letter store" in missing.output
    assert not (tmp_path / "none.sqlite").exists(), "reading must not create the store"

    monkeypatch.delenv("TAKT_COLLECTOR_DLQ_PATH")
    bad = tmp_path / "bad.yaml"
    bad.write_text("dlq_path: [1, 2]\n")
    refused = runner.invoke(app, ["dlq", "list", "--config", str(bad)])
    assert refused.exit_code == 2, refused.output
    assert "bad.yaml:1" in refused.output and "dlq_path" in refused.output
