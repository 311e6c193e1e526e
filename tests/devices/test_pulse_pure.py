"""``defects: kind: pulse`` as pure functions: the mapping and the Modbus edge detector.

Each expectation is written out by hand from the profile doc (one reading, one
defect event; the count at ``at``; a list of codes is one defect per entry), not
computed with the code under test.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from edge_agent.attribution import StationInfo, StationTracker
from edge_agent.mapping import RawReading, map_reading
from edge_agent.profile import DeviceProfile
from edge_agent.signals import DefectSignal
from edge_agent.sources.modbus.decode import blocks, decode, events, unpack
from edge_agent.sources.modbus.models import Register

NOW = datetime(2026, 11, 23, 6, 0, tzinfo=UTC)


def profile(defects: dict[str, Any], protocol: str = "mqtt") -> Any:
    section = {
        "mqtt": {"topics": ["t/{line}/{station}"]},
        "modbus": {"registers": {"GOOD": {"address": 0}, "DEF": {"table": "coil", "address": 0}}},
    }[protocol]
    return DeviceProfile.model_validate(
        {
            "model": "pulse-box",
            "protocol": protocol,
            "time_source": "gateway",
            "signals": {"good": {"at": "GOOD", "kind": "pulse"}, "defects": defects},
            protocol: section,
        }
    )


def pulses(defects: dict[str, Any], values: dict[str, Any]) -> tuple[dict[str, int], list[str]]:
    reading = map_reading(RawReading("S1", values), profile(defects))
    return reading.defect_pulses, reading.problems


def test_code_only_one_defect_per_reading() -> None:
    spec = {"kind": "pulse", "code": "reject.code"}
    assert pulses(spec, {"reject": {"code": "E07"}}) == ({"E07": 1}, [])
    assert pulses(spec, {"GOOD": 1}) == ({}, [])  # a good part: no defect
    assert pulses(spec, {"reject": {"code": ""}}) == ({}, [])


def test_a_list_of_codes_is_a_burst() -> None:
    spec = {"kind": "pulse", "code": "codes"}
    assert pulses(spec, {"codes": ["E07", "E12", "E07"]}) == ({"E07": 2, "E12": 1}, [])


def test_count_and_code() -> None:
    spec = {"kind": "pulse", "at": "DEF", "code": "CODE"}
    assert pulses(spec, {"DEF": True, "CODE": "E07"}) == ({"E07": 1}, [])
    assert pulses(spec, {"DEF": "3", "CODE": "E12"}) == ({"E12": 3}, [])
    assert pulses(spec, {"DEF": 0, "CODE": "E12"}) == ({}, [])
    assert pulses(spec, {"DEF": False, "CODE": "E12"}) == ({}, [])
    assert pulses(spec, {"CODE": "E12"}) == ({}, [])  # the code alone is no defect here


def test_a_defect_without_a_good_code_still_counts_and_is_reported() -> None:
    spec = {"kind": "pulse", "at": "DEF", "code": "CODE"}
    got, problems = pulses(spec, {"DEF": 2})
    assert got == {"unknown": 2} and problems == [
        "defects.code: 2 defect(s) without a code, as unknown"
    ]
    got, problems = pulses(spec, {"DEF": 1, "CODE": "bad code!"})
    assert got == {"unknown": 1} and "not a valid code" in problems[0]
    got, problems = pulses(spec, {"DEF": "x", "CODE": "E07"})
    assert got == {} and problems and problems[0].startswith("defects:")


def test_count_only_is_unknown_code() -> None:
    got, problems = pulses({"kind": "pulse", "at": "DEF"}, {"DEF": 1})
    assert got == {"unknown": 1} and len(problems) == 1


@pytest.mark.parametrize(
    "spec",
    [
        {"kind": "pulse"},
        {"kind": "pulse", "code": "C", "mode": "per_code"},
        {"kind": "pulse", "code": "C", "last_code": "L"},
        {"kind": "pulse", "code": "C", "format": "pairs"},
        {"mode": "per_code", "at": "R", "code": "C"},
        {"at": "R"},
        {"mode": "per_code"},
    ],
)
def test_inconsistent_defect_specs_are_refused(spec: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        DefectSignal.model_validate(spec)


def test_pulse_readings_become_one_defect_event_per_code() -> None:
    tracker = StationTracker(
        StationInfo("p1", "L1", "S1", "d1", agent="a1", boot="b1"),
        profile({"kind": "pulse", "code": "codes"}),
        resolve=lambda badge: badge,
    )
    raw = RawReading("S1", {"codes": ["E12", "E07", "E07"], "GOOD": 4})
    produced, _ = tracker.apply(map_reading(raw, tracker.profile), NOW)
    events_out = [e.model_dump(exclude_none=True) for e in produced]  # takt_wire models
    units = sorted(
        (e["outcome"], e.get("defect_code"), e["count"]) for e in events_out if e["kind"] == "unit"
    )
    assert units == [("defect", "E07", 2), ("defect", "E12", 1), ("good", None, 4)]


def test_modbus_event_registers_fire_on_edges_only() -> None:
    regs = {
        "DEF": Register(table="coil", address=0, type="bool", event="rising"),
        "CODE": Register(address=1, event="change"),
        "GOOD": Register(address=2),
    }
    last: dict[str, object] = {}
    polls = [
        ({"DEF": True, "CODE": 7, "GOOD": 1}, {"GOOD": 1}),  # first poll: baseline only
        ({"DEF": True, "CODE": 7, "GOOD": 2}, {"GOOD": 2}),  # still high: no new edge
        ({"DEF": False, "CODE": 7, "GOOD": 2}, {"GOOD": 2}),
        ({"DEF": True, "CODE": 12, "GOOD": 2}, {"GOOD": 2, "DEF": True, "CODE": 12}),
        ({"DEF": False, "CODE": 12, "GOOD": 3}, {"GOOD": 3}),
        ({"DEF": False, "CODE": 7, "GOOD": 3}, {"GOOD": 3, "CODE": 7}),
    ]
    for values, want in polls:
        assert events(regs, values, last) == want


def test_rising_is_for_bools() -> None:
    with pytest.raises(ValidationError):
        Register(address=0, type="uint16", event="rising")


def test_modbus_strings_are_ascii_in_registers() -> None:
    reg = Register(address=0, type="string", length=4)
    # "E07" written by a device as 2 characters per register, high byte first, NUL padded
    assert decode(reg, [0x4530, 0x3700, 0x0000, 0x0000]) == "E07"
    assert (
        decode(Register(address=0, type="string", length=2, byte_order="little"), [0x3045, 0x37])
        == "E07"
    )
    with pytest.raises(ValueError):
        decode(reg, [0x4530])
    with pytest.raises(ValueError):
        decode(reg, [0xFFFF, 0, 0, 0])
    with pytest.raises(ValidationError):
        Register(address=0, type="uint16", length=2)


def test_contiguous_registers_are_read_in_one_request() -> None:
    regs = {
        "GOOD": Register(address=0, type="uint32"),
        "REJ": Register(address=2, type="uint32"),
        "CODE": Register(address=4, type="string", length=4),
        "STATE": Register(address=20),  # a gap: its own read (the device may lack 8..19)
        "FLAG": Register(table="coil", address=3, type="bool"),
        "FLAG2": Register(table="coil", address=4, type="bool"),
        "TEMP": Register(table="input", address=0, type="float32"),
    }
    plan = [(b.table, b.address, b.count, [n for n, _ in b.members]) for b in blocks(regs)]
    assert plan == [
        ("coil", 3, 2, ["FLAG", "FLAG2"]),
        ("holding", 0, 8, ["GOOD", "REJ", "CODE"]),
        ("holding", 20, 1, ["STATE"]),
        ("input", 0, 2, ["TEMP"]),
    ]
    holding = next(b for b in blocks(regs) if b.table == "holding" and b.address == 0)
    words_read = [0x0001, 0x0002, 0, 7, 0x4537, 0x3200, 0, 0]
    assert unpack(holding, words_read) == {"GOOD": 65538, "REJ": 7, "CODE": "E72"}


def test_long_runs_are_split_at_the_modbus_limit() -> None:
    regs = {f"R{i}": Register(address=i * 50, type="uint16") for i in range(4)}
    regs |= {f"S{i}": Register(address=i, type="uint16") for i in range(1, 200)}
    sizes = [(b.address, b.count) for b in blocks(regs)]
    assert all(count <= 125 for _, count in sizes)
    assert sum(count for _, count in sizes) == 200
