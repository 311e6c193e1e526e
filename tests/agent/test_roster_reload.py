"""A changed roster is picked up while the agent runs; a broken one never replaces a good one."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from edge_agent.config import load_config
from edge_agent.runtime import Agent
from takt_cli.localservices import Mosquitto
from tests.agent.helpers import gateway_config, mqtt_stations


async def wait_for(check: Any, seconds: float = 10) -> None:
    for _ in range(int(seconds / 0.05)):
        if check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition not reached")


@pytest.mark.timeout(60)
async def test_roster_reloads_and_a_broken_file_keeps_the_old_one(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    path = gateway_config(
        tmp_path, mosquitto.port, mqtt_stations(["R1"], mosquitto.port), agent_id="gw-roster",
        roster_reload_s=0.1,
    )  # fmt: skip
    config, profiles = load_config(path)
    assert config.roster is not None
    agent = Agent(config, profiles)
    stop = asyncio.Event()
    task = asyncio.create_task(agent.run(stop))
    try:
        await asyncio.wait_for(agent.ready.wait(), 15)
        assert agent.resolver("NEW1") == "badge-NEW1"
        config.roster.write_text("badges: {B1: w1, NEW1: w9}\n")
        await wait_for(lambda: agent.resolver("NEW1") == "w9")
        config.roster.write_text("badges: [this is not a mapping\n")
        await asyncio.sleep(0.5)  # several reload periods
        assert agent.resolver("NEW1") == "w9"  # the broken file changed nothing
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
