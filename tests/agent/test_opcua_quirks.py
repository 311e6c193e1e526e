"""OPC UA as real PLCs do it, against the real agent and broker.

The PLC below is written from its own point of view, not the agent's:

- its namespace URI carries its host name (different on every machine), so
  the profile names it by pattern;
- it writes the reject reason and the reject counter in separate writes, in
  one order on Q1 (reason first) and the other on Q2 (counter first);
- it historizes its variables, so changes the agent missed while the network
  was cut (a logout and the next worker's units) are read back on reconnect;
- station Q3's profile names a namespace the server does not have, and Q4's
  good counter is a text variable: both are those stations' errors, counted,
  and the rest of the agent runs on.

Units and defects by code per worker must equal the PLC's ledger exactly.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from asyncua import ua
from asyncua.server.server import Server

from edge_agent.config import load_config
from edge_agent.runtime import Agent
from takt_cli.localservices import Mosquitto, free_port
from tests.agent.helpers import (
    T0,
    EventSubscriber,
    Step,
    assert_matches,
    gateway_config,
    make_script,
    matches,
)
from tests.hrapi import HrApi

logging.getLogger("asyncua").setLevel(logging.ERROR)

PROFILES: dict[str, dict[str, Any]] = {
    "quirk-plc": {
        "model": "quirk-plc",
        "protocol": "opcua",
        "time_source": "device",
        "signals": {
            "good": {"at": "Good", "bits": 32},
            "defects": {
                "mode": "total_and_last_code",
                "at": "Rejects",
                "last_code": "RejectReason",
                "bits": 32,
            },
            "operator": {"at": "Badge"},
            "state": {
                "at": "Mode",
                "map": {
                    "0": "idle",
                    "1": "running",
                    "2": "down:fault",
                    "3": "down:starved",
                    "4": "down:maintenance",
                    "5": "down:blocked",
                },
            },
            "time": {"format": "source_timestamp"},
        },
        "opcua": {
            "namespace_uri_pattern": "urn:*:quirkplc",
            "node": "{station}/{name}",
            "station_object": "{station}",
            "extra_nodes": ["Tick"],
        },
    },
}
PROFILES["wrong-ns-plc"] = PROFILES["quirk-plc"] | {
    "model": "wrong-ns-plc",
    "opcua": PROFILES["quirk-plc"]["opcua"] | {"namespace_uri_pattern": "urn:*:otherplc"},
}

VARS = [
    ("Good", ua.VariantType.UInt32, 0),
    ("Rejects", ua.VariantType.UInt32, 0),
    ("RejectReason", ua.VariantType.String, ""),
    ("Badge", ua.VariantType.String, ""),
    ("Mode", ua.VariantType.Int16, 0),
    ("Tick", ua.VariantType.UInt32, 0),
]


class QuirkPlc:
    def __init__(self, port: int, stations: list[str]) -> None:
        self.port = port
        self.stations = stations
        self.uri = f"urn:{socket.gethostname()}-{port}:quirkplc"
        self.server = Server()
        self.nodes: dict[str, Any] = {}
        self.types: dict[str, ua.VariantType] = {}
        self.last: dict[str, Any] = {}
        self.rej: dict[str, dict[str, int]] = {}

    async def start(self) -> None:
        await self.server.init()
        self.server.set_endpoint(f"opc.tcp://127.0.0.1:{self.port}/quirk")
        await self.server.register_namespace("urn:takt:unrelated")
        idx = await self.server.register_namespace(self.uri)
        for s in self.stations:
            obj = await self.server.nodes.objects.add_object(
                ua.NodeId.from_string(f"ns={idx};s={s}"), s
            )
            for name, vtype, initial in VARS:
                if s == "Q4" and name == "Good":
                    vtype, initial = ua.VariantType.String, "n/a"  # wrong type
                node = await obj.add_variable(
                    ua.NodeId.from_string(f"ns={idx};s={s}/{name}"),
                    name,
                    ua.Variant(initial, vtype),
                )
                self.nodes[f"{s}/{name}"] = node
                self.types[f"{s}/{name}"] = vtype
                # the PLC's clock: its first value carries it, then history starts
                await self.write(f"{s}/{name}", initial, T0 - timedelta(seconds=1))
                await self.server.historize_node_data_change(node, period=timedelta(days=3650))
        await self.server.start()

    async def write(self, key: str, value: Any, ts: Any) -> None:
        dv = ua.DataValue(
            ua.Variant(value, self.types[key]), SourceTimestamp=ts, ServerTimestamp=ts
        )
        await self.nodes[key].write_value(dv)
        self.last[key] = value

    async def play(self, steps: list[Step]) -> None:
        for i, step in enumerate(steps):
            s, ts = step.station, step.ts
            rejects = sum(step.rej.values())
            writes: list[tuple[str, Any]] = [("Good", step.cnt)]
            if rejects != self.last.get(f"{s}/Rejects"):
                before = self.rej.get(s, {})
                code = next(c for c in step.rej if step.rej[c] > before.get(c, 0))
                pair = [("RejectReason", code), ("Rejects", rejects)]
                writes += pair if s == "Q1" else pair[::-1]  # Q2: counter first
            self.rej[s] = dict(step.rej)
            writes += [("Badge", step.op), ("Mode", step.st), ("Tick", step.t)]
            for n, (name, value) in enumerate(writes, 1):
                key = f"{s}/{name}"
                if self.last.get(key) != value or name == "Tick":
                    await self.write(key, value, ts + timedelta(milliseconds=n))
            if i % 4 == 3:
                await asyncio.sleep(0.004)

    async def play_text_counter(self, station: str, seconds: int) -> None:
        """A station whose counter variable holds text ('12 pcs'): unreadable by the profile."""
        for t in range(seconds):
            ts = T0 + timedelta(seconds=t)
            await self.write(f"{station}/Good", f"{t} pcs", ts)
            await self.write(f"{station}/Tick", t, ts + timedelta(milliseconds=1))


class CutProxy:
    """A TCP link that can be cut (open connections reset, new ones refused)."""

    def __init__(self, target: int) -> None:
        self.target = target
        self.up = True
        self.writers: list[asyncio.StreamWriter] = []
        self.port = 0

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self.up:
            writer.close()
            return
        up_r, up_w = await asyncio.open_connection("127.0.0.1", self.target)
        self.writers += [writer, up_w]

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError, ConnectionError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.close()

        await asyncio.gather(pipe(reader, up_w), pipe(up_r, writer))

    def cut(self) -> None:
        self.up = False
        for w in self.writers:
            w.transport.abort()
        self.writers.clear()


@pytest.mark.integration
@pytest.mark.timeout(180)
@pytest.mark.parametrize("history", ["auto", "off"])
async def test_quirky_plc_adds_up_through_an_outage(
    mosquitto: Mosquitto, tmp_path: Path, history: str, hr: HrApi
) -> None:
    steps, ledger = make_script(["Q1", "Q2"], 300, seed=4)
    plc = QuirkPlc(free_port(), ["Q1", "Q2", "Q3", "Q4"])
    await plc.start()
    proxy = CutProxy(plc.port)
    await proxy.start()
    profiles_dir = tmp_path / "profiles"
    profiles_dir.mkdir()
    for model, data in PROFILES.items():
        (profiles_dir / f"{model}.yaml").write_text(yaml.safe_dump(data))
    endpoint = f"opc.tcp://127.0.0.1:{proxy.port}/quirk"
    conn = {"type": "opcua", "endpoint": endpoint, "history": history}
    stations = [
        {"id": s, "line": "LQ", "profile": "quirk-plc", "connection": conn}
        for s in ("Q1", "Q2", "Q4")
    ] + [{"id": "Q3", "line": "LQ", "profile": "wrong-ns-plc", "connection": conn}]
    path = gateway_config(
        tmp_path,
        mosquitto.port,
        stations,
        agent_id=f"gw-quirk-{history}",
        profiles_dir=str(profiles_dir),
    )
    config, profiles = load_config(path)
    sub = EventSubscriber(mosquitto.port, client_id=f"sub-quirk-{history}")
    agent = Agent(config, profiles)
    stop = asyncio.Event()
    task = asyncio.create_task(agent.run(stop))
    source: Any = agent.sources[0]
    # the network is cut while a worker logs out and another one works
    q1 = [s for s in steps if s.station == "Q1"]
    change = next(i for i, s in enumerate(q1) if i > 100 and s.changed and s.op)
    cut_from, cut_to = (change - 10) * 2, (change + 25) * 2
    try:
        await asyncio.wait_for(source.connected.wait(), 15)
        await plc.play(steps[:cut_from])
        await asyncio.sleep(0.5)
        proxy.cut()
        cut_at = time.monotonic()
        await asyncio.sleep(0.3)
        await plc.play(steps[cut_from:cut_to])
        await asyncio.sleep(0.3)
        proxy.up = True
        await asyncio.wait_for(source.connected.wait(), 15)
        cut_wall_s = time.monotonic() - cut_at
        await plc.play(steps[cut_to:])
        await plc.play_text_counter("Q4", 20)
        m = agent.metrics
        if history == "off":
            got = await asyncio.to_thread(sub.wait_for, ledger, 8.0, 0.01)
            assert not matches(got, ledger, 0.01)  # without history the outage shows
            # ... and is reported: a gap per station, as long as the cut, on the PLC clock
            gaps = {e["station"]: e for e in list(sub.events.values()) if e["kind"] == "gap"}
            assert {"Q1", "Q2"} <= set(gaps), gaps
            for gap in (gaps["Q1"], gaps["Q2"]):
                span = (
                    datetime.fromisoformat(gap["ts"]) - datetime.fromisoformat(gap["start"])
                ).total_seconds()
                assert 0.3 < span < 60, (span, cut_wall_s)
                assert gap["reason"] == "no_history"
            return
        got = await asyncio.to_thread(sub.wait_for, ledger, 30.0, 0.01)
        gaps = {e["station"]: e for e in list(sub.events.values()) if e["kind"] == "gap"}
        assert not {"Q1", "Q2"} & set(gaps), "history covered the cut: nothing unobserved"
        assert sum(ledger.defects.values()) > 5
        assert_matches(got, ledger, slack_s=0.01)
        await hr.check(sub, ledger)  # and through the HR API
        assert m.station_errors.labels("Q3", "namespace")._value.get() >= 1
        assert m.bad_fields.labels("Q4")._value.get() >= 1
        assert m.uncoded_defects.labels("Q1")._value.get() == 0
        assert m.uncoded_defects.labels("Q2")._value.get() == 0
        assert m.reconnects.labels(source.name)._value.get() >= 1
        assert not task.done()
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
        sub.close()
        proxy.server.close()
        await plc.server.stop()
