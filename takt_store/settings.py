"""``InfluxSettings``: how every Takt process reaches InfluxDB (one model for all services).

The password is a ``SecretStr`` and comes from the environment only: each service's
loader refuses a file that carries it. Retention policies are optional
(``retention_policies: false``) because only InfluxDB 1.x manages them through
InfluxQL; 2.x maps database/policy pairs to buckets (DBRP) and 3.x has one retention
period per database (docs/influx-schema.md, "Portability").
"""

from __future__ import annotations

import ssl
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, SecretStr

_NAME = r"^[A-Za-z0-9_\-]+$"
_DURATION = r"^(0s|INF|\d+[hdw])$"


class InfluxSettings(BaseModel):
    """Connection, schema placement and write tuning of one InfluxDB (v1 HTTP API)."""

    model_config = ConfigDict(extra="forbid")

    url: str = "http://127.0.0.1:8086"
    database: str = Field(default="takt", pattern=_NAME)
    username: str | None = None
    password: SecretStr | None = None
    """From the environment only (the loaders refuse it in a file)."""
    timeout_s: float = Field(default=30.0, gt=0)
    tls_verify: bool = True
    """Verify the server's certificate (``https://`` URLs); off only for a lab."""
    tls_ca_file: Path | None = None
    """CA bundle that signed the server's certificate (a private CA); implies verification."""

    retention_policies: bool = True
    """Write/read the ``raw_rp``/``rollup_rp`` policies (1.x, or 2.x with DBRP mappings).
    Off: every point goes to the database's default policy (3.x, or 2.x with one bucket
    mapped as default); raw and rollup measurements have distinct names, so they still
    never mix."""
    raw_rp: str = Field(default="raw", pattern=_NAME)
    raw_duration: str = Field(default="730d", pattern=_DURATION)
    rollup_rp: str = Field(default="rollup", pattern=_NAME)
    rollup_duration: str = Field(default="0s", pattern=_DURATION)
    rollup_shard_duration: str = Field(default="52w", pattern=_DURATION)
    """Shard group duration of the rollup policy (1.x). A year's query opens every shard
    of the year once per series: with 1.x's default of 7 days for an infinite policy
    that is 52 shards, and a year of daily rollups for 5,000 workers read ~10x slower
    (measured, bench/bench_year.py). Applies to shards created after a change."""
    create: bool = True
    """Create the database (and the retention policies when on) at start-up (admin rights)."""

    batch_size: int = Field(default=5_000, ge=1, le=100_000)
    flush_interval_s: float = Field(default=0.5, gt=0, le=60)
    gzip: bool = True
    max_backoff_s: float = Field(default=30.0, gt=0)
    pending_batches: int = Field(default=2, ge=1, le=16)
    """Formatted batches queued for the writer before the consumer waits."""

    def rp(self, which: str) -> str | None:
        """The retention policy for ``'raw'`` or ``'rollup'`` points (None: the default one)."""
        if not self.retention_policies:
            return None
        return self.raw_rp if which == "raw" else self.rollup_rp

    def basic_auth(self) -> tuple[str, str] | None:
        if not self.username:
            return None
        secret = self.password.get_secret_value() if self.password else ""
        return self.username, secret

    def verify(self) -> bool | ssl.SSLContext:
        """httpx's ``verify``: a context trusting the CA file when given, else the flag."""
        if self.tls_ca_file is not None:
            return ssl.create_default_context(cafile=str(self.tls_ca_file))
        return self.tls_verify
