"""Typed errors of the storage layer, all under ``takt_common.errors.TaktError``.

Callers tell apart what an operator must fix (credentials, a missing database or
retention policy) from what passes by itself (a server that is down or busy) and
from a statement InfluxDB refused; each also derives from ``RuntimeError`` so the
``except RuntimeError`` sites of the services keep working.
"""

from __future__ import annotations

from takt_common.errors import TaktError


class InfluxError(TaktError, RuntimeError):
    """InfluxDB refused or failed a request (the message carries its answer)."""


class InfluxUnavailable(InfluxError):
    """No answer (connection refused, timeout) or a server-side 5xx/429."""


class InfluxAuthError(InfluxError):
    """401/403: the credentials are missing or lack the rights for this request."""


class InfluxHttpError(InfluxError):
    """Any other non-success HTTP status; ``status`` is the code."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(f"InfluxDB answered {status}: {detail}")
        self.status = status
        self.detail = detail


class InfluxQueryError(InfluxError):
    """InfluxDB ran the request but refused a statement (``{"error": ...}`` in a result)."""

    def __init__(self, message: str) -> None:
        super().__init__(f"InfluxQL error: {message}")
        self.message = message

    @property
    def database_missing(self) -> bool:
        return "database not found" in self.message


class WriterStopped(InfluxError):
    """Shutdown came while a write was still being retried; nothing was acknowledged."""


class CapabilityError(InfluxError):
    """The server lacks something the configuration requires (named in the message)."""
