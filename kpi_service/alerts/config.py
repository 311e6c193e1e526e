"""Settings of the alert engine: ``TAKT_ALERTS_*``, nested with ``__`` (``TAKT_ALERTS_SMTP__HOST``).

Kept apart from the KPI service's settings so the engine can be switched on per
deployment; secrets (MQTT and SMTP passwords, webhook keys) only come from the environment.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator
from pydantic_settings import SettingsConfigDict

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

    mqtt_host: str = "127.0.0.1"
    mqtt_port: int = Field(default=1883, ge=1, le=65535)
    mqtt_username: str | None = None
    mqtt_password: SecretStr | None = None
    mqtt_group: str = Field(default="takt-alerts", pattern=r"^[A-Za-z0-9_\-]+$")
    mqtt_client_id: str = "takt-alerts"
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

    @model_validator(mode="after")
    def _keys_when_required(self) -> AlertSettings:
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
