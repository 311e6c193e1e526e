"""Modbus register decoding and connection models (pure; expected values worked out by hand)."""

from __future__ import annotations

import pytest

from edge_agent.sources.modbus.decode import decode
from edge_agent.sources.modbus.models import ModbusConnection, Register


@pytest.mark.parametrize(
    ("spec", "words", "value"),
    [
        ({"type": "uint16"}, [0xFFFE], 65534),
        ({"type": "int16"}, [0xFFFE], -2),
        ({"type": "uint32"}, [0x0001, 0x0002], 65538),  # high word first
        ({"type": "uint32", "word_order": "little"}, [0x0002, 0x0001], 65538),
        ({"type": "int32"}, [0xFFFF, 0xFFFE], -2),
        ({"type": "uint32", "byte_order": "little"}, [0x0100, 0x0000], 65536),
        ({"type": "float32"}, [0x3FC0, 0x0000], 1.5),  # IEEE 754: 1.5 = 0x3FC00000
        ({"type": "uint64", "word_order": "little"}, [0, 0, 0, 1], 2**48),
        ({"type": "int64"}, [0xFFFF] * 4, -1),
        ({"type": "uint16", "scale": 0.1}, [123], pytest.approx(12.3)),
        ({"table": "coil", "type": "bool"}, [1], True),
    ],
)
def test_decode(spec: dict[str, object], words: list[int], value: object) -> None:
    assert decode(Register.model_validate({"address": 0} | spec), words) == value


def test_wrong_number_of_registers_is_an_error() -> None:
    with pytest.raises(ValueError, match="needs 2 registers"):
        decode(Register(address=0, type="uint32"), [1])


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"transport": "tcp"}, "needs host"),
        ({"transport": "rtu"}, "needs serial_port"),
    ],
)
def test_connection_needs_its_endpoint(fields: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ModbusConnection.model_validate({"type": "modbus"} | fields)


def test_units_on_one_line_share_one_poller_key() -> None:
    a = ModbusConnection(type="modbus", transport="rtu", serial_port="/dev/ttyUSB0", unit=1)
    b = ModbusConnection(type="modbus", transport="rtu", serial_port="/dev/ttyUSB0", unit=2)
    c = ModbusConnection(type="modbus", transport="tcp", host="10.0.0.9", unit=1)
    assert a.source_key("S1") == b.source_key("S2") != c.source_key("S3")


def test_coils_are_bool() -> None:
    with pytest.raises(ValueError, match="bool"):
        Register(address=0, table="coil", type="uint16")


@pytest.mark.parametrize("table", ["holding", "input", "coil", "discrete"])
def test_a_bool_has_no_scale_on_any_table(table: str) -> None:
    with pytest.raises(ValueError, match="a bool has no scale"):
        Register.model_validate({"address": 0, "table": table, "type": "bool", "scale": 10})
