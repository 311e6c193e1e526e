"""Collector fixtures: settings for the real test servers, an in-process collector runner."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from collector.config import CollectorSettings, load_settings
from collector.service import Collector

SettingsFactory = Callable[..., CollectorSettings]


def deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


@pytest.fixture
def make_settings(tmp_path: Path, request: pytest.FixtureRequest) -> SettingsFactory:
    """Development settings pointing at given servers; a database per test."""
    db = "t_" + "".join(c if c.isalnum() else "_" for c in request.node.name)[:50]

    group = db[:40].replace("_", "-")

    def make(mqtt_port: int, influx_url: str, **over: Any) -> CollectorSettings:
        base: dict[str, Any] = {
            "environment": "development",
            "mqtt": {"port": mqtt_port, "client_id": f"{group}-c1", "group": group},
            "influx": {
                "url": influx_url,
                "database": db,
                "flush_interval_s": 0.1,
                "max_backoff_s": 1.0,
            },
            "rollup": {"debounce_s": 0.2},
            "http": {"port": 0},
            "dlq_path": str(tmp_path / "dlq.sqlite"),
        }
        return load_settings(None, **deep_merge(base, over))

    return make


@contextlib.asynccontextmanager
async def running(settings: CollectorSettings) -> AsyncIterator[Collector]:
    """A collector running in this event loop, subscribed; stopped cleanly afterwards."""
    collector = Collector(settings)
    task = asyncio.create_task(collector.run(), name=f"collector-{settings.mqtt.client_id}")
    try:
        await asyncio.wait_for(collector.ready.wait(), 30)
        assert collector._consumer is not None
        await asyncio.wait_for(collector._consumer.subscribed.wait(), 10)
        yield collector
    finally:
        collector.stop()
        await asyncio.wait_for(task, 60)


async def eventually(
    check: Callable[[], bool], within: float = 30, what: str = "", every: float = 0.05
) -> None:
    """Wait (bounded) for a condition that depends on another process."""
    deadline = asyncio.get_running_loop().time() + within
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what or check}")
        await asyncio.sleep(every)
