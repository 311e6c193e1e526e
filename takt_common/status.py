"""The one status HTTP port of a service: ``/healthz`` (JSON) and ``/metrics`` (Prometheus).

Plain asyncio streams rather than a web framework: two fixed read-only routes
do not justify the memory of one on a gateway. ``/healthz`` answers 200 while the
service is healthy and 503 otherwise, with the service's own detail as JSON.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from types import TracebackType
from typing import Self

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

log = logging.getLogger(__name__)

Health = Callable[[], tuple[bool, dict[str, object]]]
"""``() -> (healthy, detail)``; called per request, so it must be cheap and not block."""

_REASONS = {200: "OK", 404: "Not Found", 405: "Method Not Allowed", 503: "Service Unavailable"}


class StatusServer:
    """Serve ``/healthz`` and ``/metrics`` on ``host:port`` (port 0 picks a free one)."""

    def __init__(self, host: str, port: int, registry: CollectorRegistry, health: Health) -> None:
        self.host = host
        self.port = port
        self.registry = registry
        self.health = health
        self._server: asyncio.Server | None = None

    async def start(self) -> int:
        """Listen; returns the port actually bound."""
        self._server = await asyncio.start_server(self._handle, self.host, self.port)
        port: int = self._server.sockets[0].getsockname()[1]
        self.port = port
        return port

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(OSError):
                await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def _answer(self, method: str, path: str) -> tuple[int, str, bytes]:
        route = path.split("?", 1)[0]
        if method != "GET":
            return 405, "text/plain", b"GET only\n"
        if route == "/metrics":
            return 200, CONTENT_TYPE_LATEST, generate_latest(self.registry)
        if route == "/healthz":
            ok, detail = self.health()
            body = json.dumps({"status": "ok" if ok else "failing", **detail}, default=str)
            return (200 if ok else 503), "application/json", body.encode()
        return 404, "text/plain", b"not found\n"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await asyncio.wait_for(reader.readline(), 5)
            while (await asyncio.wait_for(reader.readline(), 5)) not in (b"\r\n", b"\n", b""):
                pass
            parts = request.decode("latin-1").split()
            method, path = (parts[0], parts[1]) if len(parts) > 1 else ("", "/")
            status, ctype, body = self._answer(method, path)
            writer.write(
                f"HTTP/1.1 {status} {_REASONS[status]}\r\nContent-Type: {ctype}\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
                + body
            )
            await writer.drain()
        except (TimeoutError, ConnectionError, asyncio.LimitOverrunError, ValueError) as err:
            log.debug("status request dropped", extra={"error": str(err)})
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
