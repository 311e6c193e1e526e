"""``MqttSettings``: how every Takt process reaches its broker (one model, one meaning).

The agent (``broker:``), the collector (``mqtt:``) and the alert engine (``mqtt:``)
each extend this model with what only they need; the names here mean the same in
all three. The password is a ``SecretStr`` that the service loaders accept from the
environment only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, SecretStr, model_validator


class MqttSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    host: str = "127.0.0.1"
    port: int = Field(default=1883, ge=1, le=65535)
    client_id: str | None = Field(
        default=None,
        max_length=64,
        description="Stable per instance where the broker keeps a session; default per service.",
    )
    username: str | None = None
    password: SecretStr | None = Field(default=None, description="Environment only.")
    tls: bool = Field(default=False, description="Connect over TLS (implied by ca_file).")
    ca_file: Path | None = Field(
        default=None,
        validation_alias=AliasChoices("ca_file", "tls_ca_file"),
        description="CA bundle that signed the broker's certificate (default: the system's).",
    )
    cert_file: Path | None = Field(default=None, description="Client certificate (mutual TLS).")
    key_file: Path | None = Field(default=None, description="Key of cert_file.")
    verify_hostname: bool = Field(
        default=True, description="Check that the broker's certificate names the host."
    )
    insecure: bool = Field(
        default=False,
        description="Accept any broker certificate: development only, refused otherwise.",
    )
    keepalive_s: int = Field(
        default=30, ge=5, validation_alias=AliasChoices("keepalive_s", "keepalive")
    )
    qos: Literal[0, 1] = Field(default=1, description="QoS of subscriptions and publishes.")
    reconnect_min_s: float = Field(default=0.2, gt=0, le=60)
    reconnect_max_s: float = Field(
        default=15.0, gt=0, le=300, description="Cap of the exponential reconnect backoff."
    )
    connect_timeout_s: float = Field(default=15.0, gt=0, le=300)

    @model_validator(mode="after")
    def _coherent(self) -> MqttSettings:
        if self.ca_file is not None or self.cert_file is not None or self.insecure:
            self.tls = True
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file go together (mutual TLS)")
        if self.reconnect_min_s > self.reconnect_max_s:
            raise ValueError("reconnect_min_s is larger than reconnect_max_s")
        return self

    def refuse_insecure(self, environment: str, where: str) -> None:
        """Raise ValueError when ``insecure`` is set outside ``environment: development``."""
        if self.insecure and environment != "development":
            raise ValueError(
                f"{where}.insecure accepts any broker certificate; it is refused outside "
                "environment: development (give ca_file instead)"
            )

    def tls_files(self) -> list[tuple[str, Path]]:
        """(field, path) of the TLS files set, for a start-up check."""
        files = (("ca_file", self.ca_file), ("cert_file", self.cert_file))
        return [(name, path) for name, path in (*files, ("key_file", self.key_file)) if path]
