"""Serial counter box behind a serial device server (socket://host:port), as on many lines."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from edge_agent.config import load_config
from edge_agent.runtime import Agent
from takt_cli.localservices import Mosquitto
from tests.agent.helpers import EventSubscriber, assert_matches, gateway_config, make_script
from tests.agent.test_serial_flow import frame


@pytest.mark.timeout(120)
async def test_serial_over_tcp_device_server_adds_up(mosquitto: Mosquitto, tmp_path: Path) -> None:
    steps, ledger = make_script(["T1"], 200, seed=11)
    connected = asyncio.Event()
    done = asyncio.Event()

    async def device_server(_r: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connected.set()
        for i, step in enumerate(steps):
            writer.write(frame(step))
            if i % 10 == 0:
                await writer.drain()
        await writer.drain()
        await done.wait()
        writer.close()

    server = await asyncio.start_server(device_server, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    path = gateway_config(
        tmp_path,
        mosquitto.port,
        [
            {
                "id": "T1",
                "line": "LT",
                "profile": "takt-sim-serialbox",
                "connection": {"type": "serial", "port": f"socket://127.0.0.1:{port}"},
            }
        ],
        agent_id="gw-serial-tcp",
    )
    config, profiles = load_config(path)
    sub = EventSubscriber(mosquitto.port, site="plant1", client_id="sub-serial-tcp")
    agent = Agent(config, profiles)
    stop = asyncio.Event()
    task = asyncio.create_task(agent.run(stop))
    try:
        await asyncio.wait_for(connected.wait(), 10)
        got = await asyncio.to_thread(sub.wait_for, ledger, 30.0, 0.01)
        assert sum(ledger.good.values()) > 10
        assert_matches(got, ledger, slack_s=0.01)
    finally:
        done.set()
        stop.set()
        await asyncio.wait_for(task, 30)
        sub.close()
        server.close()
