"""Device profiles: which raw signal of a device model means what.

A new device model gets a new YAML file, not new code. Profiles are validated
at start-up; a mistake is reported with the file and the field, before the
agent touches a device.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from takt_wire.errors import describe_validation_error
from takt_wire.events import Name

CANONICAL_STATE = r"^(running|idle|down:[A-Za-z0-9_.:\-]+)$"
CanonicalState = Annotated[str, Field(pattern=CANONICAL_STATE)]


class ProfileError(ValueError):
    """A profile file that cannot be used; the message names the file and the field."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Signal(_Strict):
    """Where a value sits in a raw reading.

    ``at`` is a JSON path (``a.b.c``) or ``$topic.N`` for MQTT, the field key
    for a serial frame, the variable name (after ``<station>.``) for OPC UA.
    """

    at: str = Field(min_length=1)


class CounterSignal(Signal):
    kind: Literal["cumulative", "pulse"] = Field(
        default="cumulative",
        description="cumulative: a counter that only grows (rolls over at its bit width); "
        "pulse: the value is the number of units in this reading (true = 1).",
    )
    bits: int = Field(default=16, ge=8, le=64, description="Counter width; it wraps at 2**bits.")
    rollover_window: int | None = Field(
        default=None,
        ge=1,
        description="A drop counts as a rollover only when the wrapped delta is at most this "
        "(default 2**bits / 16); any other drop is a device restart.",
    )


class DefectSignal(_Strict):
    mode: Literal["per_code", "total_and_last_code"]
    at: str = Field(
        min_length=1,
        description="per_code: a map code→count at this path, a 'code:n,code:n' string "
        "(format: pairs), or a variable name with '{code}' (OPC UA); "
        "total_and_last_code: the total reject counter.",
    )
    format: Literal["map", "pairs", "pattern"] = "map"
    last_code: str | None = Field(default=None, description="Last defect code (total mode).")
    bits: int = Field(default=16, ge=8, le=64)
    rollover_window: int | None = Field(default=None, ge=1)

    @model_validator(mode="after")
    def _consistent(self) -> DefectSignal:
        if self.mode == "total_and_last_code" and self.last_code is None:
            raise ValueError("mode total_and_last_code needs last_code")
        if self.format == "pattern" and "{code}" not in self.at:
            raise ValueError("format pattern needs '{code}' in at")
        return self


class OperatorSignal(Signal):
    """The badge in force at `at`, or (with `action_at`) login/logout events carrying a badge."""

    nobody: list[str] = Field(
        default_factory=lambda: [""], description="Values meaning logged out."
    )
    action_at: str | None = Field(
        default=None,
        description="Where a login/logout event's action is; then `at` is the badge of that "
        "event, and readings without an action leave the operator unchanged.",
    )
    login: list[str] = Field(default_factory=lambda: ["login"], description="Login actions.")
    logout: list[str] = Field(default_factory=lambda: ["logout"], description="Logout actions.")


class StateSignal(Signal):
    map: dict[str, CanonicalState] = Field(
        min_length=1, description="Raw value (as text) → running | idle | down:<reason>."
    )
    unknown: CanonicalState = Field(default="down:unknown", description="For unmapped values.")
    excused: list[str] | None = Field(
        default=None,
        description="Down reasons excluded from effective time (default: every down reason).",
    )

    @field_validator("map", mode="before")
    @classmethod
    def _keys_as_text(cls, value: object) -> object:
        if isinstance(value, dict):
            return {str(k): v for k, v in value.items()}
        return value


class TimeSignal(_Strict):
    at: str | None = None
    format: Literal["epoch_ms", "epoch_s", "iso8601", "source_timestamp"] = "epoch_ms"

    @model_validator(mode="after")
    def _needs_at(self) -> TimeSignal:
        if self.format != "source_timestamp" and not self.at:
            raise ValueError(f"time format {self.format} needs 'at'")
        return self


class Signals(_Strict):
    good: CounterSignal
    defects: DefectSignal | None = None
    operator: OperatorSignal | None = None
    state: StateSignal | None = None
    cycle_time: Signal | None = None
    time: TimeSignal | None = None


class OpcuaBinding(_Strict):
    namespace_uri: str = Field(min_length=1)
    node: str = Field(
        default="{station}.{name}", description="String NodeId of a signal's variable."
    )
    station_object: str | None = Field(
        default="{station}", description="String NodeId of the station object (browsed for codes)."
    )
    publishing_interval_ms: float = Field(default=100, gt=0)
    queue_size: int = Field(default=1000, ge=2, description="Server-side queue per item (> 1).")
    extra_nodes: list[str] = Field(
        default_factory=lambda: ["Heartbeat"],
        description="Variables subscribed only to advance the clock.",
    )


class MqttBinding(_Strict):
    topics: list[str] = Field(
        min_length=1, description="Topic templates with {line} and {station}."
    )


class Framing(_Strict):
    start: int = Field(default=0x02, ge=0, le=255)
    end: int = Field(default=0x03, ge=0, le=255)
    checksum: Literal["xor_hex", "none"] = "xor_hex"
    terminator: str = "\r\n"
    field_separator: str = Field(default="|", min_length=1)
    key_value_separator: str = Field(default="=", min_length=1)
    max_frame_bytes: int = Field(default=4096, ge=16)


class SerialBinding(_Strict):
    baudrate: int = 115200
    bytesize: Literal[5, 6, 7, 8] = 8
    parity: Literal["N", "E", "O"] = "N"
    stopbits: Literal[1, 2] = 1
    framing: Framing = Field(default_factory=Framing)


class DeviceProfile(_Strict):
    model: Name
    protocol: Literal["opcua", "mqtt", "serial"]
    description: str = ""
    time_source: Literal["device", "gateway"]
    signals: Signals
    opcua: OpcuaBinding | None = None
    mqtt: MqttBinding | None = None
    serial: SerialBinding | None = None

    @model_validator(mode="after")
    def _binding_and_clock(self) -> DeviceProfile:
        if getattr(self, self.protocol) is None:
            raise ValueError(f"protocol {self.protocol} needs a '{self.protocol}' section")
        if self.time_source == "device" and self.signals.time is None:
            raise ValueError("time_source device needs signals.time")
        defects = self.signals.defects
        if defects and defects.format == "pattern" and self.protocol != "opcua":
            raise ValueError("defects format 'pattern' is for OPC UA variables only")
        return self


def load_profile(path: Path) -> DeviceProfile:
    """Read and validate one profile; a ProfileError names the file and the field."""
    try:
        raw = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as err:
        raise ProfileError(f"{path}: cannot read: {err}") from None
    if not isinstance(raw, dict):
        raise ProfileError(f"{path}: a profile is a mapping of fields")
    try:
        return DeviceProfile.model_validate(raw)
    except ValidationError as err:
        raise ProfileError(f"{path}: {describe_validation_error(err)}") from None


def load_profiles(folder: Path) -> dict[str, DeviceProfile]:
    """All profiles of a folder, keyed by model; duplicate models are an error."""
    profiles: dict[str, DeviceProfile] = {}
    files = sorted(folder.glob("*.yaml")) + sorted(folder.glob("*.yml"))
    if not files:
        raise ProfileError(f"{folder}: no device profiles (*.yaml) found")
    for path in files:
        profile = load_profile(path)
        if profile.model in profiles:
            raise ProfileError(f"{path}: field 'model': {profile.model!r} is defined twice")
        profiles[profile.model] = profile
    return profiles


_CODE_RE = re.compile(r"^[A-Za-z0-9_.:\-]+$")


def is_code(text: str) -> bool:
    """A defect code or down reason that can travel on the wire."""
    return bool(_CODE_RE.match(text)) and len(text) <= 64


def json_schema() -> dict[str, object]:
    """JSON Schema of a device profile (docs/schema/device-profile.schema.json)."""
    return DeviceProfile.model_json_schema()
