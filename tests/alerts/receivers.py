"""Real local receivers for channel tests: an HTTP server that records requests."""

from __future__ import annotations

import json
import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class HttpReceiver:
    """Answers with the queued (status, body) replies, then 200; records every request."""

    server: ThreadingHTTPServer
    requests: queue.Queue[Received] = field(default_factory=queue.Queue)
    replies: list[tuple[int, bytes]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def get(self, timeout: float = 10.0) -> Received:
        return self.requests.get(timeout=timeout)


def start_receiver() -> HttpReceiver:
    holder: dict[str, HttpReceiver] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            receiver = holder["r"]
            receiver.requests.put(Received(self.path, dict(self.headers.items()), body))
            status, reply = receiver.replies.pop(0) if receiver.replies else (200, b'{"errcode":0}')
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, format: str, *args: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    holder["r"] = HttpReceiver(server)
    threading.Thread(target=server.serve_forever, name="http-receiver", daemon=True).start()
    return holder["r"]


def receiver_fixture() -> Iterator[HttpReceiver]:
    receiver = start_receiver()
    yield receiver
    receiver.server.shutdown()
    receiver.server.server_close()
