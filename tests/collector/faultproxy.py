"""An asyncio HTTP proxy in front of a real influxd that answers with scripted faults.

``tc netem`` and toxiproxy are not available here (DESIGN.md); this stands in for
an InfluxDB that is overloaded (429/503 with Retry-After), broken (500), limits
bodies (413) or refuses some points (400). Everything it does not fault is
forwarded to the real server, so accepted points really are in InfluxDB.
"""

from __future__ import annotations

import asyncio
import gzip
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx

Rule = Callable[[bytes], "tuple[int, dict[str, str], bytes] | None"]


@dataclass
class FaultProxy:
    upstream: str
    script: list[tuple[int, dict[str, str], bytes]] = field(default_factory=list)
    """Responses given, in order, to the next /write requests."""
    rules: list[Rule] = field(default_factory=list)
    """Checked against every /write body (decompressed) after the script is used up."""
    requests: list[tuple[int, int, float]] = field(default_factory=list)
    """(status, lines in body, monotonic time) of every /write."""
    delay_s: float = 0.0
    """Added before every /write is answered (a slow server)."""
    port: int = 0
    _server: asyncio.Server | None = None
    _client: httpx.AsyncClient | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def __aenter__(self) -> FaultProxy:
        self._client = httpx.AsyncClient(base_url=self.upstream, timeout=30)
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None and self._client is not None
        self._server.close()
        await self._client.aclose()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, target, _ = lines[0].split(" ", 2)
                headers = {}
                for line in lines[1:]:
                    if ":" in line:
                        k, v = line.split(":", 1)
                        headers[k.strip().lower()] = v.strip()
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                status, out_headers, out_body = await self._respond(method, target, headers, body)
                reason = {204: "No Content", 200: "OK"}.get(status, "Fault")
                head_out = f"HTTP/1.1 {status} {reason}\r\nContent-Length: {len(out_body)}\r\n"
                for k, v in out_headers.items():
                    head_out += f"{k}: {v}\r\n"
                writer.write(head_out.encode() + b"\r\n" + out_body)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    async def _respond(
        self, method: str, target: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        assert self._client is not None
        plain = gzip.decompress(body) if headers.get("content-encoding") == "gzip" else body
        if target.startswith("/write"):
            await asyncio.sleep(self.delay_s)
            n = plain.count(b"\n") + 1
            fault = self.script.pop(0) if self.script else None
            for rule in self.rules:
                if fault is None:
                    fault = rule(plain)
            if fault is not None:
                self.requests.append((fault[0], n, time.monotonic()))
                return fault
        forward = {
            k: v
            for k, v in headers.items()
            if k in ("content-type", "authorization", "content-encoding")
        }
        response = await self._client.request(method, target, content=body, headers=forward)
        if target.startswith("/write"):
            self.requests.append((response.status_code, plain.count(b"\n") + 1, time.monotonic()))
        keep = {k: v for k, v in response.headers.items() if k.lower() == "content-type"}
        return response.status_code, keep, response.content


def reject_lines_containing(marker: bytes, status: int = 400) -> Rule:
    """400 for any body holding a line with ``marker`` (the real server gets none of it)."""

    def rule(body: bytes) -> tuple[int, dict[str, str], bytes] | None:
        if marker in body:
            return (
                status,
                {"Content-Type": "application/json"},
                b'{"error":"unable to parse: bad point"}',
            )
        return None

    return rule


def limit_lines(max_lines: int) -> Rule:
    def rule(body: bytes) -> tuple[int, dict[str, str], bytes] | None:
        if body.count(b"\n") + 1 > max_lines:
            return 413, {}, b'{"error":"Request Entity Too Large"}'
        return None

    return rule
