"""Gateway configuration: YAML file + environment overrides (pydantic-settings).

Secrets (broker password, OPC UA / device-broker passwords, pseudonymisation and
signing keys) come from environment variables only; a secret in the YAML file
is refused, so it never lands in a repository. Errors name the file and field.
"""

from __future__ import annotations

import operator
from functools import reduce
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from edge_agent.attribution import DEFAULT_MAX_AHEAD_S
from edge_agent.outbox import OnFull
from edge_agent.profile import DeviceProfile, ProfileError, load_profiles
from edge_agent.roster import RosterError, load_roster
from edge_agent.sources.connection import ConnectionModel, rebased
from edge_agent.sources.registry import protocols
from takt_common.mqtt import MqttSettings
from takt_wire.batch import MAX_BATCH_EVENTS, MAX_PAYLOAD_BYTES
from takt_wire.errors import describe_validation_error
from takt_wire.events import Name
from takt_wire.signing import key_agent

ENV_PREFIX = "TAKT_AGENT_"
SECRET_KEYS = {"password", "pseudonym_key", "signing_key", "private_key_password"}
DEFAULT_PROFILES = Path(__file__).resolve().parent.parent / "device_profiles"


class ConfigError(ValueError):
    """A gateway config that cannot be used; the message names the file and the field."""


MIN_SIGNING_KEY_CHARS = 16
"""An HMAC key shorter than this is guessable; an empty one would sign nothing."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class BrokerConfig(MqttSettings):
    """The shared broker settings (``takt_common.mqtt``): host, port, TLS, auth, backoff."""

    allow_anonymous: bool = Field(
        default=False, description="Must be set explicitly to connect without a username."
    )

    @model_validator(mode="after")
    def _no_anonymous_by_accident(self) -> BrokerConfig:
        if not self.username and not self.allow_anonymous:
            raise ValueError(
                "no username: set broker.username (password from env) "
                "or broker.allow_anonymous: true for a test broker"
            )
        self.refuse_insecure("production", "broker")
        return self


class OutboxConfig(_Strict):
    path: Path = Path("var/agent/outbox.db")
    max_events: int = Field(default=2_000_000, ge=100)
    on_full: OnFull = "block"
    synchronous: Literal["FULL", "NORMAL"] = "FULL"


class PublishConfig(_Strict):
    batch_max_events: int = Field(default=1000, ge=1, le=MAX_BATCH_EVENTS)
    batch_max_bytes: int = Field(default=512 * 1024, ge=4096, le=MAX_PAYLOAD_BYTES // 2)
    window: int = Field(default=8, ge=1, le=1000)
    historical_after_s: float = Field(
        default=30.0,
        gt=0,
        description="An event older than this when sent (device time against gateway time) "
        "is flagged historical: alerts ignore it, history counts it.",
    )
    confirm_timeout_s: float = Field(
        default=30.0,
        gt=0,
        description="Events sent but not confirmed stored by a collector within this time "
        "are sent again (doubling per attempt up to confirm_timeout_max_s).",
    )
    confirm_timeout_max_s: float = Field(default=600.0, gt=0)
    max_unconfirmed_events: int = Field(
        default=200_000,
        ge=1,
        description="Events sent and not yet confirmed, at most; beyond it the agent waits "
        "(a missing collector must not flood the broker).",
    )
    signing_key_id: str = Field(
        default="",
        pattern=r"^[^:]*$",
        description="Key id sent with each signature: '<agent_id>' or '<agent_id>@<label>' "
        "(consumers refuse a key on another agent's batch); default: the agent id.",
    )


class HttpConfig(_Strict):
    host: str = "127.0.0.1"
    port: int = Field(default=9108, ge=0, le=65535, description="0 disables the HTTP port.")


if TYPE_CHECKING:
    Connection = ConnectionModel
else:
    Connection = Annotated[
        reduce(operator.or_, (spec.connection for spec in protocols().values())),
        Field(discriminator="type"),
    ]
"""A station's ``connection:``: one model per registered protocol, chosen by ``type``."""


class StationConfig(_Strict):
    id: Name
    line: Name
    profile: str
    device: Name | None = None
    connection: Connection


class GatewayConfig(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_nested_delimiter="__", extra="forbid"
    )

    agent_id: Name
    site: Name
    broker: BrokerConfig
    outbox: OutboxConfig = Field(default_factory=OutboxConfig)
    publish: PublishConfig = Field(default_factory=PublishConfig)
    http: HttpConfig = Field(default_factory=HttpConfig)
    roster: Path | None = None
    pseudonymise: bool = False
    pseudonym_key: SecretStr | None = None
    signing: bool = False
    signing_key: SecretStr | None = None
    profiles_dir: Path | None = Field(
        default=None,
        description="Folder of device profiles; default: the profiles shipped with Takt.",
    )
    work_interval_s: float = Field(
        default=60.0,
        ge=1.0,
        le=3600.0,
        description="Work intervals close on multiples of this period (seconds, 1 to 3600).",
    )
    device_clock_max_ahead_s: float = Field(
        default=DEFAULT_MAX_AHEAD_S,
        gt=0,
        description="A reading whose device time is further ahead of the gateway clock is "
        "refused and counted (takt_agent_clock_outliers); it never moves the station clock.",
    )
    roster_reload_s: float = Field(
        default=10.0, gt=0, description="How often the roster file is checked for changes."
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    stations: list[StationConfig] = Field(min_length=1)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (env_settings, init_settings)

    @model_validator(mode="after")
    def _consistent(self) -> GatewayConfig:
        ids = [s.id for s in self.stations]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"station ids must be unique: {dupes}")
        if self.pseudonymise and self.pseudonym_key is None:
            raise ValueError(f"pseudonymise needs the key in env {ENV_PREFIX}PSEUDONYM_KEY")
        if self.signing and self.signing_key is None:
            raise ValueError(f"signing needs the key in env {ENV_PREFIX}SIGNING_KEY")
        if self.signing and self.signing_key is not None:
            length = len(self.signing_key.get_secret_value())
            if length < MIN_SIGNING_KEY_CHARS:
                raise ValueError(
                    f"{ENV_PREFIX}SIGNING_KEY has {length} characters; signing needs at least "
                    f"{MIN_SIGNING_KEY_CHARS} (e.g. python -c 'import secrets; "
                    "print(secrets.token_urlsafe(32))')"
                )
        if not self.publish.signing_key_id:
            self.publish.signing_key_id = self.agent_id
        elif key_agent(self.publish.signing_key_id) != self.agent_id:
            raise ValueError(
                f"publish.signing_key_id {self.publish.signing_key_id!r} is not bound to agent "
                f"{self.agent_id!r}: use '{self.agent_id}' or '{self.agent_id}@<label>'"
            )
        return self


def _find_secrets(node: Any, path: str = "") -> list[str]:
    found: list[str] = []
    if isinstance(node, dict):
        for key, value in node.items():
            where = f"{path}.{key}" if path else str(key)
            if key in SECRET_KEYS:
                found.append(where)
            found += _find_secrets(value, where)
    elif isinstance(node, list):
        for i, value in enumerate(node):
            found += _find_secrets(value, f"{path}.{i}")
    return found


def load_config(path: Path) -> tuple[GatewayConfig, dict[str, DeviceProfile]]:
    """Read, validate and cross-check a gateway config and the profiles it uses."""
    try:
        raw = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as err:
        raise ConfigError(f"{path}: cannot read: {err}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: the config is a mapping of fields")
    secrets = _find_secrets(raw)
    if secrets:
        raise ConfigError(
            f"{path}: field '{secrets[0]}': secrets are read from environment variables only "
            f"(e.g. {ENV_PREFIX}BROKER__PASSWORD), never from the file"
        )
    try:
        config = GatewayConfig(**raw)
    except ValidationError as err:
        raise ConfigError(f"{path}: {describe_validation_error(err)}") from None
    base = path.resolve().parent
    broker_files = [(config.broker, name) for name in ("ca_file", "cert_file", "key_file")]
    for holder, attr in ((config, "roster"), (config.outbox, "path"), *broker_files):
        path_here = rebased(getattr(holder, attr), base)
        if path_here is not None:
            setattr(holder, attr, path_here)
    if config.profiles_dir is None:
        config.profiles_dir = DEFAULT_PROFILES
    elif not config.profiles_dir.is_absolute():
        config.profiles_dir = base / config.profiles_dir
    for station in config.stations:
        station.connection.rebase(base)
    try:
        profiles = load_profiles(config.profiles_dir)
    except ProfileError as err:
        raise ConfigError(str(err)) from None
    for i, station in enumerate(config.stations):
        profile = profiles.get(station.profile)
        where = f"{path}: field 'stations.{i}"
        if profile is None:
            raise ConfigError(
                f"{where}.profile': unknown profile {station.profile!r} "
                f"(known: {', '.join(sorted(profiles))})"
            )
        if profile.protocol != station.connection.type:
            raise ConfigError(
                f"{where}.connection.type': profile {profile.model} speaks "
                f"{profile.protocol}, not {station.connection.type}"
            )
        for problem in station.connection.env_problems():
            raise ConfigError(f"{where}.connection.{problem}")
    first: dict[str, StationConfig] = {}
    for i, station in enumerate(config.stations):
        conn = station.connection
        other = first.setdefault(conn.source_key(station.id), station)
        for name in conn.shared_settings() if other is not station else ():
            mine, theirs = getattr(conn, name), getattr(other.connection, name)
            if mine != theirs:
                raise ConfigError(
                    f"{path}: field 'stations.{i}.connection.{name}': station {station.id} "
                    f"says {mine!r} but station {other.id}, on the same connection, says "
                    f"{theirs!r}; stations sharing a connection share one client and must agree"
                )
    if config.roster is not None and not config.roster.is_file():
        raise ConfigError(f"{path}: field 'roster': {config.roster} does not exist")
    try:
        load_roster(config.roster)
    except RosterError as err:
        raise ConfigError(f"{path}: field 'roster': {err}") from None
    return config, profiles
