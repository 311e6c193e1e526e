"""Device-native MQTT (paho-mqtt): persistent session, manual acks after commit."""

from edge_agent.sources.mqtt.models import MqttBinding, MqttConnection
from edge_agent.sources.registry import ProtocolSpec

PROTOCOL = ProtocolSpec(
    name="mqtt",
    connection=MqttConnection,
    section=MqttBinding,
    source="edge_agent.sources.mqtt.source:MqttSource",
)
