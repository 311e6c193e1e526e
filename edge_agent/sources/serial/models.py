"""Serial lines: the station connection (port) and the profile section (line, framing)."""

from __future__ import annotations

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
