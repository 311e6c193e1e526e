"""Issue 13, case 3: one bad device timestamp cannot break a station, now or after a restart.

A real agent reads a serial counter box on a pty. The frames are built here, with
their own XOR checksum (not the agent's encoder), as a device would send them. A
single checksum-valid frame a day ahead is refused and counted; the production
around it is counted exactly (the cumulative counter carries the refused frame's
unit into the next one). A station state poisoned by an older version (clock and
field times a day ahead, saved in the outbox) is repaired at start.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from edge_agent.config import load_config
from edge_agent.runtime import Agent
from takt_cli.localservices import Mosquitto
from tests.agent.helpers import EventSubscriber, gateway_config
from tests.agent.test_serial_flow import PtyDevice

RUNNING = 1


def frame(ts: datetime, good: int, badge: str, state: int = RUNNING) -> bytes:
    """STX T=..|G=..|R=|B=..|S=..|C=.. ETX <XOR of the body, two hex digits> CR LF."""
    body = f"T={round(ts.timestamp() * 1000)}|G={good}|R=|B={badge}|S={state}|C=1.5".encode()
    xor = 0
    for byte in body:
        xor ^= byte
    return b"\x02" + body + b"\x03" + f"{xor:02X}".encode() + b"\r\n"


async def run_frames(agent: Agent, device: PtyDevice, frames: list[bytes]) -> None:
    source = agent.sources[0]
    await asyncio.wait_for(source.connected.wait(), 10)  # type: ignore[attr-defined]
    for data in frames:
        device.write(data)
        await asyncio.sleep(0.02)


def totals(sub: EventSubscriber) -> tuple[dict[str, int], dict[str, float], list[str]]:
    good: dict[str, int] = {}
    work: dict[str, float] = {}
    with sub.lock:
        events = list(sub.events.values())
    for e in events:
        if e["kind"] == "unit" and e["outcome"] == "good":
            good[e["worker"]] = good.get(e["worker"], 0) + e["count"]
        elif e["kind"] == "work":
            work[e["worker"]] = work.get(e["worker"], 0.0) + e["work_s"]
    return good, work, [e["ts"] for e in events]


async def wait_totals(
    sub: EventSubscriber, good: dict[str, int], work: dict[str, float]
) -> tuple[dict[str, int], dict[str, float], list[str]]:
    for _ in range(150):
        got = totals(sub)
        if got[0] == good and all(abs(got[1].get(w, 0) - s) < 0.01 for w, s in work.items()):
            return got
        await asyncio.sleep(0.1)
    return totals(sub)


@pytest.mark.timeout(120)
async def test_a_far_future_frame_is_refused_and_production_is_counted_exactly(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    device = PtyDevice(tmp_path / "serial-C1")
    stations = [
        {
            "id": "C1",
            "line": "LS",
            "profile": "takt-sim-serialbox",
            "connection": {"type": "serial", "port": str(device.link)},
        }
    ]
    path = gateway_config(tmp_path, mosquitto.port, stations, agent_id="gw-clock")
    config, profiles = load_config(path)
    sub = EventSubscriber(mosquitto.port, client_id="sub-clock")
    start = datetime.now(UTC).replace(microsecond=0)
    base = start - timedelta(seconds=60)

    # Run 1: W1 (badge B1) makes 10 units in 10 s; frame 6 claims to come from tomorrow.
    run1 = [frame(base, 0, "B1")]
    run1 += [frame(base + timedelta(seconds=i), i, "B1") for i in range(1, 6)]
    run1 += [frame(base + timedelta(days=1), 6, "B1")]
    run1 += [frame(base + timedelta(seconds=i), i, "B1") for i in range(7, 11)]
    run1 += [frame(base + timedelta(seconds=10), 10, "")]  # logout
    agent = Agent(config, profiles)
    stop = asyncio.Event()
    task = asyncio.create_task(agent.run(stop))
    try:
        await run_frames(agent, device, run1)
        good, work, stamps = await wait_totals(sub, {"w1": 10}, {"w1": 10.0})
        assert good == {"w1": 10}, "the refused frame's unit is counted by the next frame"
        assert abs(work["w1"] - 10.0) < 0.01
        assert agent.metrics.clock_outliers.labels("C1")._value.get() == 1
        latest = max(datetime.fromisoformat(ts) for ts in stamps)
        assert latest <= start, "no event was dated by the bad frame"
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)

    # An older version had saved the station clock and field times a day ahead.
    tomorrow = (start + timedelta(days=1)).isoformat()
    db = sqlite3.connect(tmp_path / "outbox.db")
    with db:
        (saved,) = db.execute("SELECT state FROM stations WHERE station='C1'").fetchone()
        state = json.loads(saved)
        state["clock"] = tomorrow
        state["field_ts"] = {key: tomorrow for key in state["field_ts"]}
        db.execute("UPDATE stations SET state=? WHERE station='C1'", (json.dumps(state),))
    db.close()

    # Run 2: W2 (badge B2) makes 5 units in 6 s after the restart.
    later = base + timedelta(seconds=20)
    run2 = [frame(later, 10, "B2")]
    run2 += [frame(later + timedelta(seconds=i), 10 + i, "B2") for i in range(1, 6)]
    run2 += [frame(later + timedelta(seconds=6), 15, "")]
    agent = Agent(config, profiles)
    stop = asyncio.Event()
    task = asyncio.create_task(agent.run(stop))
    try:
        await run_frames(agent, device, run2)
        good, work, _ = await wait_totals(sub, {"w1": 10, "w2": 5}, {"w1": 10.0, "w2": 6.0})
        assert good == {"w1": 10, "w2": 5}
        assert abs(work["w2"] - 6.0) < 0.01
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
        sub.close()
