"""Device-native MQTT: the station connection (device broker) and the profile section."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from edge_agent.sources.connection import Credentials


class MqttConnection(Credentials):
    type: Literal["mqtt"]
    host: str = "127.0.0.1"
    port: int = Field(default=1883, ge=1, le=65535)
    tls: bool = False
    client_id: str | None = None


class MqttBinding(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    topics: list[str] = Field(
        min_length=1, description="Topic templates with {line} and {station}."
    )
