"""OPC UA: the station connection (endpoint, security) and the profile section (nodes)."""

from __future__ import annotations

import re
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
    timeout_s: float = Field(
        default=4.0, gt=0, description="Connect and request timeout of the OPC UA client."
    )
    session_timeout_s: float = Field(
        default=30.0,
        ge=5,
        le=3600,
        description="Session timeout asked of the server. A gateway that dies without "
        "closing its session (power loss, kill -9) leaves its subscriptions running on the "
        "PLC until this runs out; a short one keeps restarts from piling them up there. "
        "The client's watchdog keeps a live session alive.",
    )
    reconnect_min_s: float = Field(
        default=0.2, gt=0, description="First wait before reconnecting after a lost session."
    )
    reconnect_max_s: float = Field(
        default=5.0,
        gt=0,
        description="Longest wait between reconnect attempts (a PLC that is back is read "
        "again within this time).",
    )
    history: Literal["auto", "off"] = Field(
        default="auto",
        description="auto: after a reconnect, read the changes missed while disconnected "
        "(HistoryRead) where the server keeps history; off: never.",
    )
    station_retry_max_s: float = Field(
        default=30.0,
        gt=0,
        description="Longest wait between retries of a station whose namespace or "
        "variables could not be found (the other stations keep running).",
    )

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

    namespace_uri: str | None = Field(
        default=None, min_length=1, description="The namespace, by its exact URI."
    )
    namespace_uri_pattern: str | None = Field(
        default=None,
        min_length=1,
        description="The namespace, by a pattern of its URI for servers that put the host "
        "name in it: a glob ('urn:*:plc'), or a regular expression after 're:' "
        "('re:^urn:[^:]+:plc$'). Exactly one URI of the server must match.",
    )
    namespace_index: int | None = Field(
        default=None,
        ge=0,
        description="The namespace, by its index (fragile: servers may renumber their namespaces).",
    )
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
    code_window_ms: float = Field(
        default=300,
        ge=0,
        description="defects total_and_last_code: how long a change of the reject total "
        "waits for a change of the last-code variable written just after it (a code "
        "written before it is used at once).",
    )

    @model_validator(mode="after")
    def _one_namespace(self) -> OpcuaBinding:
        given = [self.namespace_uri, self.namespace_uri_pattern, self.namespace_index]
        if sum(x is not None for x in given) != 1:
            raise ValueError(
                "give exactly one of namespace_uri, namespace_uri_pattern, namespace_index"
            )
        pattern = self.namespace_uri_pattern
        if pattern is not None and pattern.startswith("re:"):
            try:
                re.compile(pattern.removeprefix("re:"))
            except re.error as err:
                raise ValueError(f"namespace_uri_pattern: {err}") from None
        return self
