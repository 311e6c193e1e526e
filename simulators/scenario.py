"""The scenario file: a shop floor described in YAML, validated before anything runs.

All times inside a scenario are *offsets from ``start``* (``90``, ``"90s"``,
``"1h30m"``, ``"01:30:00"``), so a scenario reads like a shift plan and can be
moved to another day by changing one line.
"""

from __future__ import annotations

import itertools
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Literal, Self

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from takt_common.errors import TaktError

Protocol = Literal["opcua", "mqtt", "serial", "modbus"]
DownReason = Literal["fault", "starved", "maintenance", "blocked", "idle"]
EXCUSED: frozenset[str] = frozenset({"fault", "starved", "maintenance", "blocked"})
STATE_CODE: dict[str, int] = {
    "idle": 0,
    "running": 1,
    "fault": 2,
    "starved": 3,
    "maintenance": 4,
    "blocked": 5,
}
DEFAULT_MODEL: dict[str, str] = {
    "opcua": "takt-sim-plc",
    "mqtt": "takt-sim-counter",
    "serial": "takt-sim-serialbox",
    "modbus": "takt-sim-modbus",
}

_UNITS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
_UNIT_RE = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")


class ScenarioError(TaktError, ValueError):
    """A scenario file that cannot be run; the message names the file and the field."""


def parse_duration(value: object) -> float:
    """Seconds from ``90``, ``"90s"``, ``"1h30m"``, ``"250ms"`` or ``"01:30:00"``."""
    if isinstance(value, bool):
        raise ValueError("a duration, not a boolean")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip().replace(" ", "")
        if ":" in text:
            parts = text.split(":")
            if len(parts) not in (2, 3) or not all(p.replace(".", "", 1).isdigit() for p in parts):
                raise ValueError(f"{value!r} is not H:MM or H:MM:SS")
            nums = [float(p) for p in parts] + [0.0] * (3 - len(parts))
            seconds = nums[0] * 3600 + nums[1] * 60 + nums[2]
        else:
            matches = list(_UNIT_RE.finditer(text))
            if not matches or "".join(m.group(0) for m in matches) != text:
                try:
                    seconds = float(text)
                except ValueError:
                    raise ValueError(
                        f"{value!r} is not a duration (use 90, '90s', '1h30m' or '01:30:00')"
                    ) from None
            else:
                seconds = sum(float(m.group(1)) * _UNITS[m.group(2)] for m in matches)
    else:
        raise ValueError(f"{value!r} is not a duration")
    if seconds != seconds or seconds < 0 or seconds == float("inf"):
        raise ValueError(f"{value!r} must be a finite, non-negative duration")
    return seconds


Seconds = Annotated[float, BeforeValidator(parse_duration)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Interval(_Model):
    start: Seconds
    end: Seconds

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.end <= self.start:
            raise ValueError(f"end ({self.end}s) must be after start ({self.start}s)")
        return self


class Downtime(Interval):
    """The machine is down (or idle) for a reason; excused reasons do not count against anyone."""

    reason: DownReason


class Unplug(_Model):
    """The serial cable is pulled at ``at`` and plugged back after ``for`` (simulated time)."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)
    at: Seconds
    duration: Seconds = Field(alias="for", gt=0)


class CycleTime(_Model):
    """Cycle-time distribution relative to the station's standard cycle.

    ``pace`` 1.1 means 10 % faster than standard (mean = standard / pace); ``cv`` is
    the coefficient of variation; cycles never go below ``min_factor`` * standard.
    """

    dist: Literal["normal", "lognormal", "fixed"] = "lognormal"
    pace: float = Field(default=1.0, gt=0)
    cv: float = Field(default=0.1, ge=0, le=2)
    min_factor: float = Field(default=0.3, gt=0)


class Station(_Model):
    id: str = Field(pattern=r"^[A-Za-z0-9_-]{1,32}$")
    protocol: Protocol
    model: str = ""
    standard_cycle_s: float = Field(gt=0.5)
    defect_codes: list[str] = Field(default_factory=list)
    counter_start: int = Field(default=0, ge=0)  # good-unit counter at power-on
    downtime: list[Downtime] = Field(default_factory=list)
    restarts: list[Seconds] = Field(default_factory=list)
    unattended: list[Interval] = Field(default_factory=list)
    unattended_cycle: CycleTime = CycleTime()
    unattended_defect_rate: float = Field(default=0.0, ge=0, le=1)
    duplicate_p: float = Field(default=0.0, ge=0, le=1)
    corrupt_p: float = Field(default=0.0, ge=0, le=1)
    unplugs: list[Unplug] = Field(default_factory=list)
    modbus_transport: Literal["tcp", "rtu"] = "tcp"  # modbus: the TCP gateway or the RTU line

    @field_validator("defect_codes")
    @classmethod
    def _codes(cls, codes: list[str]) -> list[str]:
        for code in codes:
            if not re.fullmatch(r"[A-Za-z0-9_-]{1,16}", code):
                raise ValueError(f"defect code {code!r} must be 1-16 letters, digits, _ or -")
        if len(set(codes)) != len(codes):
            raise ValueError("defect codes must be unique")
        return codes

    @model_validator(mode="after")
    def _checks(self) -> Self:
        if not self.model:
            object.__setattr__(self, "model", DEFAULT_MODEL[self.protocol])
        if self.unplugs and self.protocol != "serial":
            raise ValueError("unplugs: only serial stations have a cable to pull")
        if self.corrupt_p and self.protocol != "serial":
            raise ValueError("corrupt_p: only serial frames are corrupted")
        if "modbus_transport" in self.model_fields_set and self.protocol != "modbus":
            raise ValueError("modbus_transport: only for modbus stations")
        if self.duplicate_p and self.protocol != "mqtt":
            raise ValueError("duplicate_p: only MQTT messages are duplicated")
        _no_overlap("downtime", self.downtime)
        _no_overlap("unattended", self.unattended)
        return self


class Line(_Model):
    id: str = Field(pattern=r"^[A-Za-z0-9_-]{1,32}$")
    stations: list[Station] = Field(min_length=1)


class Assignment(Interval):
    """The worker is logged in at ``station`` (badge on the reader) from start to end."""

    station: str


class DefectSpike(Interval):
    rate: float = Field(ge=0, le=1)


class Worker(_Model):
    id: str = Field(min_length=1, max_length=64)
    badge: str = Field(pattern=r"^[A-Za-z0-9]{1,32}$")
    shift: str
    cycle: CycleTime = CycleTime()
    defect_rate: float = Field(default=0.0, ge=0, le=1)
    defect_codes: dict[str, float] = Field(default_factory=dict)
    defect_spikes: list[DefectSpike] = Field(default_factory=list)
    assignments: list[Assignment] = Field(default_factory=list)

    @model_validator(mode="after")
    def _checks(self) -> Self:
        _no_overlap("assignments", self.assignments)
        if any(w < 0 for w in self.defect_codes.values()) or (
            self.defect_codes and sum(self.defect_codes.values()) <= 0
        ):
            raise ValueError("defect_codes: weights must be >= 0 and not all 0")
        return self


class Scenario(_Model):
    """A whole shop floor: what the devices will show and what truly happened."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    seed: int
    site: str = Field(default="site1", pattern=r"^[A-Za-z0-9_-]{1,32}$")
    start: datetime
    duration: Seconds = Field(gt=0)
    time_acceleration: float = Field(default=1.0, gt=0, le=100_000)
    tick: Seconds = Field(default=1.0, gt=0, le=1.0)
    counter_bits: int = Field(default=16, ge=8, le=32)
    ledger_bucket: Seconds = Field(default=3600.0, gt=0)
    shifts: dict[str, Interval] = Field(min_length=1)
    lines: list[Line] = Field(min_length=1)
    workers: list[Worker] = Field(default_factory=list)

    @field_validator("tick")
    @classmethod
    def _tick_divides_a_second(cls, value: float) -> float:
        ms = round(value * 1000)
        if ms < 1 or 1000 % ms:
            raise ValueError("tick must divide one second (e.g. 1s, 500ms, 100ms)")
        return ms / 1000

    @field_validator("start")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("start needs a time zone, e.g. 2026-03-14T06:00:00Z")
        if value.microsecond % 1000:
            raise ValueError("start must be a whole millisecond")
        return value.astimezone(UTC)

    def stations(self) -> list[tuple[Line, Station]]:
        return [(line, st) for line in self.lines for st in line.stations]

    def station(self, station_id: str) -> tuple[Line, Station]:
        for line, st in self.stations():
            if st.id == station_id:
                return line, st
        raise KeyError(station_id)

    @model_validator(mode="after")
    def _cross_checks(self) -> Self:
        ids = [st.id for _, st in self.stations()]
        dup = {s for s in ids if ids.count(s) > 1}
        if dup:
            raise ValueError(f"lines: station ids must be unique, repeated: {sorted(dup)}")
        stations = {st.id: st for _, st in self.stations()}
        for _, st in self.stations():
            for what, items in (("downtime", st.downtime), ("unattended", st.unattended)):
                for item in items:
                    if item.end > self.duration:
                        raise ValueError(f"station {st.id}: {what} ends after the scenario")
            for at in [*st.restarts, *(u.at for u in st.unplugs)]:
                if at >= self.duration:
                    raise ValueError(f"station {st.id}: restart/unplug at {at}s is after the end")
        _unique("workers", [w.id for w in self.workers], "id")
        _unique("workers", [w.badge for w in self.workers], "badge")
        for worker in self.workers:
            where = f"worker {worker.id}"
            if worker.shift not in self.shifts:
                raise ValueError(f"{where}: shift {worker.shift!r} is not in shifts")
            shift = self.shifts[worker.shift]
            for a in worker.assignments:
                if a.station not in stations:
                    raise ValueError(f"{where}: station {a.station!r} does not exist")
                if a.start < shift.start or a.end > shift.end:
                    raise ValueError(f"{where}: assignment {a.start}-{a.end}s is outside shift")
                st = stations[a.station]
                unknown = set(worker.defect_codes) - set(st.defect_codes)
                if worker.defect_rate and unknown:
                    raise ValueError(f"{where}: codes {sorted(unknown)} not listed at {st.id}")
                if worker.defect_rate and not st.defect_codes:
                    raise ValueError(f"{where}: defect_rate > 0 but {st.id} lists no codes")
        for st_id in stations:
            taken = [(a, w.id) for w in self.workers for a in w.assignments if a.station == st_id]
            taken.sort(key=lambda x: x[0].start)
            for (a, wa), (b, wb) in itertools.pairwise(taken):
                if b.start < a.end:
                    raise ValueError(
                        f"station {st_id}: {wa} and {wb} are logged in at the same time"
                    )
            for un in stations[st_id].unattended:
                for a, wid in taken:
                    if a.start < un.end and un.start < a.end:
                        raise ValueError(
                            f"station {st_id}: unattended run overlaps {wid}'s assignment"
                        )
        return self


def _unique(where: str, values: list[str], field: str) -> None:
    dup = sorted({v for v in values if values.count(v) > 1})
    if dup:
        raise ValueError(f"{where}: {field} must be unique, repeated: {dup}")


def _no_overlap(where: str, items: list[Downtime] | list[Interval] | list[Assignment]) -> None:
    ordered = sorted(items, key=lambda i: i.start)
    for a, b in itertools.pairwise(ordered):
        if b.start < a.end:
            raise ValueError(f"{where}: {a.start}-{a.end}s and {b.start}-{b.end}s overlap")


def _where(raw: object, loc: tuple[int | str, ...]) -> str:
    """``lines.0.stations.2.protocol`` plus the ids met on the way: ``lines.0[L1]...``."""
    parts: list[str] = []
    node = raw
    for key in loc:
        part = str(key)
        try:
            node = node[key]  # type: ignore[index]
        except (KeyError, IndexError, TypeError):
            node = None
        if isinstance(key, int) and isinstance(node, dict) and isinstance(node.get("id"), str):
            part += f"[{node['id']}]"
        parts.append(part)
    return ".".join(parts) or "(top level)"


def load_scenario(path: Path) -> Scenario:
    """Read and validate a scenario; any problem is a ScenarioError naming file and field."""
    try:
        raw = yaml.safe_load(path.read_text())
    except OSError as err:
        raise ScenarioError(f"{path}: cannot read: {err.strerror}") from err
    except yaml.YAMLError as err:
        raise ScenarioError(f"{path}: not valid YAML: {err}") from err
    if not isinstance(raw, dict):
        raise ScenarioError(f"{path}: expected a mapping at the top level")
    try:
        return Scenario.model_validate(raw)
    except ValidationError as err:
        problems = [f"  {_where(raw, e['loc'])}: {e['msg']}" for e in err.errors()]
        raise ScenarioError(f"{path}: invalid scenario:\n" + "\n".join(problems)) from err
