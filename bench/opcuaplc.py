"""A bench PLC: one asyncua server with N stations whose counters move on their own.

Each station is an object with the ``takt-sim-plc`` registers (GoodCount, per-code
rejects, badge, state, cycle time, heartbeat); once per ``period_s`` every
station's GoodCount goes up by one with a fresh SourceTimestamp (a reject every
50th unit). It runs in its own process (``serve``), so the agent under test does
not share an interpreter with it.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from bench.agentkit import BADGES, station_id

NAMESPACE = "urn:takt:sim:plc"


def _nid(name: str, ns: int) -> Any:
    from asyncua import ua

    return ua.NodeId(ua.String(name), ua.Int16(ns))


def _value(value: object, vtype: Any, ts: Any) -> Any:
    """A DataValue stamped with the device time (asyncua's stubs want its own DateTime)."""
    from asyncua import ua

    return ua.DataValue(ua.Variant(value, vtype), SourceTimestamp=ts, ServerTimestamp=ts)


async def _serve(port: int, stations: int, period_s: float, ready: Any, stop: Any) -> None:
    from asyncua import ua
    from asyncua.server.server import Server

    logging.getLogger("asyncua").setLevel(logging.ERROR)
    server = Server()
    await server.init()
    server.set_endpoint(f"opc.tcp://127.0.0.1:{port}/bench/plc")
    ns = await server.register_namespace(NAMESPACE)
    line = await server.nodes.objects.add_object(_nid("Line", ns), "Line")
    t0 = datetime.now(UTC) - timedelta(seconds=1)
    counters: list[tuple[Any, Any]] = []
    for i in range(stations):
        sid = station_id(i)
        obj = await line.add_object(_nid(sid, ns), sid)
        registers = [
            ("GoodCount", ua.VariantType.UInt16, 0),
            ("Rejects.E07", ua.VariantType.UInt16, 0),
            ("OperatorBadge", ua.VariantType.String, f"B{i % BADGES}"),
            ("MachineState", ua.VariantType.Int32, 1),
            ("LastCycleTime", ua.VariantType.Double, 30.0),
            ("Heartbeat", ua.VariantType.UInt32, 0),
        ]
        nodes = {}
        for name, vtype, initial in registers:
            node = await obj.add_variable(
                _nid(f"{sid}.{name}", ns), name, ua.Variant(initial, vtype)
            )
            await node.write_value(_value(initial, vtype, t0))
            nodes[name] = node
        counters.append((nodes["GoodCount"], nodes["Rejects.E07"]))
    await server.start()
    ready.set()
    n = 0
    try:
        while not stop.is_set():
            n += 1
            now = datetime.now(UTC)
            for good, rejects in counters:
                await good.write_value(_value(n % 65536, ua.VariantType.UInt16, now))
                if n % 50 == 0:
                    count = (n // 50) % 65536
                    await rejects.write_value(_value(count, ua.VariantType.UInt16, now))
            await asyncio.sleep(period_s)
    finally:
        await server.stop()


def serve(port: int, stations: int, period_s: float, ready: Any, stop: Any) -> None:
    """Process target: serve until ``stop`` (a multiprocessing Event) is set."""
    asyncio.run(_serve(port, stations, period_s, ready, stop))


def opcua_stations(count: int, port: int) -> list[dict[str, Any]]:
    """``count`` stations of the ``takt-sim-plc`` profile on the bench PLC (one session)."""
    connection = {
        "type": "opcua",
        "endpoint": f"opc.tcp://127.0.0.1:{port}/bench/plc",
        "defect_codes": ["E07"],
    }
    return [
        {"id": station_id(i), "line": "L1", "profile": "takt-sim-plc", "connection": connection}
        for i in range(count)
    ]
