"""Modbus: the station connection (TCP gateway or RTU line, unit id) and the profile section."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from edge_agent.sources.connection import ConnectionModel

ValueType = Literal[
    "bool", "uint16", "int16", "uint32", "int32", "uint64", "int64", "float32", "string"
]
WORDS: dict[str, int] = {
    "bool": 1,
    "uint16": 1,
    "int16": 1,
    "uint32": 2,
    "int32": 2,
    "float32": 2,
    "uint64": 4,
    "int64": 4,
}


class ModbusConnection(ConnectionModel):
    type: Literal["modbus"]
    transport: Literal["tcp", "rtu"] = Field(
        description="tcp: Modbus TCP (a device or a gateway); rtu: Modbus RTU on a serial line."
    )
    host: str | None = Field(default=None, description="tcp: the device or gateway.")
    port: int = Field(default=502, ge=1, le=65535, description="tcp: its port.")
    serial_port: str | None = Field(
        default=None, description="rtu: the serial line (/dev/ttyUSB0); shared by its units."
    )
    baudrate: int = 19200
    parity: Literal["N", "E", "O"] = "E"
    stopbits: Literal[1, 2] = 1
    bytesize: Literal[7, 8] = 8
    unit: int = Field(default=1, ge=0, le=255, description="Unit (slave) id of the station.")
    timeout_s: float = Field(default=1.0, gt=0, description="Answer timeout of one request.")
    poll_interval_s: float = Field(
        default=1.0, gt=0, description="How often the station's registers are read."
    )

    @model_validator(mode="after")
    def _where(self) -> ModbusConnection:
        if self.transport == "tcp" and not self.host:
            raise ValueError("transport tcp needs host")
        if self.transport == "rtu" and not self.serial_port:
            raise ValueError("transport rtu needs serial_port")
        return self

    def source_key(self, station: str) -> str:
        """One poller per TCP endpoint or serial line: requests never interleave on it."""
        if self.transport == "tcp":
            return f"modbus:tcp:{self.host}:{self.port}"
        return f"modbus:rtu:{self.serial_port}"

    def shared_settings(self) -> tuple[str, ...]:
        """The one client of an endpoint or line takes these from its first station."""
        if self.transport == "tcp":
            return ("timeout_s",)
        return ("baudrate", "parity", "stopbits", "bytesize", "timeout_s")


class Register(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    table: Literal["holding", "input", "coil", "discrete"] = "holding"
    address: int = Field(ge=0, le=65535, description="0-based address of the (first) register.")
    type: ValueType = Field(
        default="uint16", description="Value type; 32/64-bit values span 2/4 registers."
    )
    word_order: Literal["big", "little"] = Field(
        default="big", description="big: the first register holds the most significant word."
    )
    byte_order: Literal["big", "little"] = Field(
        default="big", description="Byte order within each register (big is the standard)."
    )
    scale: float = Field(default=1.0, description="The value is multiplied by this.")
    length: int = Field(
        default=1,
        ge=1,
        le=64,
        description="string: how many registers (2 ASCII characters each; NULs and spaces "
        "at the ends are dropped).",
    )
    event: Literal["rising", "change"] | None = Field(
        default=None,
        description="Read as an event, for pulse signals: rising (bool): the value is in a "
        "reading (true) only at the poll that sees it go from false to true; change: only at "
        "a poll that sees a value different from the previous poll's. The first poll only "
        "sets the baseline. Edges between two polls are seen once.",
    )

    @model_validator(mode="after")
    def _bits_from_bit_tables(self) -> Register:
        if self.table in ("coil", "discrete") and self.type != "bool":
            raise ValueError("coils and discrete inputs are type bool")
        if self.type == "bool" and self.scale != 1:
            raise ValueError("a bool has no scale")
        if self.type == "string" and (self.scale != 1 or self.table in ("coil", "discrete")):
            raise ValueError("a string is read from holding or input registers, unscaled")
        if self.type != "string" and "length" in self.model_fields_set:
            raise ValueError("length is for type string")
        if self.event == "rising" and self.type != "bool":
            raise ValueError("event rising is for bool values (coils, discrete inputs)")
        return self


def words(reg: Register) -> int:
    """How many registers one read of ``reg`` takes."""
    return reg.length if reg.type == "string" else WORDS[reg.type]


class ModbusBinding(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    registers: dict[str, Register] = Field(
        min_length=1,
        description="Named values read at every poll; signals point at these names (at).",
    )
