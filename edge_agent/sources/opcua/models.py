"""OPC UA: the station connection (endpoint, security) and the profile section (nodes)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from edge_agent.sources.connection import Credentials, rebased


class OpcuaSecurity(BaseModel):
    model_config = ConfigDict(extra="forbid")

    policy: Literal["None", "Basic256Sha256", "Aes128_Sha256_RsaOaep"] = "None"
    mode: Literal["None", "Sign", "SignAndEncrypt"] = "None"
    certificate: Path | None = None
    private_key: Path | None = None
    server_certificate: Path | None = Field(
        default=None, description="Trusted server certificate; required with a security policy."
    )

    @model_validator(mode="after")
    def _complete(self) -> OpcuaSecurity:
        if (self.policy == "None") != (self.mode == "None"):
            raise ValueError("policy and mode must both be None or both be set")
        if self.policy != "None" and not (
            self.certificate and self.private_key and self.server_certificate
        ):
            raise ValueError(
                "a security policy needs certificate, private_key and server_certificate"
            )
        return self


class OpcuaConnection(Credentials):
    type: Literal["opcua"]
    endpoint: str = Field(pattern=r"^opc\.tcp://")
    security: OpcuaSecurity = Field(default_factory=OpcuaSecurity)
    defect_codes: list[str] = Field(
        default_factory=list, description="Codes to monitor besides discovered ones."
    )
    timeout_s: float = Field(default=4.0, gt=0)

    def rebase(self, base: Path) -> None:
        sec = self.security
        for attr in ("certificate", "private_key", "server_certificate"):
            path = rebased(getattr(sec, attr), base)
            if path is not None:
                setattr(sec, attr, path)

    def source_key(self, station: str) -> str:
        """Stations on one server share one session; their extra codes do not matter."""
        return self.type + ":" + self.model_dump_json(exclude={"defect_codes"})


class OpcuaBinding(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

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
