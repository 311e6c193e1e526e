"""Real clients read every simulated device; totals rebuilt from the signals match the ledger.

One run of ``test_small.yaml`` (20 simulated minutes, ~6 s wall) with an asyncua
subscription, a paho subscriber and pyserial on the pty, all attached *before*
the clock starts. The scenario holds every fault kind, and each test below looks
at one of them in the captured streams.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
import pytest_asyncio
import yaml
from asyncua import ua
from asyncua.client.client import Client
from paho.mqtt.enums import CallbackAPIVersion

from simulators import ShopFloor, load_scenario
from simulators.frames import epoch_ms
from takt_cli.localservices import Mosquitto
from tests.simulators.readers import (
    Replayer,
    SerialReader,
    Totals,
    ledger_by_worker_station,
)

SCENARIO = Path(__file__).resolve().parents[2] / "simulators" / "scenarios" / "test_small.yaml"
NAMES = ["GoodCount", "Rejects.E01", "Rejects.E02", "RejectCount", "OperatorBadge", "MachineState"]


@dataclass
class Capture:
    ledger: dict[str, Any]
    roster: dict[str, str]
    start_ms: int
    end_ms: int
    opcua: list[tuple[int, str, Any]] = field(default_factory=list)
    mqtt_counter: list[bytes] = field(default_factory=list)
    mqtt_state: list[bytes] = field(default_factory=list)
    serial: SerialReader | None = None
    stats: dict[str, Any] = field(default_factory=dict)


class _OpcHandler:
    def __init__(self, names: dict[ua.NodeId, str], out: list[tuple[int, str, Any]], end: int):
        self.names, self.out, self.end = names, out, end
        self.finished = asyncio.Event()

    def datachange_notification(self, node: Any, val: Any, data: Any) -> None:
        ts = data.monitored_item.Value.SourceTimestamp
        ms = round(ts.timestamp() * 1000)
        name = self.names[node.nodeid]
        self.out.append((ms, name, val))
        if name == "Heartbeat" and ms >= self.end:
            self.finished.set()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def capture(tmp_path_factory: pytest.TempPathFactory, mosquitto: Mosquitto) -> Capture:
    scenario = load_scenario(SCENARIO)
    workdir = tmp_path_factory.mktemp("sim")
    start = epoch_ms(scenario.start, 0)
    end = start + round(scenario.duration * 1000)
    floor = ShopFloor(
        scenario, workdir, mqtt_host="127.0.0.1", mqtt_port=mosquitto.port, start_paused=True
    )
    async with floor:
        roster = yaml.safe_load(floor.roster_path.read_text())["badges"]
        cap = Capture(floor.ledger, roster, start, end)
        # MQTT: a plain paho subscriber on the gateway's own topics.
        got_end = threading.Event()

        def on_message(client: Any, userdata: Any, msg: mqtt.MQTTMessage) -> None:
            if msg.topic.endswith("/counter"):
                cap.mqtt_counter.append(bytes(msg.payload))
                if json.loads(msg.payload)["ts"] >= end:
                    got_end.set()
            elif msg.topic.endswith("/state"):
                cap.mqtt_state.append(bytes(msg.payload))

        sub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="sim-test-sub")
        sub.on_message = on_message
        sub.connect("127.0.0.1", mosquitto.port)
        sub.subscribe(f"{floor.endpoints['S2'].topic_prefix}/#", qos=1)
        sub.loop_start()
        # Serial: pyserial on the stable path written to the run folder.
        path = Path((workdir / "serial-S3.path").read_text().strip())
        cap.serial = SerialReader(path, end)
        cap.serial.start()
        # OPC UA: a subscription with room for every change between two publishes.
        plc = floor.endpoints["S1"]
        assert plc.url and plc.namespace
        client = Client(plc.url)
        async with client:
            ns = await client.get_namespace_index(plc.namespace)
            ids = [*NAMES, "Heartbeat"]
            nodes = {ua.NodeId.from_string(f"ns={ns};s=S1.{n}"): n for n in ids}
            handler = _OpcHandler(nodes, cap.opcua, end)
            subscription = await client.create_subscription(20, handler)
            await subscription.subscribe_data_change(
                [client.get_node(n) for n in nodes], queuesize=10_000
            )
            floor.start_clock()
            async with asyncio.timeout(120):
                await floor.wait_done()
                await handler.finished.wait()
                assert await asyncio.to_thread(got_end.wait, 30), "last MQTT message missing"
                assert await asyncio.to_thread(cap.serial.done.wait, 30), "last frame missing"
        cap.serial.stop.set()
        sub.loop_stop()
        sub.disconnect()
        cap.stats = floor.stats()
        assert json.loads((workdir / "ledger.json").read_text()) == floor.ledger
    return cap


def _replay_opcua(cap: Capture) -> Replayer:
    rep = Replayer(cap.start_ms)
    for ts, name, value in sorted(cap.opcua, key=lambda r: r[0]):
        if name == "GoodCount":
            rep.feed(ts, good=value)
        elif name.startswith("Rejects."):
            rep.feed(ts, rejects={name.split(".", 1)[1]: value})
        elif name == "OperatorBadge":
            rep.feed(ts, badge=value)
        elif name == "MachineState":
            rep.feed(ts, state=value)
        else:
            rep.feed(ts)
    return rep


def _replay_mqtt(cap: Capture) -> Replayer:
    rep = Replayer(cap.start_ms)
    for payload in cap.mqtt_counter:
        m = json.loads(payload)
        rep.feed(m["ts"], good=m["cnt"], rejects=m["rej"], badge=m["op"], state=m["st"])
    return rep


def _replay_serial(cap: Capture) -> Replayer:
    assert cap.serial is not None
    rep = Replayer(cap.start_ms)
    for f in cap.serial.frames:
        rejects = dict(kv.split(":") for kv in f["R"].split(",")) if f["R"] else {}
        rep.feed(
            int(f["T"]),
            good=int(f["G"]),
            rejects={k: int(v) for k, v in rejects.items()},
            badge=f["B"],
            state=int(f["S"]),
        )
    return rep


def _compare(cap: Capture, station: str, rep: Replayer, time_tol_ms: int) -> None:
    truth = {k: v for k, v in ledger_by_worker_station(cap.ledger).items() if k[1] == station}
    seen: dict[tuple[str, str], Totals] = {}
    for badge, tot in rep.by_badge.items():
        worker = cap.roster.get(badge, "") if badge else ""
        if tot.good or any(tot.defects.values()) or tot.work_ms:
            seen[(worker, station)] = tot
    assert set(seen) == set(truth)
    for key, want in truth.items():
        got = seen[key]
        assert got.good == want.good, key
        assert {c: n for c, n in got.defects.items() if n} == dict(want.defects), key
        assert abs(got.work_ms - want.work_ms) <= time_tol_ms, key
        assert abs(got.effective_ms - want.effective_ms) <= time_tol_ms, key


def test_opcua_signals_rebuild_the_ledger(capture: Capture) -> None:
    rep = _replay_opcua(capture)
    # badge is written before state at a change: at most 1 ms apart (docs/devices.md)
    _compare(capture, "S1", rep, time_tol_ms=5)


def test_mqtt_signals_rebuild_the_ledger(capture: Capture) -> None:
    _compare(capture, "S2", _replay_mqtt(capture), time_tol_ms=0)


def test_serial_signals_rebuild_the_ledger(capture: Capture) -> None:
    # a corrupt frame can hide a change until the next heartbeat frame (1 simulated s)
    _compare(capture, "S3", _replay_serial(capture), time_tol_ms=2000)


def test_reset_and_rollover_are_visible(capture: Capture) -> None:
    stations = {s["station"]: s for s in capture.ledger["stations"]}
    for station, rep in (("S1", _replay_opcua(capture)), ("S2", _replay_mqtt(capture))):
        assert stations[station]["restarts"] == 1
        assert stations[station]["rollovers"] >= 1
        assert "reset" in rep.events, station
        assert "rollover" in rep.events, station
        assert rep.good == stations[station]["final_counters"]["good"]


def test_fault_downtime_is_shown_and_excused(capture: Capture) -> None:
    five, seven = capture.start_ms + 300_000, capture.start_ms + 420_000
    states = [(ts, v) for ts, n, v in capture.opcua if n == "MachineState"]
    assert (five, 2) in states and (seven, 1) in states
    w1 = ledger_by_worker_station(capture.ledger)[("W1", "S1")]
    assert w1.work_ms - w1.effective_ms == 120_000
    rows = [r for r in capture.ledger["rows"] if r["worker"] == "W1"]
    assert sum(r["down_s"].get("fault", 0) for r in rows) == 120.0


def test_operator_change_mid_shift(capture: Capture) -> None:
    ten = capture.start_ms + 600_000
    badges = [(ts, v) for ts, n, v in capture.opcua if n == "OperatorBadge"]
    assert (ten, "B2") in badges
    assert [v for _, v in sorted(badges)][-3:] == ["", "A1", "B2"]
    truth = ledger_by_worker_station(capture.ledger)
    assert truth[("W1", "S1")].work_ms == truth[("W2", "S1")].work_ms == 600_000


def test_mqtt_duplicates_happen_and_are_harmless(capture: Capture) -> None:
    dups = sum(a == b for a, b in zip(capture.mqtt_counter, capture.mqtt_counter[1:], strict=False))
    assert dups >= 1
    assert capture.stats["mqtt_duplicates"] >= dups
    retained = [json.loads(p) for p in capture.mqtt_state]
    assert retained[-1]["op"] == "" and retained[-1]["st"] == 0


def test_corrupt_frames_and_unplug(capture: Capture) -> None:
    assert capture.serial is not None
    assert capture.serial.bad >= 1
    assert capture.stats["serial_S3"]["corrupted"] >= capture.serial.bad
    assert capture.serial.disconnects >= 1
    ts = [int(f["T"]) for f in capture.serial.frames]
    gap = max(b - a for a, b in itertools.pairwise(ts))
    assert gap >= 30_000  # the 30 s cable pull, in simulated time


def test_unattributed_units(capture: Capture) -> None:
    rep = _replay_serial(capture)
    truth = [r for r in capture.ledger["unattributed"] if r["station"] == "S3"]
    assert sum(r["good"] for r in truth) == rep.by_badge[""].good > 0


def test_device_timestamps_increase_per_station(capture: Capture) -> None:
    stamps = defaultdict(list)
    for ts, name, _ in capture.opcua:
        stamps[name].append(ts)
    for name, values in stamps.items():
        assert values == sorted(values), name
