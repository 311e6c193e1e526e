"""A tiny asyncio HTTP server for ``/healthz`` and ``/metrics`` (no framework needed)."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

log = logging.getLogger(__name__)

Health = Callable[[], tuple[bool, dict[str, object]]]


class StatusServer:
    def __init__(self, host: str, port: int, registry: CollectorRegistry, health: Health) -> None:
        self.host = host
        self.port = port
        self.registry = registry
        self.health = health
        self._server: asyncio.Server | None = None

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._handle, self.host, self.port)
        port: int = self._server.sockets[0].getsockname()[1]
        self.port = port
        return port

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await asyncio.wait_for(reader.readline(), 5)
            while (await asyncio.wait_for(reader.readline(), 5)) not in (b"\r\n", b"\n", b""):
                pass
            parts = request.decode("latin-1").split()
            path = parts[1] if len(parts) > 1 else "/"
            if path.startswith("/metrics"):
                status, ctype, body = 200, CONTENT_TYPE_LATEST, generate_latest(self.registry)
            elif path.startswith("/healthz"):
                ok, detail = self.health()
                status, ctype = (200 if ok else 503), "application/json"
                body = json.dumps({"status": "ok" if ok else "failing", **detail}).encode()
            else:
                status, ctype, body = 404, "text/plain", b"not found\n"
            reason = {200: "OK", 404: "Not Found", 503: "Service Unavailable"}[status]
            writer.write(
                f"HTTP/1.1 {status} {reason}\r\nContent-Type: {ctype}\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
                + body
            )
            await writer.drain()
        except (TimeoutError, ConnectionError) as err:
            log.debug("status request dropped", extra={"error": str(err)})
        finally:
            writer.close()
