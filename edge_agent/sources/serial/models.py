"""Serial lines: the station connection (port) and the profile section (line, framing)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from edge_agent.sources.connection import ConnectionModel, rebased


class SerialConnection(ConnectionModel):
    type: Literal["serial"]
    port: str | None = Field(
        default=None,
        description="Device path (/dev/ttyUSB0) or a serial device server URL "
        "(socket://host:port, rfc2217://host:port).",
    )
    port_file: Path | None = Field(default=None, description="File holding the port path.")

    @model_validator(mode="after")
    def _one(self) -> SerialConnection:
        if (self.port is None) == (self.port_file is None):
            raise ValueError("give exactly one of port and port_file")
        return self

    def resolve(self) -> str:
        if self.port is not None:
            return self.port
        assert self.port_file is not None
        return self.port_file.read_text().strip()

    def rebase(self, base: Path) -> None:
        path = rebased(self.port_file, base)
        if path is not None:
            self.port_file = path

    def source_key(self, station: str) -> str:
        """One port, one station: a serial source never serves two stations."""
        return f"{self.type}:{station}"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


Checksum = Literal["xor_hex", "sum8_hex", "crc16_modbus_hex", "none"]


class Framing(_Strict):
    """How records are cut out of the byte stream and checked (before any parsing)."""

    mode: Literal["delimited", "line"] = Field(
        default="delimited",
        description="delimited: a record is start byte .. end byte (then the checksum, if "
        "any); line: a record is one line ended by the terminator, no start/end bytes.",
    )
    start: int = Field(default=0x02, ge=0, le=255, description="Start byte (delimited mode).")
    end: int = Field(default=0x03, ge=0, le=255, description="End byte (delimited mode).")
    prefix: str = Field(
        default="",
        description="Line mode: text every record starts with (e.g. '$'); stripped, not "
        "checksummed; a second prefix inside a line marks the text before it truncated.",
    )
    checksum: Checksum = Field(
        default="xor_hex",
        description="xor_hex: XOR of the record's bytes, 2 hex digits; sum8_hex: their sum "
        "mod 256, 2 hex digits; crc16_modbus_hex: CRC-16/MODBUS, 4 hex digits; none.",
    )
    checksum_separator: str | None = Field(
        default=None,
        description="When set, the checksum is the text after the last occurrence of this "
        "separator inside the record ('$A,1*5C'); otherwise it follows the end byte "
        "(delimited) or is the last 2/4 characters of the line (line mode).",
    )
    terminator: str = Field(
        default="\r\n", description="Delimited: optional after a frame; line: ends a record."
    )
    field_separator: str = Field(default="|", min_length=1)
    key_value_separator: str = Field(
        default="=", min_length=1, description="Between key and value (layout key_value)."
    )
    max_frame_bytes: int = Field(default=4096, ge=16)

    @model_validator(mode="after")
    def _line_needs_terminator(self) -> Framing:
        if self.mode == "line" and not self.terminator:
            raise ValueError("framing mode line needs a terminator")
        if self.mode == "delimited" and self.start == self.end:
            raise ValueError(
                f"start and end bytes are both 0x{self.start:02X}: a frame could not be told "
                "from the next one"
            )
        return self


class RecordType(_Strict):
    """What one record type carries."""

    fields: list[str] = Field(
        default_factory=list,
        description="positional: names of the fields after the common ones, in order.",
    )
    values: dict[str, str] = Field(
        default_factory=dict,
        description="Constant fields this record type adds, e.g. {GOOD: '1'} for a "
        "'one part made' record, {ACTION: login} for a login record.",
    )
    optional: int = Field(
        default=0, ge=0, description="positional: how many trailing fields may be absent."
    )


class Record(_Strict):
    """How the text of one record becomes named fields (the mapping's ``at`` names)."""

    layout: Literal["key_value", "positional", "regex"] = Field(
        default="key_value",
        description="key_value: KEY=VALUE fields; positional: named fields by position "
        "(split at framing.field_separator); regex: the named groups of 'pattern'.",
    )
    fields: list[str] = Field(
        default_factory=list,
        description="positional: names of the fields every record starts with "
        "(the record type field among them).",
    )
    pattern: str | None = Field(
        default=None, description="regex: a full-match pattern with named groups."
    )
    type_field: str | None = Field(
        default=None, description="The field whose value is the record type."
    )
    types: dict[str, RecordType] = Field(
        default_factory=dict,
        description="Record types by their value in type_field; any other type is counted "
        "as 'unknown_type' and skipped.",
    )

    @model_validator(mode="after")
    def _consistent(self) -> Record:
        if self.layout == "regex":
            if not self.pattern:
                raise ValueError("layout regex needs a pattern")
            try:
                regex = re.compile(self.pattern)
            except re.error as err:
                raise ValueError(f"pattern: {err}") from None
            if not regex.groupindex:
                raise ValueError("pattern needs named groups: (?P<name>...)")
            if self.type_field and self.type_field not in regex.groupindex:
                raise ValueError(f"type_field {self.type_field!r} is not a group of pattern")
        if self.layout == "positional":
            if not self.fields and not self.types:
                raise ValueError("layout positional needs fields (or types with fields)")
            if self.type_field and self.type_field not in self.fields:
                raise ValueError(f"type_field {self.type_field!r} must be one of fields")
        if self.types and not self.type_field:
            raise ValueError("types need a type_field")
        if self.type_field and not self.types:
            raise ValueError("a type_field needs types")
        return self


class SerialBinding(_Strict):
    baudrate: int = Field(default=115200, ge=50, le=4_000_000)
    bytesize: Literal[5, 6, 7, 8] = 8
    parity: Literal["N", "E", "O"] = "N"
    stopbits: Literal[1, 2] = 1
    framing: Framing = Field(default_factory=Framing)
    record: Record = Field(default_factory=Record)
