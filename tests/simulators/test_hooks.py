"""Fault-injection hooks other tests rely on, and the paused start."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import pytest
import serial
from asyncua import ua
from asyncua.client.client import Client

from simulators import FloorError, ShopFloor, load_scenario

TINY = Path(__file__).resolve().parents[2] / "simulators" / "scenarios" / "test_tiny.yaml"


async def _read(url: str, namespace: str, name: str) -> object:
    async with asyncio.timeout(20), Client(url, timeout=5) as client:
        ns = await client.get_namespace_index(namespace)
        return await client.get_node(ua.NodeId.from_string(f"ns={ns};s=P1.{name}")).read_value()


async def test_paused_floor_is_up_and_still(tmp_path: Path) -> None:
    floor = ShopFloor(load_scenario(TINY), tmp_path, start_paused=True)
    async with floor:
        ep = floor.endpoints["P1"]
        assert ep.url and ep.namespace
        assert await _read(ep.url, ep.namespace, "Heartbeat") == 0
        await asyncio.sleep(0.3)  # several simulated seconds' worth of wall time
        assert await _read(ep.url, ep.namespace, "Heartbeat") == 0
        assert floor.sim_ms == -1
        assert json.loads((tmp_path / "endpoints.json").read_text())["B1"]["serial_path"]
        with pytest.raises(FloorError, match="never started"):
            await floor.wait_done()


async def test_opcua_server_restart_keeps_registers_and_port(tmp_path: Path) -> None:
    floor = ShopFloor(load_scenario(TINY), tmp_path, acceleration=30)
    async with floor:
        ep = floor.endpoints["P1"]
        assert ep.url and ep.namespace
        async with asyncio.timeout(30):
            await floor.wait_until(30.0)
        await floor.restart_opcua_server()
        after = await _read(ep.url, ep.namespace, "GoodCount")
        assert isinstance(after, int) and after > 0
        async with asyncio.timeout(30):
            await floor.wait_done()
        final = await _read(ep.url, ep.namespace, "GoodCount")
        assert final == floor.ledger["stations"][0]["final_counters"]["good"]


async def test_unplug_serial_breaks_the_reader_and_the_path_comes_back(tmp_path: Path) -> None:
    floor = ShopFloor(load_scenario(TINY), tmp_path, start_paused=True)
    async with floor:
        path = Path((tmp_path / "serial-B1.path").read_text().strip())
        assert path == Path(floor.endpoints["B1"].serial_path or "")
        port = serial.Serial(str(path), 115200, timeout=0.2)
        floor.start_clock()
        first = await asyncio.to_thread(port.read_until, b"\r\n")
        assert first.startswith(b"\x02T=")
        unplug = asyncio.create_task(floor.unplug_serial("B1", 0.3))
        with pytest.raises(serial.SerialException):
            async with asyncio.timeout(5):
                while True:  # drain what was buffered, then the pulled cable shows
                    await asyncio.to_thread(port.read, 4096)
        port.close()
        await unplug
        assert floor.serial["B1"].unplugs == 1
        port = serial.Serial(str(path), 115200, timeout=0.5)
        frame = await asyncio.to_thread(port.read_until, b"\r\n")
        assert frame.startswith(b"\x02T=") and frame.endswith(b"\r\n")
        port.close()
        with pytest.raises(FloorError):
            await floor.unplug_serial("P1", 0.1)
        async with asyncio.timeout(30):
            await floor.wait_done()
    assert not await asyncio.to_thread(os.path.lexists, path)


async def test_fine_ticks_keep_one_heartbeat_per_second_and_the_same_truth(tmp_path: Path) -> None:
    sc = load_scenario(TINY)
    fine = sc.model_copy(update={"tick": 0.25})
    floor = ShopFloor(fine, tmp_path, start_paused=True)
    async with floor:
        floor.start_clock()
        waiter = asyncio.create_task(floor.wait_until(10_000))  # beyond the end
        async with asyncio.timeout(30):
            await floor.wait_done()
        with pytest.raises(FloorError, match="clock stopped"):
            await waiter
        assert floor.states["P1"].heartbeat == 121  # seconds 0..120
    assert floor.ledger == ShopFloor(sc, tmp_path / "coarse").ledger
