"""The shared service kit: one backoff, one JSON log format, one status port.

The status server is exercised over a real socket with a plain HTTP client
(httpx), and raw socket requests that a framework would never send.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import random
from datetime import UTC, datetime

import httpx
import pytest
from prometheus_client import CollectorRegistry, Counter
from tenacity import AsyncRetrying, stop_after_attempt

from takt_common.backoff import Backoff, retry_wait, step
from takt_common.logs import JsonFormatter, configure
from takt_common.status import StatusServer


def test_backoff_doubles_from_the_base_up_to_the_cap_with_jitter() -> None:
    random.seed(7)
    backoff = Backoff(base=0.2, cap=5.0)
    delays = [backoff.next_delay() for _ in range(12)]
    # independent figures: 0.2 * 2**n capped at 5 -> 0.2 0.4 0.8 1.6 3.2 5 5 ...
    expected_steps = [0.2, 0.4, 0.8, 1.6, 3.2] + [5.0] * 7
    for delay, full in zip(delays, expected_steps, strict=True):
        assert full / 2 <= delay <= full
    assert max(delays) <= 5.0 and delays[-1] >= 2.5
    backoff.reset()
    assert backoff.next_delay() <= 0.2
    assert step(0.2, 5.0, 10**6) == 5.0, "no overflow, never over the cap"


def test_backoff_spreads_peers_apart() -> None:
    random.seed(11)
    firsts = {round(Backoff(base=1.0, cap=30.0).next_delay(), 6) for _ in range(50)}
    assert len(firsts) > 40 and min(firsts) >= 0.5 and max(firsts) <= 1.0


async def test_tenacity_retries_wait_by_the_same_steps() -> None:
    slept: list[float] = []

    async def record(delay: float) -> None:
        slept.append(delay)

    calls = 0
    async for attempt in AsyncRetrying(
        stop=stop_after_attempt(5), wait=retry_wait(0.1, 0.3), sleep=record, reraise=True
    ):
        with attempt:
            calls += 1
            if calls < 5:
                raise ConnectionError("down")
    assert calls == 5 and len(slept) == 4
    for delay, full in zip(slept, [0.1, 0.2, 0.3, 0.3], strict=True):
        assert full / 2 <= delay <= full


def test_json_log_lines_carry_extra_fields_and_utc_time() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("takt.test.kit")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        before = datetime.now(UTC)
        logger.warning("batch %s refused", 7, extra={"station": "S1", "reason": "invalid"})
        try:
            raise RuntimeError("boom")
        except RuntimeError:
            logger.exception("failed")
    finally:
        logger.removeHandler(handler)
    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert first["msg"] == "batch 7 refused" and first["level"] == "WARNING"
    assert (first["station"], first["reason"]) == ("S1", "invalid")
    assert first["ts"].endswith("Z")
    stamp = datetime.fromisoformat(first["ts"].replace("Z", "+00:00"))
    assert abs((stamp - before).total_seconds()) < 60
    assert "RuntimeError: boom" in second["exc"]


def test_configure_replaces_handlers_and_quiets_noisy_loggers() -> None:
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        configure("DEBUG", quiet=("takt.test.noisy",))
        assert len(root.handlers) == 1 and isinstance(root.handlers[0].formatter, JsonFormatter)
        assert logging.getLogger("takt.test.noisy").level == logging.WARNING
    finally:
        root.handlers[:], level = saved
        root.setLevel(level)


async def raw_request(port: int, data: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    writer.write_eof()  # a client that stops sending mid-request
    await writer.drain()
    answer = await reader.read()
    writer.close()
    return answer


@pytest.mark.integration
async def test_status_server_serves_health_and_metrics() -> None:
    registry = CollectorRegistry()
    seen = Counter("takt_kit_seen", "Things seen.", registry=registry)
    seen.inc(3)
    healthy = {"ok": True}

    def health() -> tuple[bool, dict[str, object]]:
        return healthy["ok"], {"queue": 4}

    async with StatusServer("127.0.0.1", 0, registry, health) as server:
        assert server.port > 0
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}") as http:
            ok = await http.get("/healthz")
            assert ok.status_code == 200 and ok.json() == {"status": "ok", "queue": 4}
            healthy["ok"] = False
            failing = await http.get("/healthz")
            assert failing.status_code == 503 and failing.json()["status"] == "failing"
            metrics = await http.get("/metrics?name[]=x")
            assert metrics.status_code == 200 and "takt_kit_seen_total 3.0" in metrics.text
            assert (await http.get("/nope")).status_code == 404
            assert (await http.post("/healthz")).status_code == 405
        garbage = await raw_request(server.port, b"\x00\x01 nonsense\r\n\r\n")
        assert garbage.startswith(b"HTTP/1.1 405") or garbage.startswith(b"HTTP/1.1 404")
        half = await raw_request(server.port, b"GET /healthz HTTP/1.1\r\n")  # no blank line
        assert half.startswith(b"HTTP/1.1 503")
