"""ASGI middleware: callers are authenticated, and bodies bounded, before a body is read.

FastAPI reads (and parses) a request body before the dependencies that check the
API key run, so an anonymous caller could make the service buffer any amount of
data and only then get a 401 (40 MB without a key: +226 MB RSS). This middleware
sits in front of routing: on ``/api/`` a request that carries a body must present
a valid key first (the body is never read otherwise), a declared
``Content-Length`` over the limit is refused at once, and a body streamed without
one is cut off at the limit. Scopes and lines are still checked by the routes.

The key lookup (a database transaction: it records when the key was last used) runs in
a worker thread, off the event loop, and its result is kept in ``scope["state"]`` under
``AUTHENTICATED`` as ``(key, result)`` so the route's ``get_principal`` does not look the
same key up a second time.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import anyio.to_thread
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from kpi_service.core.apikeys import Principal, Refused

BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
AUTHENTICATED = "authenticated"
"""``scope["state"]`` entry: ``(key, Principal | Refused | None)`` as the guard found it."""


class RequestGuard:
    def __init__(
        self,
        app: ASGIApp,
        *,
        max_body_bytes: int,
        authenticate: Callable[[Scope, str], Principal | Refused | None],
        protected_prefix: str = "/api/",
        open_paths: frozenset[str] = frozenset(),
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.authenticate = authenticate
        self.protected_prefix = protected_prefix
        self.open_paths = open_paths
        """Paths whose callers have no key yet (pairing a tablet); bodies still bounded."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        declared = headers.get("content-length")
        has_body = scope["method"] in BODY_METHODS or bool(declared and declared != "0")
        protected = scope["path"].startswith(self.protected_prefix)
        if has_body and protected and scope["path"] not in self.open_paths:
            key = _credentials(headers)
            found = None
            if key:
                found = await anyio.to_thread.run_sync(self.authenticate, scope, key)
                scope.setdefault("state", {})[AUTHENTICATED] = (key, found)
            if not isinstance(found, Principal):
                await _answer(send, 401, "missing or invalid credentials", bearer=True)
                return
        if declared is not None:
            try:
                size = int(declared)
            except ValueError:
                await _answer(send, 400, "invalid Content-Length")
                return
            if size > self.max_body_bytes:
                await _answer(send, 413, f"request body over {self.max_body_bytes} bytes")
                return
        received = 0
        started = answered = False

        async def bounded_receive() -> Message:
            # Past the limit we answer 413 ourselves and tell the app the client left;
            # raising instead would reach FastAPI's body parser, which turns it into a 400.
            nonlocal received, answered
            if answered:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    if not started:
                        await _answer(send, 413, f"request body over {self.max_body_bytes} bytes")
                        answered = True
                    return {"type": "http.disconnect"}
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if answered:
                return  # the app's answer to a body we cut off; ours was sent
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        await self.app(scope, bounded_receive, tracking_send)


def _credentials(headers: dict[str, str]) -> str | None:
    authorization = headers.get("authorization", "")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return headers.get("x-api-key") or None


async def _answer(send: Send, status: int, detail: str, *, bearer: bool = False) -> None:
    body = json.dumps({"detail": detail}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if bearer:
        headers.append((b"www-authenticate", b"Bearer"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
