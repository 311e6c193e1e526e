"""One MQTT session for every Takt process (see ``session`` for the semantics)."""

from takt_common.mqtt.errors import (
    NO_MATCHING_SUBSCRIBERS,
    MqttCodeError,
    MqttConfigError,
    MqttConnectionLostError,
    MqttError,
    MqttNotConnectedError,
)
from takt_common.mqtt.session import MqttSession
from takt_common.mqtt.settings import MqttSettings
from takt_common.mqtt.tls import tls_context
from takt_common.mqtt.types import Hooks, Message, Will, user_properties

__all__ = [
    "NO_MATCHING_SUBSCRIBERS",
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
