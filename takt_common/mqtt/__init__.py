"""One MQTT session for every Takt process (see ``session`` for the semantics)."""

from takt_common.mqtt.errors import (
    MqttCodeError,
    MqttConfigError,
    MqttConnectionLostError,
    MqttError,
    MqttNotConnectedError,
)
from takt_common.mqtt.session import Hooks, Message, MqttSession, Will, tls_context, user_properties
from takt_common.mqtt.settings import MqttSettings

__all__ = [
    "Hooks",
    "Message",
    "MqttCodeError",
    "MqttConfigError",
    "MqttConnectionLostError",
    "MqttError",
    "MqttNotConnectedError",
    "MqttSession",
    "MqttSettings",
    "Will",
    "tls_context",
    "user_properties",
]
