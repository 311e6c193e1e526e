"""Audit middleware: every API request leaves an entry, refused ones included.

The entry is written when the response starts, so it carries the status, and *before*
the status line or any byte of the body goes out: if the audit write fails, the caller
gets a 500 instead of the data (no read leaves the service unrecorded). Who called comes
from the authentication dependency (``request.state``): a key's name, ``revoked:NAME`` /
``expired:NAME`` for a refused key, ``invalid-key`` or ``anonymous``.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import parse_qsl

import anyio.to_thread
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from kpi_service.core.audit import AuditLog

log = logging.getLogger(__name__)

AUDITED_PREFIX = "/api/"
_REFUSED = b'{"detail":"the request could not be audited, so it was not answered"}'


class _AuditFailed(Exception):
    """The audit entry could not be written (raised out of the wrapped ``send``)."""


def caller(state: dict[str, Any]) -> str:
    principal = state.get("principal")
    if principal is not None:
        return str(principal.name)
    return str(state.get("refused_as", "anonymous"))


class AuditMiddleware:
    """Pure ASGI (no body buffering): wraps ``send`` to record at ``http.response.start``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(AUDITED_PREFIX):
            await self.app(scope, receive, send)
            return
        state: dict[str, Any] = scope.setdefault("state", {})
        audit: AuditLog = scope["app"].state.audit
        query = parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
        recorded = False

        async def record(status: int) -> None:
            nonlocal recorded
            recorded = True
            await anyio.to_thread.run_sync(
                lambda: audit.record(caller(state), scope["method"], scope["path"], query, status)
            )

        async def audited_send(message: Message) -> None:
            if message["type"] == "http.response.start" and not recorded:
                try:
                    await record(int(message["status"]))
                except Exception as err:
                    raise _AuditFailed from err
            await send(message)

        try:
            await self.app(scope, receive, audited_send)
        except _AuditFailed:
            # Nothing has been sent yet: answer 500 instead of the unrecorded response.
            log.exception("audit: could not record %s %s; refused", scope["method"], scope["path"])
            await send(
                {
                    "type": "http.response.start",
                    "status": 500,
                    "headers": [(b"content-type", b"application/json")],
                }
            )
            await send({"type": "http.response.body", "body": _REFUSED})
        except Exception:
            if not recorded:
                try:
                    await record(500)
                except Exception:
                    log.exception("audit: could not record a failed request to %s", scope["path"])
            raise
