"""Issue 13, case 9: the dead-letter store cannot be grown without limit by a publisher."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest

from collector.dlq import DeadLetter, DeadLetterMetrics, DeadLetterStore
from collector.testing import publish
from takt_cli.localservices import Influxd, Mosquitto
from takt_wire.topics import events_topic
from tests.collector.conftest import SettingsFactory, eventually, running


async def test_an_oversized_message_is_kept_as_a_bounded_prefix(
    mosquitto: Mosquitto, influxd: Influxd, make_settings: SettingsFactory
) -> None:
    settings = make_settings(mosquitto.port, influxd.url)
    size = 8 * 1024 * 1024
    payload = b'{"v":1,"agent":"a1",' + b" " * (size - 20)
    async with running(settings) as collector:
        await asyncio.to_thread(
            publish, "127.0.0.1", mosquitto.port, [(events_topic("s1", "a1"), payload)]
        )
        await eventually(lambda: collector._unacked == 0 and collector.dlq.stats().rows == 1)
        [letter] = collector.dlq.list()
        stats = collector.dlq.stats()
    assert (letter.kind, letter.reason) == ("message", "oversized")
    assert letter.size == size and letter.truncated
    assert letter.payload == payload[: 64 * 1024], "the prefix shows what it was"
    assert stats.truncated == 1 and stats.payload_bytes == 64 * 1024
    assert settings.dlq_path.stat().st_size < 2 * 1024 * 1024


def letter(i: int, size: int, at: float = 0.0) -> DeadLetter:
    return DeadLetter("message", "invalid", f"letter {i}", "t", bytes([i % 256]) * size, {}, at=at)


def test_size_and_age_caps_evict_the_oldest_and_are_exported(tmp_path: Path) -> None:
    store = DeadLetterStore(tmp_path / "dlq.sqlite", max_total_bytes=10_000, max_age_s=3600)
    for i in range(100):
        store.add([letter(i, 1000)])
    kept = store.list(limit=1000)
    assert [d.detail for d in kept] == [f"letter {i}" for i in range(90, 100)], "newest kept"
    assert store.stats().evicted == 90 and store.stats().payload_bytes == 10_000

    store.add([letter(200, 10, at=time.time() - 7200)])  # already past the age cap
    assert store.stats().rows == 10 and store.stats().evicted == 91

    registry = CollectorRegistry()
    registry.register(DeadLetterMetrics(store))
    text = generate_latest(registry).decode()
    assert "takt_collector_dead_letters 10.0" in text
    assert "takt_collector_dead_letters_evicted_total 91.0" in text
    store.close()

    reopened = DeadLetterStore(tmp_path / "dlq.sqlite", max_total_bytes=10_000)
    assert reopened.stats().evicted == 91 and reopened.stats().payload_bytes == 10_000
    reopened.close()
