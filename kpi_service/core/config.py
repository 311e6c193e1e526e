"""Settings of the KPI service: environment variables (``TAKT_KPI_*``) over an optional YAML file.

Secrets only ever come from the environment; outside development the service refuses
to start with an empty or default secret, naming the field, so a forgotten variable
cannot silently expose worker data.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import time
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator
from pydantic_settings import SettingsConfigDict

from takt_common.errors import ConfigError as ConfigError
from takt_common.settings import TaktSettings
from takt_common.settings import load_settings as load_file_settings
from takt_store.settings import InfluxSettings

DEFAULT_SECRET = "change-me"

RENAMED = {
    "influx_url": "influx.url",
    "influx_db": "influx.database",
    "influx_username": "influx.username",
    "influx_password": "influx.password",
    "influx_rp_raw": "influx.raw_rp",
    "influx_rp_rollup": "influx.rollup_rp",
    "influx_timeout_s": "influx.timeout_s",
}
"""Flat names of before the shared ``influx:`` section; accepted with a warning for one release."""
CONFIG_FILE_ENV = "TAKT_KPI_CONFIG_FILE"


class BreakDef(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    start: time
    end: time


class ShiftDef(BaseModel):
    """A named shift in local time; ``end <= start`` means it ends the next day (overnight)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str = Field(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9_\-]+$")
    start: time
    end: time
    breaks: tuple[BreakDef, ...] = ()
    weekdays: tuple[int, ...] = Field(
        default=(0, 1, 2, 3, 4, 5, 6), description="ISO weekday numbers 0=Mon..6=Sun."
    )


class Standard(BaseModel):
    """Standard cycle time of a station (optionally only on one line)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    station: str
    line: str | None = None
    cycle_s: float = Field(gt=0, allow_inf_nan=False)


class Band(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str
    fraction: float = Field(gt=0, le=1)


def _default_shifts() -> list[ShiftDef]:
    return [
        ShiftDef(
            name="early",
            start=time(6),
            end=time(14),
            breaks=(BreakDef(start=time(10), end=time(10, 30)),),
        ),
        ShiftDef(
            name="late",
            start=time(14),
            end=time(22),
            breaks=(BreakDef(start=time(18), end=time(18, 30)),),
        ),
        ShiftDef(
            name="night",
            start=time(22),
            end=time(6),
            breaks=(BreakDef(start=time(2), end=time(2, 30)),),
        ),
    ]


def _default_bands() -> list[Band]:
    return [
        Band(name="top", fraction=0.25),
        Band(name="middle", fraction=0.55),
        Band(name="bottom", fraction=0.20),
    ]


MIN_SECRET_CHARS = 16
"""A key shorter than this is guessable (API key hashes and pseudonyms depend on it)."""


class Settings(TaktSettings):
    """Everything the KPI service needs; see docs/kpi-service.md for each field.

    The YAML file is named by ``TAKT_KPI_CONFIG_FILE`` (also when the settings are
    built directly); the environment overrides it.
    """

    model_config = SettingsConfigDict(
        env_prefix="TAKT_KPI_", env_nested_delimiter="__", extra="forbid"
    )
    config_file_env: ClassVar[str | None] = CONFIG_FILE_ENV
    renamed: ClassVar[Mapping[str, str]] = RENAMED

    environment: Literal["development", "production"] = "production"

    influx: InfluxSettings = Field(
        default_factory=InfluxSettings,
        description="The InfluxDB the collector writes (the same section as the collector's); "
        "the password from TAKT_KPI_INFLUX__PASSWORD.",
    )
    use_rollups: bool = Field(
        default=True,
        description="Read rollups: hourly for whole hours, daily and monthly for whole "
        "local days and months when the collector keeps them in this timezone.",
    )

    secret_key: SecretStr = Field(
        default=SecretStr(DEFAULT_SECRET), description="Pepper for API key hashes."
    )
    pseudonymise: bool = False
    pseudonym_key: SecretStr | None = None

    state_dir: Path = Path("var/kpi")
    database_url: SecretStr | None = Field(
        default=None,
        description="SQLAlchemy URL of the relational store (keys, audit, schemes, targets); "
        "e.g. postgresql+psycopg://takt:PASSWORD@db/takt. Default: SQLite file "
        "state_dir/takt.sqlite. May hold a password, so environment only.",
    )
    timezone: str = "UTC"
    shifts: list[ShiftDef] = Field(default_factory=_default_shifts)
    standards: list[Standard] = Field(default_factory=list)
    bands: list[Band] = Field(default_factory=_default_bands)
    max_page_size: int = Field(default=500, ge=1, le=10_000)
    max_evidence_rows: int = Field(default=5_000, ge=1, le=100_000)
    distribution_min_workers: int = Field(
        default=5,
        ge=1,
        le=10_000,
        description="A distribution over fewer comparable workers carries a warning: "
        "percentiles of a handful of people single them out and mean little.",
    )
    distribution_min_effective_hours: float = Field(
        default=1.0,
        ge=0,
        le=10_000,
        description="Workers with less effective time in the period are left out of a "
        "distribution (default of the endpoint's min_effective_hours).",
    )
    max_body_bytes: int = Field(
        default=1_048_576,
        ge=1024,
        le=64 * 1_048_576,
        description="Largest request body accepted (413 beyond); read only after the key "
        "was checked.",
    )
    max_buckets: int = Field(
        default=2_500,
        ge=1,
        le=100_000,
        description="Calendar buckets one KPI request may ask for (422 beyond, before "
        "anything is fetched): a year by shift, or about three months by hour.",
    )
    max_rows: int = Field(
        default=200_000,
        ge=1,
        le=10_000_000,
        description="KPI rows (entities x buckets) one request may compute (422 beyond, "
        "checked before computing).",
    )

    @model_validator(mode="after")
    def _checked(self) -> Settings:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError) as err:
            raise ValueError(f"timezone: unknown time zone {self.timezone!r}") from err
        names = [s.name for s in self.shifts]
        if len(set(names)) != len(names):
            raise ValueError("shifts: shift names must be unique")
        if abs(sum(b.fraction for b in self.bands) - 1.0) > 1e-9:
            raise ValueError("bands: fractions must add up to 1")
        if self.environment != "development":
            secret = self.secret_key.get_secret_value()
            if not secret or secret == DEFAULT_SECRET:
                raise ValueError(
                    "secret_key: set TAKT_KPI_SECRET_KEY to a random secret outside development"
                )
            if len(secret) < MIN_SECRET_CHARS:
                raise ValueError(
                    f"secret_key: TAKT_KPI_SECRET_KEY has {len(secret)} characters; at least "
                    f"{MIN_SECRET_CHARS} outside development"
                )
        if self.pseudonymise:
            key = self.pseudonym_key.get_secret_value() if self.pseudonym_key else ""
            if not key or (self.environment != "development" and key == DEFAULT_SECRET):
                raise ValueError("pseudonym_key: pseudonymise is on; set TAKT_KPI_PSEUDONYM_KEY")
            if self.environment != "development" and len(key) < MIN_SECRET_CHARS:
                raise ValueError(
                    f"pseudonym_key: TAKT_KPI_PSEUDONYM_KEY has {len(key)} characters; at least "
                    f"{MIN_SECRET_CHARS} outside development"
                )
        return self

    # Read-only aliases of the flat names, for code not yet moved to ``settings.influx``.
    @property
    def influx_url(self) -> str:
        return self.influx.url

    @property
    def influx_db(self) -> str:
        return self.influx.database

    @property
    def influx_username(self) -> str | None:
        return self.influx.username

    @property
    def influx_password(self) -> SecretStr | None:
        return self.influx.password

    @property
    def store_url(self) -> str:
        """The relational store: ``database_url``, else SQLite in ``state_dir``."""
        if self.database_url is not None:
            return self.database_url.get_secret_value()
        return f"sqlite:///{self.state_dir / 'takt.sqlite'}"

    @property
    def keys_db(self) -> str:
        """Where API keys live (the store; kept as a name of its own for callers)."""
        return self.store_url

    @property
    def audit_db(self) -> str:
        return self.store_url


def load_settings(**overrides: Any) -> Settings:
    """Build settings from ``TAKT_KPI_CONFIG_FILE`` and the environment; a ConfigError
    lists every problem with file, line and field."""
    path = os.environ.get(CONFIG_FILE_ENV)
    return load_file_settings(Settings, Path(path) if path else None, **overrides)
