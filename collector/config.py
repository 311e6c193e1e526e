"""Collector configuration: a YAML file plus environment variables, checked at start-up.

Secrets (MQTT and InfluxDB passwords, signing keys) come from the environment
only; a file that carries one is refused, naming the file and the field. Outside
``environment: development`` the collector refuses to start without credentials,
so there is no anonymous write path in production.
"""

from __future__ import annotations

from contextvars import ContextVar
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from takt_common.mqtt import MqttSettings as SharedMqttSettings
from takt_wire.admission import DEFAULT_MAX_PAST_S
from takt_wire.errors import describe_validation_error

MIN_SIGNING_KEY_CHARS = 16
"""An HMAC key shorter than this is guessable (the agent refuses to sign with one too)."""

ENV_PREFIX = "TAKT_COLLECTOR_"
SECRET_FIELDS = (
    ("mqtt", "password"),
    ("influx", "password"),
    ("validation", "signing_keys"),
)


class ConfigError(ValueError):
    """The configuration is wrong; the message names the file and the field."""


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


class InfluxSettings(_Section):
    url: str = "http://127.0.0.1:8086"
    database: str = Field(default="takt", pattern=r"^[A-Za-z0-9_\-]+$")
    raw_rp: str = Field(default="raw", pattern=r"^[A-Za-z0-9_\-]+$")
    raw_duration: str = Field(default="730d", pattern=r"^(0s|INF|\d+[hdw])$")
    rollup_rp: str = Field(default="rollup", pattern=r"^[A-Za-z0-9_\-]+$")
    rollup_duration: str = Field(default="0s", pattern=r"^(0s|INF|\d+[hdw])$")
    create: bool = True
    """Create the database and retention policies at start-up (needs admin rights)."""
    username: str | None = None
    password: SecretStr | None = None
    batch_size: int = Field(default=5_000, ge=1, le=100_000)
    flush_interval_s: float = Field(default=0.5, gt=0, le=60)
    gzip: bool = True
    timeout_s: float = Field(default=30.0, gt=0)
    max_backoff_s: float = Field(default=30.0, gt=0)
    pending_batches: int = Field(default=2, ge=1, le=16)
    """Formatted batches queued for the writer before the consumer waits."""


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


class HttpSettings(_Section):
    host: str = "127.0.0.1"
    port: int = Field(default=9108, ge=0, lt=65536)
    """0 picks a free port (tests)."""


class CollectorSettings(BaseSettings):
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

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, _FileSource(settings_cls))


_file_data: ContextVar[dict[str, Any]] = ContextVar("collector_file_data")


class _FileSource(PydanticBaseSettingsSource):
    """The YAML file's content, below the environment in precedence."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return _file_data.get({}).get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(_file_data.get({}))


def load_settings(path: Path | None, **overrides: Any) -> CollectorSettings:
    """Read ``path`` (optional) and the environment; raise ConfigError naming the culprit."""
    where = str(path) if path else "environment"
    data: dict[str, Any] = {}
    if path is not None:
        try:
            loaded = yaml.safe_load(path.read_text()) or {}
        except (OSError, yaml.YAMLError) as err:
            raise ConfigError(f"{where}: cannot read the configuration: {err}") from None
        if not isinstance(loaded, dict):
            raise ConfigError(f"{where}: the top level must be a mapping")
        data = loaded
    for section, name in SECRET_FIELDS:
        block = data.get(section)
        if isinstance(block, dict) and name in block:
            env = f"{ENV_PREFIX}{section.upper()}__{name.upper()}"
            raise ConfigError(
                f"{where}: {section}.{name}: secrets come from the environment ({env})"
            )
    token = _file_data.set(data)
    try:
        return CollectorSettings(**overrides)
    except ValidationError as err:
        raise ConfigError(f"{where}: {describe_validation_error(err, limit=20)}") from None
    finally:
        _file_data.reset(token)
