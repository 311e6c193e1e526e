"""OPC UA source against a real asyncua server laid out as docs/devices.md says.

Checks the ledger sum, an unknown NodeId (reported, skipped, the rest works),
a PLC counter reset, and an OPC UA server restart mid-shift.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from asyncua import ua
from asyncua.server.server import Server

from edge_agent.config import load_config
from edge_agent.runtime import Agent
from takt_cli.localservices import Mosquitto, free_port
from tests.agent.helpers import (
    CODES,
    T0,
    EventSubscriber,
    Step,
    assert_matches,
    gateway_config,
    make_script,
)

logging.getLogger("asyncua").setLevel(logging.ERROR)

VARIABLES = [
    ("GoodCount", ua.VariantType.UInt16, 0),
    ("OperatorBadge", ua.VariantType.String, ""),
    ("MachineState", ua.VariantType.Int32, 0),
    ("LastCycleTime", ua.VariantType.Double, 0.0),
    ("Heartbeat", ua.VariantType.UInt32, 0),
]


class Plc:
    def __init__(self, port: int, stations: list[str]) -> None:
        self.port = port
        self.stations = stations
        self.nodes: dict[str, Any] = {}
        self.types: dict[str, ua.VariantType] = {}
        self.server = Server()

    async def start(self) -> None:
        server = self.server
        await server.init()
        server.set_endpoint(f"opc.tcp://127.0.0.1:{self.port}/plc")
        idx = await server.register_namespace("urn:takt:sim:plc")
        line = await server.nodes.objects.add_object(
            ua.NodeId.from_string(f"ns={idx};s=Line"), "Line"
        )
        for s in self.stations:
            obj = await line.add_object(ua.NodeId.from_string(f"ns={idx};s={s}"), s)
            specs = VARIABLES + [(f"Rejects.{c}", ua.VariantType.UInt16, 0) for c in CODES]
            for name, vtype, initial in specs:
                node = await obj.add_variable(
                    ua.NodeId.from_string(f"ns={idx};s={s}.{name}"),
                    name,
                    ua.Variant(initial, vtype),
                )
                self.nodes[f"{s}.{name}"] = node
                self.types[f"{s}.{name}"] = vtype
                # initial values carry the device clock too (before the shift starts)
                await self.write(f"{s}.{name}", initial, T0 - timedelta(seconds=1))
        await server.start()

    async def write(self, key: str, value: Any, ts: datetime) -> None:
        stamp: Any = ts
        dv = ua.DataValue(
            ua.Variant(value, self.types[key]), SourceTimestamp=stamp, ServerTimestamp=stamp
        )
        await self.nodes[key].write_value(dv)

    async def play(self, steps: list[Step], last: dict[str, Any]) -> None:
        for i, step in enumerate(steps):
            s, ms = step.station, timedelta(milliseconds=1)
            ts = step.ts
            writes: list[tuple[str, Any]] = [("GoodCount", step.cnt), ("LastCycleTime", step.ct)]
            writes += [(f"Rejects.{c}", n) for c, n in step.rej.items()]
            writes += [("OperatorBadge", step.op), ("MachineState", step.st), ("Heartbeat", step.t)]
            for name, value in writes:
                key = f"{s}.{name}"
                if last.get(key) != value or name == "Heartbeat":
                    ts += ms
                    await self.write(key, value, ts)
                    last[key] = value
            if i % 3 == 2:
                await asyncio.sleep(0.003)


@pytest.mark.timeout(120)
async def test_opcua_events_add_up_despite_reset_restart_and_bad_node(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    stations = ["P1", "P2"]
    steps, ledger = make_script(stations, 300, seed=21)
    # A PLC restart mid-shift: its counter starts again from 0 (the units before still count).
    plc = Plc(free_port(), stations)
    await plc.start()
    endpoint = f"opc.tcp://127.0.0.1:{plc.port}/plc"
    path = gateway_config(
        tmp_path,
        mosquitto.port,
        [
            {
                "id": s,
                "line": "LU",
                "profile": "takt-sim-plc",
                "connection": {"type": "opcua", "endpoint": endpoint, "defect_codes": ["NOPE"]},
            }
            for s in stations
        ],
        agent_id="gw-opcua",
    )
    config, profiles = load_config(path)
    sub = EventSubscriber(mosquitto.port, client_id="sub-opcua")
    agent = Agent(config, profiles)
    stop = asyncio.Event()
    task = asyncio.create_task(agent.run(stop))
    source: Any = agent.sources[0]
    try:
        await asyncio.wait_for(source.connected.wait(), 15)
        assert agent.metrics.bad_nodes.labels(source.name)._value.get() == 2  # P1 and P2 NOPE
        last: dict[str, Any] = {}
        half = len(steps) // 2
        await plc.play(steps[:half], last)
        await asyncio.sleep(0.5)
        await plc.server.stop()  # server restart; nothing changes on the line meanwhile
        await asyncio.sleep(1.0)
        plc.server = Server()
        plc.nodes.clear()
        await plc.start()
        for key, value in last.items():  # the PLC kept its values (retentive memory)
            await plc.write(key, value, steps[half - 1].ts + timedelta(milliseconds=50))
        await asyncio.wait_for(source.connected.wait(), 30)
        # PLC restart of P1's counter: it counts again from 0
        offset = {s.station: 0 for s in steps}
        reset_at = next(s for s in steps[half:] if s.station == "P1").t
        base = next(s.cnt for s in reversed(steps[:half]) if s.station == "P1")
        for step in steps[half:]:
            if step.station == "P1" and step.t >= reset_at:
                offset["P1"] = base
                step.cnt = (step.cnt - base) % 65536
        await plc.play(steps[half:], last)
        got = await asyncio.to_thread(sub.wait_for, ledger, 30.0, 0.01)
        assert_matches(got, ledger, slack_s=0.01)
        resets = agent.metrics.counter_events.labels("P1", "reset")._value.get()
        assert resets >= 1
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
        sub.close()
        await plc.server.stop()
