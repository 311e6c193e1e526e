"""Device profiles: which raw signal of a device model means what.

A new device model gets a new YAML file, not new code. Profiles are validated
at start-up; a mistake is reported with the file and the field, before the
agent touches a device.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, create_model, model_validator

from edge_agent.signals import (
    CANONICAL_STATE,
    CounterSignal,
    DefectSignal,
    OperatorSignal,
    Signal,
    Signals,
    StateSignal,
    TimeSignal,
    is_code,
)
from edge_agent.sources.registry import protocols
from takt_common.errors import ConfigError, Problem
from takt_common.settings import did_you_mean, load_model
from takt_wire.events import Name

__all__ = [
    "CANONICAL_STATE",
    "CounterSignal",
    "DefectSignal",
    "DeviceProfile",
    "OperatorSignal",
    "ProfileBase",
    "ProfileError",
    "Signal",
    "Signals",
    "StateSignal",
    "TimeSignal",
    "is_code",
    "json_schema",
    "load_profile",
    "load_profiles",
]


class ProfileError(ConfigError):
    """A profile file that cannot be used; each problem names the file, line and field."""


S = TypeVar("S", bound=BaseModel)


class ProfileBase(BaseModel):
    """A device model: what its signals mean, and one section for its protocol.

    The protocol sections (``opcua:``, ``serial:``, ...) are added from the
    protocol registry: :data:`DeviceProfile` is this class with one optional
    section per registered protocol.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: Name
    protocol: str
    description: str = ""
    time_source: Literal["device", "gateway"]
    signals: Signals

    def section(self, kind: type[S]) -> S:
        """This profile's protocol section, as the protocol's own model."""
        value = getattr(self, self.protocol, None)
        if not isinstance(value, kind):
            raise TypeError(f"profile {self.model} has no {kind.__name__} section")
        return value

    @model_validator(mode="after")
    def _binding_and_clock(self) -> ProfileBase:
        if getattr(self, self.protocol, None) is None:
            raise ValueError(f"protocol {self.protocol} needs a '{self.protocol}' section")
        for name in protocols():
            if name != self.protocol and getattr(self, name, None) is not None:
                raise ValueError(f"protocol {self.protocol} takes no '{name}' section")
        if self.time_source == "device" and self.signals.time is None:
            raise ValueError("time_source device needs signals.time")
        defects = self.signals.defects
        allowed = protocols()[self.protocol].defect_formats
        if defects and defects.kind == "counter" and defects.format not in allowed:
            raise ValueError(
                f"defects format {defects.format!r} is not available over {self.protocol} "
                f"(use one of {', '.join(sorted(allowed))})"
            )
        return self


_SECTIONS: dict[str, Any] = {
    name: (spec.section | None, None) for name, spec in protocols().items()
}
if TYPE_CHECKING:
    DeviceProfile = ProfileBase
else:
    DeviceProfile = create_model(
        "DeviceProfile",
        __base__=ProfileBase,
        protocol=(Literal.__getitem__(tuple(protocols())), ...),
        **_SECTIONS,
    )
    """The profile model: one optional section per registered protocol."""


def _state_hint(loc: tuple[str, ...], value: object) -> str | None:
    """Advice for a state name a profile gets wrong ('runing' -> 'running')."""
    if "state" not in loc or not isinstance(value, str):
        return None
    if value.startswith("down"):
        return "a down state is 'down:<reason>', e.g. 'down:jam'"
    close = did_you_mean(value, ["running", "idle"]).strip(" ()")
    return close or "a state is running, idle or down:<reason>"


def load_profile(path: Path) -> DeviceProfile:
    """Read and validate one profile; a ProfileError lists every problem with file and line."""
    try:
        return load_model(DeviceProfile, path, hint=_state_hint)
    except ConfigError as err:
        raise ProfileError(err.problems) from None


def load_profiles(folder: Path) -> dict[str, DeviceProfile]:
    """All profiles of a folder, keyed by model; every broken file and duplicate reported."""
    profiles: dict[str, DeviceProfile] = {}
    files = sorted(folder.glob("*.yaml")) + sorted(folder.glob("*.yml"))
    if not files:
        raise ProfileError(f"{folder}: no device profiles (*.yaml) found")
    problems: list[Problem] = []
    for path in files:
        try:
            profile = load_profile(path)
        except ProfileError as err:
            problems += err.problems
            continue
        if profile.model in profiles:
            problems.append(
                Problem(f"{profile.model!r} is defined twice", field="model", file=str(path))
            )
        profiles[profile.model] = profile
    if problems:
        raise ProfileError(problems)
    return profiles


def json_schema() -> dict[str, object]:
    """JSON Schema of a device profile (docs/schema/device-profile.schema.json)."""
    return DeviceProfile.model_json_schema()
