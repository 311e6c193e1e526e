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


NO_MATCHING_SUBSCRIBERS = 0x10
"""MQTT 5 PUBACK reason: accepted, but nobody subscribed. A retained message is still kept
for later subscribers; anything else was dropped."""


class MqttCodeError(MqttError):
    """The broker (or paho) answered with a failure code; ``reason`` is its text and
    ``code`` the MQTT 5 reason code when the broker gave one."""

    def __init__(self, what: str, reason: str, code: int | None = None) -> None:
        super().__init__(f"{what}: {reason}")
        self.reason = reason
        self.code = code
