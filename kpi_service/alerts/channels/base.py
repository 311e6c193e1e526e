"""The channel interface: what every channel implements and what channels share.

Implementations register themselves in :mod:`.registry`; this module knows none of them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

import httpx

from kpi_service.alerts.config import SmtpSettings
from kpi_service.alerts.model import Transition
from kpi_service.alerts.rules import ChannelDef
from takt_common.errors import TaktError


class DeliveryError(TaktError):
    """A send failed; ``retryable`` says whether trying again may help."""

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


class Channel(Protocol):
    """Sends one transition somewhere; raises :class:`DeliveryError` on failure."""

    name: str

    async def send(self, transition: Transition) -> None: ...


class Publisher(Protocol):
    """MQTT publishing the service owns (one connection for consuming and publishing)."""

    async def publish(self, topic: str, payload: bytes, qos: int = 1) -> None: ...


@dataclass
class ChannelContext:
    """What channels share: one HTTP client, the MQTT publisher, SMTP settings, secrets."""

    http: httpx.AsyncClient
    publisher: Publisher | None = None
    smtp: SmtpSettings | None = None
    environ: Mapping[str, str] = field(default_factory=lambda: os.environ)

    def secret(self, channel: str, definition: ChannelDef) -> bytes | None:
        if definition.secret_env is None:
            return None
        value = self.environ.get(definition.secret_env)
        if not value:
            raise ValueError(
                f"channel {channel!r}: environment variable {definition.secret_env} is not set"
            )
        return value.encode()
