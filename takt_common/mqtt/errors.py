"""The MQTT session's errors: one small tree under ``TaktError`` (aiomqtt's shape).

``MqttError`` is what a caller catches for "the broker path failed"; the subclasses
say whether it is worth retrying (not connected, connection lost, refused publish)
or a setup mistake (bad TLS files).
"""

from __future__ import annotations

from takt_common.errors import TaktError


class MqttError(TaktError, RuntimeError):
    """Any failure of the MQTT session (a RuntimeError, as paho-era callers caught)."""


class MqttConfigError(MqttError, ValueError):
    """The session cannot be set up as configured (e.g. an unreadable CA file)."""


class MqttNotConnectedError(MqttError):
    """There is no connection right now; the session reconnects by itself."""


class MqttConnectionLostError(MqttError):
    """The connection dropped before the broker answered (a PUBACK that never came)."""


class MqttCodeError(MqttError):
    """The broker (or paho) answered with a failure code; ``reason`` is its text."""

    def __init__(self, what: str, reason: str) -> None:
        super().__init__(f"{what}: {reason}")
        self.reason = reason
