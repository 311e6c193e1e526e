"""Gateway configuration: YAML file + environment overrides (pydantic-settings).

Secrets (broker password, OPC UA / device-broker passwords, pseudonymisation and
signing keys) come from environment variables only; a secret in the YAML file
is refused, so it never lands in a repository. Errors name the file and field.
"""

from __future__ import annotations

import operator
from functools import reduce
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator
from pydantic_settings import SettingsConfigDict

from edge_agent.attribution import DEFAULT_MAX_AHEAD_S
from edge_agent.outbox import OnFull
from edge_agent.profile import DeviceProfile, load_profiles
from edge_agent.roster import RosterError, load_roster
from edge_agent.sources.connection import ConnectionModel, rebased
from edge_agent.sources.registry import protocols
from takt_common.errors import ConfigError as ConfigError
from takt_common.errors import Problem
from takt_common.settings import TaktSettings, did_you_mean, load_settings
from takt_common.yamlfile import Document, read_yaml
from takt_wire.batch import MAX_BATCH_EVENTS, MAX_PAYLOAD_BYTES
from takt_wire.events import Name
from takt_wire.signing import key_agent

ENV_PREFIX = "TAKT_AGENT_"
SECRET_KEYS = frozenset({"password", "pseudonym_key", "signing_key", "private_key_password"})
DEFAULT_PROFILES = Path(__file__).resolve().parent.parent / "device_profiles"


MIN_SIGNING_KEY_CHARS = 16
"""An HMAC key shorter than this is guessable; an empty one would sign nothing."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class BrokerConfig(_Strict):
    host: str = "127.0.0.1"
    port: int = Field(default=1883, ge=1, le=65535)
    tls: bool = False
    ca_file: Path | None = None
    username: str | None = None
    password: SecretStr | None = Field(default=None, description="Env only.")
    allow_anonymous: bool = Field(
        default=False, description="Must be set explicitly to connect without a username."
    )
    client_id: str | None = None
    keepalive: int = Field(default=30, ge=5)
    reconnect_max_s: float = Field(default=15.0, gt=0)

    @model_validator(mode="after")
    def _no_anonymous_by_accident(self) -> BrokerConfig:
        if not self.username and not self.allow_anonymous:
            raise ValueError(
                "no username: set broker.username (password from env) "
                "or broker.allow_anonymous: true for a test broker"
            )
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


class GatewayConfig(TaktSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_nested_delimiter="__", extra="forbid"
    )
    secret_names: ClassVar[frozenset[str]] = SECRET_KEYS

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


def _station_problems(
    doc: Document, config: GatewayConfig | None, profiles: dict[str, DeviceProfile]
) -> list[Problem]:
    """Stations that name an unknown profile, or one of another protocol."""
    problems: list[Problem] = []
    stations = doc.data.get("stations")
    for i, raw in enumerate(stations if isinstance(stations, list) else []):
        if not isinstance(raw, dict) or not isinstance(raw.get("profile"), str):
            continue
        name = raw["profile"]
        profile = profiles.get(name)
        if profile is None:
            problems.append(
                doc.problem(
                    ("stations", i, "profile"),
                    f"unknown profile {name!r}{did_you_mean(name, sorted(profiles))} "
                    f"(known: {', '.join(sorted(profiles))})",
                )
            )
            continue
        if config is None:
            continue
        station = config.stations[i]
        if profile.protocol != station.connection.type:
            problems.append(
                doc.problem(
                    ("stations", i, "connection", "type"),
                    f"profile {profile.model} speaks {profile.protocol}, "
                    f"not {station.connection.type}",
                )
            )
        for problem in station.connection.env_problems():
            field, _, message = problem.partition("'")
            problems.append(doc.problem(("stations", i, "connection", field), message.lstrip(": ")))
    return problems


def _shared_problems(doc: Document, config: GatewayConfig) -> list[Problem]:
    """Stations on one connection (one client) that disagree about its settings."""
    problems: list[Problem] = []
    first: dict[str, int] = {}
    for i, station in enumerate(config.stations):
        conn = station.connection
        j = first.setdefault(conn.source_key(station.id), i)
        other = config.stations[j]
        for name in conn.shared_settings() if j != i else ():
            mine, theirs = getattr(conn, name), getattr(other.connection, name)
            if mine != theirs:
                problems.append(
                    doc.problem(
                        ("stations", i, "connection", name),
                        f"station {station.id} ('stations.{i}.connection.{name}') says "
                        f"{mine!r} but station {other.id} ('stations.{j}.connection.{name}'), "
                        f"on the same connection, says {theirs!r}; stations sharing a "
                        "connection share one client and must agree",
                    )
                )
    return problems


def _profiles_dir(doc: Document, config: GatewayConfig | None) -> Path:
    base = Path(doc.file).resolve().parent
    raw = config.profiles_dir if config is not None else doc.data.get("profiles_dir")
    if not raw:
        return DEFAULT_PROFILES
    folder = Path(str(raw))
    return folder if folder.is_absolute() else base / folder


def load_config(path: Path) -> tuple[GatewayConfig, dict[str, DeviceProfile]]:
    """Read, validate and cross-check a gateway config and the profiles it uses.

    Every problem of the file (and of the profiles and roster it names) is
    reported at once in one ConfigError, each with file, line and field.
    """
    doc = read_yaml(path, what="the gateway config")
    problems: list[Problem] = []
    config: GatewayConfig | None = None
    try:
        config = load_settings(GatewayConfig, path)
    except ConfigError as err:
        problems += err.problems
    profiles: dict[str, DeviceProfile] = {}
    try:
        profiles = load_profiles(_profiles_dir(doc, config))
    except ConfigError as err:
        problems += err.problems
    problems += _station_problems(doc, config, profiles)
    if config is None or problems:
        raise ConfigError(problems)
    base = path.resolve().parent
    for holder, attr in ((config, "roster"), (config.outbox, "path"), (config.broker, "ca_file")):
        path_here = rebased(getattr(holder, attr), base)
        if path_here is not None:
            setattr(holder, attr, path_here)
    config.profiles_dir = _profiles_dir(doc, config)
    for station in config.stations:
        station.connection.rebase(base)
    problems += _shared_problems(doc, config)
    if config.roster is not None and not config.roster.is_file():
        problems.append(doc.problem(("roster",), f"{config.roster} does not exist"))
    else:
        try:
            load_roster(config.roster)
        except RosterError as err:
            problems.append(doc.problem(("roster",), str(err)))
    if problems:
        raise ConfigError(problems)
    return config, profiles
