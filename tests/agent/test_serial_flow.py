"""Serial source on a real pty: corrupt frames skipped and counted, the port unplugged and back."""

from __future__ import annotations

import asyncio
import os
import random
from pathlib import Path
from typing import Any

import pytest

from edge_agent.config import load_config
from edge_agent.runtime import Agent
from takt_cli.localservices import Mosquitto
from tests.agent.helpers import EventSubscriber, Step, assert_matches, gateway_config, make_script
from tests.agent.test_pure import frame as spec_frame


def frame(step: Step) -> bytes:
    rej = ",".join(f"{c}:{n}" for c, n in step.rej.items())
    fields = {
        "T": str(int(step.ts.timestamp() * 1000)),
        "G": str(step.cnt),
        "R": rej,
        "B": step.op,
        "S": str(step.st),
        "C": str(step.ct),
    }
    return spec_frame(**fields)  # written from the device spec, not the agent's code


class PtyDevice:
    """The serial counter box: holds the pty master; the agent opens the link path."""

    def __init__(self, link: Path) -> None:
        self.link = link
        self.plug()

    def plug(self) -> None:
        self.master, slave = os.openpty()
        self.slave_name = os.ttyname(slave)
        os.close(slave)
        tmp = self.link.with_suffix(".tmp")
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(self.slave_name)
        tmp.replace(self.link)

    def unplug(self) -> None:
        os.close(self.master)

    def write(self, data: bytes) -> None:
        os.write(self.master, data)


@pytest.mark.timeout(120)
async def test_serial_events_add_up_despite_corrupt_frames_and_unplug(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    steps, ledger = make_script(["C1"], 300, seed=8)
    device = PtyDevice(tmp_path / "serial-C1")
    path = gateway_config(
        tmp_path,
        mosquitto.port,
        [
            {
                "id": "C1",
                "line": "LS",
                "profile": "takt-sim-serialbox",
                "connection": {"type": "serial", "port": str(device.link)},
            }
        ],
        agent_id="gw-serial",
    )
    config, profiles = load_config(path)
    sub = EventSubscriber(mosquitto.port, client_id="sub-serial")
    agent = Agent(config, profiles)
    stop = asyncio.Event()
    task = asyncio.create_task(agent.run(stop))
    source: Any = agent.sources[0]
    rng = random.Random(1)
    corrupted = 0
    # unplug in a window where no badge or state changes (those frames are simply never sent:
    # the cumulative counters in the next frame carry the units)
    quiet = next(
        i for i in range(100, len(steps) - 5) if not any(s.changed for s in steps[i - 1 : i + 5])
    )
    try:
        await asyncio.wait_for(source.connected.wait(), 10)
        for i, step in enumerate(steps):
            if i == quiet:
                await asyncio.sleep(1.0)  # frames still in the pty buffer would die with it
                device.unplug()
                await asyncio.sleep(0.5)
                device.plug()
                await asyncio.wait_for(source.connected.wait(), 15)
                continue
            if quiet < i < quiet + 3:
                continue
            data = frame(step)
            if not step.changed and i > 0 and rng.random() < 0.05:
                if rng.random() < 0.5:
                    bad = bytearray(data)
                    bad[5] ^= 0x04  # flipped byte: checksum fails
                    data = bytes(bad)
                else:
                    data = data[: len(data) // 2]  # truncated frame
                corrupted += 1
            device.write(data)
            if i % 10 == 0:
                await asyncio.sleep(0.01)
        got = await asyncio.to_thread(sub.wait_for, ledger, 30.0, 0.01)
        assert_matches(got, ledger, slack_s=0.01)
        skipped = sum(
            agent.metrics.corrupt_frames.labels("C1", r)._value.get()
            for r in ("checksum", "truncated")
        )
        assert corrupted > 3 and skipped == corrupted
        assert agent.metrics.reconnects.labels(source.name)._value.get() >= 1
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
        sub.close()
