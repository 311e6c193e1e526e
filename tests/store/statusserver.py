"""A tiny HTTP server answering scripted statuses, only for what influxd cannot be made to
return on demand (413, 429 and 503 with ``Retry-After``, 500): every other case of the
status policy is tested against a real influxd."""

from __future__ import annotations

import gzip
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Script:
    """Answers in order (status, headers, body); once used up, every request gets 204.
    ``split_over``: a /write body with more lines than this gets 413 (a size limit)."""

    answers: list[tuple[int, dict[str, str], str]] = field(default_factory=list)
    split_over: int | None = None
    bodies: list[int] = field(default_factory=list)
    """Line count of every /write body received."""


@contextmanager
def status_server(script: Script) -> Iterator[str]:
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(length)
            if self.headers.get("Content-Encoding") == "gzip":
                body = gzip.decompress(body)
            lines = body.count(b"\n") + 1 if body else 0
            with lock:
                script.bodies.append(lines)
                headers: dict[str, str] = {}
                if script.split_over is not None and lines > script.split_over:
                    status, text = 413, '{"error":"request entity too large"}'
                elif script.answers:
                    status, headers, text = script.answers.pop(0)
                else:
                    status, text = 204, ""
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            data = text.encode()
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
