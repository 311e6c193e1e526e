"""MQTT channel: the transition as JSON on the station's alerts topic (QoS 1)."""

from __future__ import annotations

import json

from kpi_service.alerts.channels.base import ChannelContext, DeliveryError
from kpi_service.alerts.channels.registry import register
from kpi_service.alerts.channels.web import transition_json
from kpi_service.alerts.model import Transition
from kpi_service.alerts.rules import ChannelDef
from takt_wire.topics import alerts_topic

LINE_LEVEL = "_line"
"""Station level of the topic for line-wide alerts (no station name starts with '_')."""


def topic_for(transition: Transition) -> str:
    alert = transition.alert
    return alerts_topic(alert.site, alert.line, alert.station or LINE_LEVEL)


@register("mqtt")
class MqttChannel:
    def __init__(self, name: str, definition: ChannelDef, context: ChannelContext) -> None:
        if context.publisher is None:
            raise ValueError(f"channel {name!r}: MQTT is not configured")
        self.name, self.publisher = name, context.publisher

    async def send(self, transition: Transition) -> None:
        payload = json.dumps(transition_json(transition), ensure_ascii=False).encode()
        try:
            await self.publisher.publish(topic_for(transition), payload, qos=1)
        except (OSError, TimeoutError, RuntimeError) as err:
            raise DeliveryError(f"MQTT publish failed: {err}", retryable=True) from err
