"""Settings of the alert engine: ``TAKT_ALERTS_*``, nested with ``__`` (``TAKT_ALERTS_SMTP__HOST``).

Kept apart from the KPI service's settings so the engine can be switched on per
deployment; secrets (MQTT and SMTP passwords, webhook keys) only come from the environment.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator
from pydantic_settings import SettingsConfigDict

from takt_common.mqtt import MqttSettings
from takt_common.settings import TaktSettings
from takt_store.settings import InfluxSettings
from takt_wire.admission import DEFAULT_MAX_FUTURE_S, DEFAULT_MAX_PAST_S, Policy


class SmtpSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    host: str = ""
    port: int = Field(default=25, ge=1, le=65535)
    starttls: bool = False
    username: str | None = None
    password: SecretStr | None = None
    timeout_s: float = Field(default=10.0, gt=0)


class AlertMqttSettings(MqttSettings):
    """The engine's broker session (``TAKT_ALERTS_MQTT__HOST``, ``..._MQTT__CA_FILE``)."""

    client_id: str | None = Field(default="takt-alerts", max_length=64)
    group: str = Field(default="takt-alerts", pattern=r"^[A-Za-z0-9_\-]+$")
    reconnect_min_s: float = Field(default=1.0, gt=0, le=60)
    reconnect_max_s: float = Field(default=30.0, gt=0, le=300)
    session_expiry_s: int = Field(
        default=3600, ge=0, description="The broker keeps our queue this long while we restart."
    )
    receive_maximum: int = Field(
        default=100,
        ge=1,
        le=65535,
        description="Batches unacknowledged at once; bounds the in-process queue (manual acks).",
    )


_FLAT_MQTT = ("host", "port", "username", "password", "group", "client_id")
"""Older flat names (``TAKT_ALERTS_MQTT_HOST``) still accepted, folded into ``mqtt``."""


class AlertSettings(TaktSettings):
    """Where events come from, where rules and state live, how deliveries retry.

    An optional YAML file named by ``TAKT_ALERTS_CONFIG_FILE`` sits below the
    environment (the shared loader, takt_common.settings).
    """

    model_config = SettingsConfigDict(
        env_prefix="TAKT_ALERTS_", env_nested_delimiter="__", extra="forbid"
    )
    config_file_env: ClassVar[str | None] = "TAKT_ALERTS_CONFIG_FILE"
    renamed: ClassVar[Mapping[str, str]] = {
        "influx_url": "influx.url",
        "influx_db": "influx.database",
        "influx_rp": "influx.raw_rp",
    }

    enabled: bool = False
    rules_file: Path = Path("config/alert-rules.yaml")
    state_db: Path = Path("var/kpi/alerts.sqlite")

    mqtt: AlertMqttSettings = Field(default_factory=AlertMqttSettings)
    mqtt_host: str | None = Field(default=None, description="Deprecated: mqtt.host.")
    mqtt_port: int | None = Field(default=None, description="Deprecated: mqtt.port.")
    mqtt_username: str | None = Field(default=None, description="Deprecated: mqtt.username.")
    mqtt_password: SecretStr | None = Field(default=None, description="Deprecated: mqtt.password.")
    mqtt_group: str | None = Field(default=None, description="Deprecated: mqtt.group.")
    mqtt_client_id: str | None = Field(default=None, description="Deprecated: mqtt.client_id.")
    site: str = Field(default="+", description="Site to watch ('+' = every site).")

    influx: InfluxSettings | None = Field(
        default=None,
        description="Rebuild windows from this InfluxDB at start: the KPI service's ``influx`` "
        "section, with the fields given here replacing its own (None: the KPI service's).",
    )
    rebuild_minutes: float = Field(default=60.0, ge=0)

    retention_s: float = Field(default=3600.0, gt=0)

    # Admission: the same check as the collector's (takt_wire.admission), so nothing
    # reaches a rule that the collector would refuse. Keep these equal to the
    # collector's validation settings.
    require_signature: bool = False
    signing_keys: dict[str, SecretStr] = Field(
        default_factory=dict,
        description="Key id -> HMAC key, as the collector's "
        '(env only: TAKT_ALERTS_SIGNING_KEYS=\'{"gw-1":"..."}\'); key ids are bound to agents.',
    )
    check_topic: bool = True
    max_future_s: float = Field(default=DEFAULT_MAX_FUTURE_S, gt=0)
    max_past_s: float | None = Field(default=DEFAULT_MAX_PAST_S, gt=0)
    tick_s: float = Field(default=1.0, gt=0, le=60)

    delivery_attempts: int = Field(default=5, ge=1, le=20)
    delivery_backoff_s: float = Field(default=0.5, gt=0)
    delivery_backoff_max_s: float = Field(default=30.0, gt=0)
    http_timeout_s: float = Field(default=10.0, gt=0)

    smtp: SmtpSettings = Field(default_factory=SmtpSettings)
    board_window_minutes: float = Field(default=15.0, gt=0)
    board_stale_after_s: float = Field(
        default=120.0,
        gt=0,
        le=86_400,
        description="The board greys a station out and labels it stale when its newest data "
        "is older than this (line time).",
    )

    @model_validator(mode="before")
    @classmethod
    def _fold_flat_mqtt(cls, data: Any) -> Any:
        """``mqtt_host: x`` (the names before the shared session) means ``mqtt.host: x``."""
        if not isinstance(data, dict):
            return data
        flat = {name: data.pop(f"mqtt_{name}") for name in _FLAT_MQTT if f"mqtt_{name}" in data}
        flat = {name: value for name, value in flat.items() if value is not None}
        if flat:
            section = data.get("mqtt") or {}
            if isinstance(section, BaseModel):
                section = section.model_dump(exclude_unset=True)
            data = {**data, "mqtt": {**flat, **section}}
        return data

    @model_validator(mode="after")
    def _keys_when_required(self) -> AlertSettings:
        self.mqtt.refuse_insecure("production", "TAKT_ALERTS_MQTT__")
        if self.require_signature and not self.signing_keys:
            raise ValueError("require_signature needs signing_keys (TAKT_ALERTS_SIGNING_KEYS)")
        if any(not key.get_secret_value() for key in self.signing_keys.values()):
            raise ValueError("a signing key is empty")
        return self

    def influx_for(self, kpi: InfluxSettings) -> InfluxSettings:
        """Where to rebuild from: the KPI service's InfluxDB, with this section's fields on top."""
        if self.influx is None:
            return kpi
        return kpi.model_copy(
            update={name: getattr(self.influx, name) for name in self.influx.model_fields_set}
        )

    @property
    def policy(self) -> Policy:
        """The admission policy for incoming batches (see takt_wire.admission)."""
        keys = {k: v.get_secret_value().encode() for k, v in self.signing_keys.items()}
        return Policy(
            signing_keys=keys if self.require_signature else None,
            check_topic=self.check_topic,
            max_future_s=self.max_future_s,
            max_past_s=self.max_past_s,
        )
