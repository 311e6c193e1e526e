"""Per-event defects (``defects: kind: pulse``) from four devices the agent has never seen.

Each device reports one defective part per record, message, write or coil edge,
with its code, and often several within one second (a burst: one ``os.write``
of many records, one MQTT message with a list of codes, several OPC UA writes
inside one publishing interval). The devices are written from their own point
of view (their own record writer and checksum, their own payloads, an asyncua
server, a hand-written Modbus TCP device) and configured by profile alone. The
agent's events, per worker, must equal each device's ledger exactly: units and
defects by code; and so must the HR API's figures once those events are stored.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
import yaml
from asyncua import ua
from asyncua.server.server import Server
from paho.mqtt.enums import CallbackAPIVersion

from edge_agent.config import load_config
from edge_agent.runtime import Agent
from takt_cli.localservices import Mosquitto, free_port
from tests.agent.helpers import T0, EventSubscriber, Ledger, assert_matches, gateway_config
from tests.agent.modbus_device import ModbusDevice, Unit
from tests.agent.test_serial_flow import PtyDevice
from tests.devices.pulse_script import Ev, ledger_of, pulse_script
from tests.hrapi import HrApi

logging.getLogger("asyncua").setLevel(logging.ERROR)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


def write_profiles(folder: Path, *profiles: dict[str, Any]) -> str:
    folder.mkdir(exist_ok=True)
    for p in profiles:
        (folder / f"{p['model']}.yaml").write_text(yaml.safe_dump(p))
    return str(folder)


@asynccontextmanager
async def running_agent(path: Path) -> AsyncIterator[Agent]:
    config, profiles = load_config(path)
    agent = Agent(config, profiles)
    stop = asyncio.Event()
    task = asyncio.create_task(agent.run(stop))
    try:
        yield agent
        assert not task.done()
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


async def expect(sub: EventSubscriber, want: Ledger, hr: HrApi) -> None:
    """The agent's events, then the HR API's figures after storing them, equal the ledger."""
    want = Ledger(good=want.good, defects=want.defects)
    assert sum(want.defects.values()) > 20 and sum(want.good.values()) > 20
    got = await asyncio.to_thread(sub.wait_for, want, 30.0, 10**9)
    assert_matches(Ledger(good=got.good, defects=got.defects), want)
    await hr.check(sub, want)


# -- serial: a per-part box, line records `T;TS;F*` + '#' + sum mod 256 -----------


def box_record(ev: Ev) -> list[bytes]:
    ts = str(ev.epoch_ms)
    bodies = {
        "login": [f"I;{ts};{ev.badge}"],
        "logout": [f"O;{ts}"],
        "good": [f"G;{ts}"] * ev.good,  # one record per good part
        "defect": [f"D;{ts};{code}" for code in ev.codes],  # one per defective part
        "beat": [f"H;{ts}"],
    }[ev.kind]
    out = []
    for body in bodies:
        total = sum(body.encode()) % 256
        out.append(f"{body}#{total:02X}\r\n".encode())
    return out


SERIAL_PROFILE = {
    "model": "pulse-box",
    "protocol": "serial",
    "time_source": "device",
    "signals": {
        "good": {"at": "GOOD", "kind": "pulse"},
        "defects": {"kind": "pulse", "code": "CODE"},
        "operator": {"at": "BADGE", "action_at": "ACT"},
        "time": {"at": "TS", "format": "epoch_ms"},
    },
    "serial": {
        "framing": {
            "mode": "line",
            "checksum": "sum8_hex",
            "checksum_separator": "#",
            "field_separator": ";",
        },
        "record": {
            "layout": "positional",
            "fields": ["TYPE", "TS"],
            "type_field": "TYPE",
            "types": {
                "I": {"fields": ["BADGE"], "values": {"ACT": "login"}},
                "O": {"values": {"ACT": "logout"}},
                "G": {"values": {"GOOD": "1"}},
                "D": {"fields": ["CODE"]},
                "H": {},
            },
        },
    },
}


async def test_serial_per_part_records(mosquitto: Mosquitto, tmp_path: Path, hr: HrApi) -> None:
    script = pulse_script(120, seed=21)
    device = PtyDevice(tmp_path / "serial-P1")
    path = gateway_config(
        tmp_path,
        mosquitto.port,
        [
            {
                "id": "P1",
                "line": "LP",
                "profile": "pulse-box",
                "connection": {"type": "serial", "port": str(device.link)},
            }
        ],
        agent_id="gw-pulse-serial",
        profiles_dir=write_profiles(tmp_path / "profiles", SERIAL_PROFILE),
    )
    sub = EventSubscriber(mosquitto.port, client_id="sub-pulse-serial")
    try:
        async with running_agent(path) as agent:
            await asyncio.wait_for(agent.sources[0].connected.wait(), 10)  # type: ignore[attr-defined]
            for second in script:
                device.write(b"".join(r for ev in second for r in box_record(ev)))  # a burst
                await asyncio.sleep(0.01)
            await expect(sub, ledger_of(script), hr)
    finally:
        sub.close()
        device.unplug()


# -- MQTT: one message per event; a burst of defects is a list of codes -------------


MQTT_PROFILE = {
    "model": "pulse-hmi",
    "protocol": "mqtt",
    "time_source": "device",
    "signals": {
        "good": {"at": "parts", "kind": "pulse"},
        "defects": {"kind": "pulse", "code": "rejects"},
        "operator": {"at": "user", "action_at": "event"},
        "time": {"at": "ts", "format": "epoch_ms"},
    },
    "mqtt": {"topics": ["hmi/{line}/{station}/events"]},
}


def hmi_message(ev: Ev) -> dict[str, Any]:
    msg: dict[str, Any] = {"ts": ev.epoch_ms}
    if ev.kind in ("login", "logout"):
        msg |= {"event": ev.kind, "user": ev.badge}
    elif ev.kind == "good":
        msg["parts"] = ev.good
    elif ev.kind == "defect":
        msg["rejects"] = list(ev.codes)
    return msg


async def test_mqtt_defect_messages(mosquitto: Mosquitto, tmp_path: Path, hr: HrApi) -> None:
    script = pulse_script(150, seed=22)
    path = gateway_config(
        tmp_path,
        mosquitto.port,
        [
            {
                "id": "H1",
                "line": "LP",
                "profile": "pulse-hmi",
                "connection": {"type": "mqtt", "host": "127.0.0.1", "port": mosquitto.port},
            }
        ],
        agent_id="gw-pulse-mqtt",
        profiles_dir=write_profiles(tmp_path / "profiles", MQTT_PROFILE),
    )
    sub = EventSubscriber(mosquitto.port, client_id="sub-pulse-mqtt")
    hmi = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="pulse-hmi", protocol=mqtt.MQTTv311)
    hmi.connect("127.0.0.1", mosquitto.port)
    hmi.loop_start()
    try:
        async with running_agent(path) as agent:
            await asyncio.wait_for(agent.sources[0].connected.wait(), 10)  # type: ignore[attr-defined]
            await asyncio.sleep(0.5)  # the agent's subscription is in place
            info = None
            for second in script:
                for ev in second:
                    payload = json.dumps(hmi_message(ev))
                    info = hmi.publish("hmi/LP/H1/events", payload, qos=1)
            assert info is not None
            await asyncio.to_thread(info.wait_for_publish, 10)
            await expect(sub, ledger_of(script), hr)
    finally:
        hmi.disconnect()
        hmi.loop_stop()
        sub.close()


# -- OPC UA: the PLC writes the code variable once per defective part ---------------


OPCUA_PROFILE = {
    "model": "pulse-plc",
    "protocol": "opcua",
    "time_source": "device",
    "signals": {
        "good": {"at": "Good", "bits": 32},
        "defects": {"kind": "pulse", "code": "RejectCode"},
        "operator": {"at": "Badge"},
        "time": {"format": "source_timestamp"},
    },
    "opcua": {"namespace_uri": "urn:pulse:plc", "extra_nodes": ["Tick"]},
}


class PulsePlc:
    """A PLC that writes RejectCode per defective part (a repeated code is a new write)."""

    VARS = (
        ("Good", ua.VariantType.UInt32, 0),
        ("RejectCode", ua.VariantType.String, "E99"),  # a stale code in force: no defect
        ("Badge", ua.VariantType.String, ""),
        ("Tick", ua.VariantType.UInt32, 0),
        ("Rejected", ua.VariantType.UInt32, 0),  # parts in this reject write (second PLC)
    )

    def __init__(self, port: int, station: str, counted: str | None = None) -> None:
        """``counted``: None, one RejectCode write per part; "code_first" or "count_first":
        per run of equal codes, RejectCode and Rejected (the run's length) in that order."""
        self.port, self.station, self.counted = port, station, counted
        self.server = Server()
        self.nodes: dict[str, Any] = {}
        self.types: dict[str, ua.VariantType] = {}
        self.good = 0
        self.ms = -1000

    async def start(self) -> None:
        await self.server.init()
        self.server.set_endpoint(f"opc.tcp://127.0.0.1:{self.port}/pulse")
        idx = await self.server.register_namespace("urn:pulse:plc")
        obj = await self.server.nodes.objects.add_object(
            ua.NodeId.from_string(f"ns={idx};s={self.station}"), self.station
        )
        for name, vtype, initial in self.VARS:
            self.nodes[name] = await obj.add_variable(
                ua.NodeId.from_string(f"ns={idx};s={self.station}.{name}"),
                name,
                ua.Variant(initial, vtype),
            )
            self.types[name] = vtype
            await self.write(name, initial, -1000)
        await self.server.start()

    async def write(self, name: str, value: Any, ms: int) -> None:
        self.ms = max(ms, self.ms + 1)  # every write has its own, increasing timestamp
        ts: Any = T0 + timedelta(milliseconds=self.ms)
        dv = ua.DataValue(ua.Variant(value, self.types[name]), SourceTimestamp=ts)
        await self.nodes[name].write_value(dv)

    async def play(self, ev: Ev) -> None:
        if ev.kind == "login":
            await self.write("Badge", ev.badge, ev.ms)
        elif ev.kind == "logout":
            await self.write("Badge", "", ev.ms)
        elif ev.kind == "good":
            self.good += ev.good
            await self.write("Good", self.good, ev.ms)
        elif ev.kind == "defect" and self.counted is None:
            for code in ev.codes:  # a burst: one write per part, same publish interval
                await self.write("RejectCode", code, ev.ms)
        elif ev.kind == "defect":
            for code, run in itertools.groupby(ev.codes):
                writes = [("RejectCode", code), ("Rejected", len(list(run)))]
                for name, value in writes if self.counted == "code_first" else writes[::-1]:
                    await self.write(name, value, ev.ms)
        else:
            await self.write("Tick", ev.ms // 1000, ev.ms)


COUNTED_PROFILE = OPCUA_PROFILE | {
    "model": "pulse-plc-counted",
    "signals": OPCUA_PROFILE["signals"]  # type: ignore[operator]
    | {"defects": {"kind": "pulse", "at": "Rejected", "code": "RejectCode"}},
}


@pytest.mark.parametrize("counted", [None, "code_first", "count_first"])
async def test_opcua_reject_code_writes(
    mosquitto: Mosquitto, tmp_path: Path, counted: str | None, hr: HrApi
) -> None:
    """One write per part, or the code and the count written apart (joined per station)."""
    script = pulse_script(120, seed=23)
    plc = PulsePlc(free_port(), "U1", counted)
    profile = OPCUA_PROFILE if counted is None else COUNTED_PROFILE
    await plc.start()
    endpoint = f"opc.tcp://127.0.0.1:{plc.port}/pulse"
    path = gateway_config(
        tmp_path,
        mosquitto.port,
        [
            {
                "id": "U1",
                "line": "LP",
                "profile": profile["model"],
                "connection": {"type": "opcua", "endpoint": endpoint},
            }
        ],
        agent_id=f"gw-pulse-opcua-{counted}",
        profiles_dir=write_profiles(tmp_path / "profiles", profile),
    )
    sub = EventSubscriber(mosquitto.port, client_id=f"sub-pulse-opcua-{counted}")
    try:
        async with running_agent(path) as agent:
            source: Any = agent.sources[0]
            await asyncio.wait_for(source.connected.wait(), 15)
            await asyncio.sleep(0.5)  # the initial values (not events) are through
            for second in script:
                for ev in second:
                    await plc.play(ev)
                await asyncio.sleep(0.005)
            await expect(sub, ledger_of(script), hr)
    finally:
        sub.close()
        await plc.server.stop()


# -- Modbus TCP: a "defect" coil that rises once per defective part, code register ---


MODBUS_PROFILE = {
    "model": "pulse-counter",
    "protocol": "modbus",
    "time_source": "gateway",
    "signals": {
        "good": {"at": "GOOD", "bits": 32},
        "defects": {"kind": "pulse", "at": "REJECT", "code": "CODE"},
        "operator": {"at": "BADGE", "nobody": ["0"]},
    },
    "modbus": {
        "registers": {
            "GOOD": {"address": 0, "type": "uint32"},
            "CODE": {"address": 2},
            "BADGE": {"address": 3},
            "REJECT": {"table": "coil", "address": 0, "type": "bool", "event": "rising"},
        }
    },
}
NUMERIC = {"E07": 7, "E12": 12, "E31": 31}
REQUESTS = len(MODBUS_PROFILE["modbus"]["registers"])  # type: ignore[index]


async def test_modbus_reject_coil_edges(mosquitto: Mosquitto, tmp_path: Path, hr: HrApi) -> None:
    script = pulse_script(60, seed=24)
    device = ModbusDevice({1: Unit()})
    unit = device.units[1]
    server = await device.serve_tcp()
    port = server.sockets[0].getsockname()[1]
    roster = {f"B{n}": f"w{n}" for n in range(1, 5)}
    conn = {
        "type": "modbus",
        "transport": "tcp",
        "host": "127.0.0.1",
        "port": port,
        "unit": 1,
        "poll_interval_s": 0.01,
    }
    path = gateway_config(
        tmp_path,
        mosquitto.port,
        [{"id": "K1", "line": "LP", "profile": "pulse-counter", "connection": conn}],
        agent_id="gw-pulse-modbus",
        profiles_dir=write_profiles(tmp_path / "profiles", MODBUS_PROFILE),
    )
    (tmp_path / "roster.yaml").write_text(
        yaml.safe_dump({"badges": {b[1:]: w for b, w in roster.items()}})
    )
    sub = EventSubscriber(mosquitto.port, client_id="sub-pulse-modbus")

    async def settled() -> None:
        await device.polled(1, 2 * REQUESTS)  # one full poll saw the change

    good = 0
    try:
        async with running_agent(path) as agent:
            await asyncio.wait_for(agent.sources[0].connected.wait(), 10)  # type: ignore[attr-defined]
            await settled()
            for second in script:
                for ev in second:
                    if ev.kind in ("login", "logout"):
                        unit.holding[3] = int(ev.badge[1:]) if ev.badge else 0
                        await settled()
                    elif ev.kind == "good":
                        good += ev.good
                        unit.set32(0, good)
                        await settled()
                    elif ev.kind == "defect":
                        for code in ev.codes:  # the coil rises once per part
                            unit.holding[2] = NUMERIC[code]
                            await settled()
                            unit.coils[0] = True
                            await settled()
                            unit.coils[0] = False
                            await settled()
            want = ledger_of(script)
            numeric = Ledger(good=want.good)
            for (worker, code), n in want.defects.items():
                numeric.defects[(worker, str(NUMERIC[code]))] += n
            await expect(sub, numeric, hr)
    finally:
        sub.close()
        server.close()
