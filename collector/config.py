"""Collector configuration: a YAML file plus environment variables, checked at start-up.

Secrets (MQTT and InfluxDB passwords, signing keys) come from the environment
only; a file that carries one is refused, naming the file and the field. Outside
``environment: development`` the collector refuses to start without credentials,
so there is no anonymous write path in production.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator
from pydantic_settings import SettingsConfigDict

from takt_common.errors import ConfigError as ConfigError
from takt_common.mqtt import MqttSettings as SharedMqttSettings
from takt_common.settings import TaktSettings
from takt_common.settings import load_settings as load_file_settings
from takt_store.settings import InfluxSettings as InfluxSettings
from takt_wire.admission import DEFAULT_MAX_PAST_S

MIN_SIGNING_KEY_CHARS = 16
"""An HMAC key shorter than this is guessable (the agent refuses to sign with one too)."""

ENV_PREFIX = "TAKT_COLLECTOR_"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class MqttSettings(SharedMqttSettings):
    """The shared broker settings (``takt_common.mqtt``) plus the collector's own."""

    client_id: str = Field(default="takt-collector-1", min_length=1, max_length=64)
    """Stable per collector instance: the broker keeps its session (and unacked messages)."""
    group: str = Field(default="takt-collector", pattern=r"^[A-Za-z0-9_.\-]+$")
    site: str = "+"
    receive_maximum: int = Field(default=64, ge=1, le=65535)
    """Unacknowledged messages the broker may have in flight to us (flow control)."""
    session_expiry_s: int = Field(default=86_400, ge=0)
    reconnect_min_s: float = Field(default=0.2, gt=0, le=60)
    reconnect_max_s: float = Field(default=2.0, gt=0, le=300)
    """Capped backoff: the subscription is the only thing that keeps the broker from
    answering an agent 'no matching subscribers', so come back fast."""
    confirm: bool = True
    """Confirm stored events to their agent (``takt/v1/<site>/acks/<agent>``); agents keep
    every event until confirmed. Off only for agents older than the end-to-end ack."""


class ValidationSettings(_Section):
    max_future_skew_s: float = Field(default=300.0, ge=0)
    max_past_s: float | None = Field(default=DEFAULT_MAX_PAST_S, gt=0)
    """Events (or a work interval's start) older than this at receipt are dead-lettered as
    ``past_timestamp``; ``null`` turns the cap off (back-filling years of history)."""
    stations: list[str] | None = None
    """Known stations as 'site/line/station'; when set, others are dead-lettered."""
    require_signature: bool = False
    signing_keys: dict[str, SecretStr] = Field(default_factory=dict)
    """Key id -> HMAC key (env only: TAKT_COLLECTOR_VALIDATION__SIGNING_KEYS='{"k1":"..."}')."""
    check_topic: bool = True
    """Dead-letter a batch whose agent is not the one its topic names."""
    report_gaps: bool = True
    """Count and log sequence gaps. Turn off when several collectors share ``mqtt.group``:
    each then sees only part of every agent's stream, so every batch looks like a gap
    (measured in the site bench: one warning per message). Nothing is lost either way:
    agents keep every event until a collector confirms it stored."""
    dedupe_streams: int = Field(default=10_000, ge=1)
    dedupe_holes: int = Field(default=100_000, ge=1)

    @model_validator(mode="after")
    def _keys_when_required(self) -> ValidationSettings:
        if self.require_signature and not self.signing_keys:
            raise ValueError("require_signature needs signing_keys (from the environment)")
        short = sorted(
            key_id
            for key_id, key in self.signing_keys.items()
            if len(key.get_secret_value()) < MIN_SIGNING_KEY_CHARS
        )
        if short:
            raise ValueError(
                f"signing keys {short} are shorter than {MIN_SIGNING_KEY_CHARS} characters"
            )
        return self


class RollupSettings(_Section):
    enabled: bool = True
    debounce_s: float = Field(default=5.0, gt=0)
    retry_max_s: float = Field(default=300.0, gt=0)
    """Cap of the backoff of an hour whose recomputation fails (each hour retried alone)."""
    stale_after_s: float = Field(default=900.0, gt=0)
    """A rollup pending longer than this makes ``/healthz`` report it (and fail)."""
    daily: bool = True
    """Also keep the daily rollups (``<m>_1d``) of the local days the hours fall in."""
    timezone: str = "UTC"
    """The site's zone (IANA name), the KPI service's ``timezone``: a day is its local
    calendar day. The KPI service reads only daily points of its own zone."""

    @model_validator(mode="after")
    def _known_zone(self) -> RollupSettings:
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError) as err:
            raise ValueError(f"timezone: unknown time zone {self.timezone!r}") from err
        return self


class HttpSettings(_Section):
    host: str = "127.0.0.1"
    port: int = Field(default=9108, ge=0, lt=65536)
    """0 picks a free port (tests)."""


class CollectorSettings(TaktSettings):
    """Everything the collector needs; see docs/collector.md for an example file."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_nested_delimiter="__", extra="forbid"
    )

    environment: Literal["production", "development"] = "production"
    mqtt: MqttSettings = MqttSettings()
    influx: InfluxSettings = InfluxSettings()
    validation: ValidationSettings = ValidationSettings()
    rollup: RollupSettings = RollupSettings()
    http: HttpSettings = HttpSettings()
    dlq_path: Path = Path("var/collector/dead-letters.sqlite")
    shutdown_timeout_s: float = Field(default=20.0, gt=0)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    @model_validator(mode="after")
    def _credentials(self) -> CollectorSettings:
        self.mqtt.refuse_insecure(self.environment, "mqtt")
        if self.environment == "development":
            return self
        missing = []
        if not (self.mqtt.username and self.mqtt.password):
            missing.append(f"mqtt.username/{ENV_PREFIX}MQTT__PASSWORD")
        if not (self.influx.username and self.influx.password):
            missing.append(f"influx.username/{ENV_PREFIX}INFLUX__PASSWORD")
        if missing:
            raise ValueError(
                "credentials are required outside environment: development; missing "
                + ", ".join(missing)
            )
        return self


def load_settings(path: Path | None, **overrides: Any) -> CollectorSettings:
    """Read ``path`` (optional) and the environment; a ConfigError lists every problem."""
    return load_file_settings(CollectorSettings, path, **overrides)


def dlq_path_of(path: Path | None) -> Path:
    """Where the dead-letter store is, from ``dlq_path`` of the file or the environment only.

    Reading the local dead letters (``takt collector dlq list|show``) needs no broker or
    InfluxDB, so it must not demand their secrets: only this one key is read, and the
    rest of the file is not validated. ``replay`` loads the whole settings instead.
    """
    import os

    from takt_common.yamlfile import read_yaml

    from_env = os.environ.get(f"{ENV_PREFIX}DLQ_PATH")
    if from_env:
        return Path(from_env)
    if path is not None:
        doc = read_yaml(path, what="the collector configuration")
        value = doc.data.get("dlq_path")
        if value is not None:
            if not isinstance(value, str) or not value:
                raise ConfigError([doc.problem(("dlq_path",), "must be a file path")])
            return Path(value)
    default = CollectorSettings.model_fields["dlq_path"].default
    assert isinstance(default, Path)
    return default
