"""Start-up check of what the InfluxDB behind the v1 API supports, and schema setup.

InfluxDB 1.x, 2.x (through DBRP mappings) and 3.x all serve ``/write`` and
``/query``, but not the same InfluxQL: only 1.x creates databases and retention
policies with InfluxQL, and neither 2.x nor 3.x runs ``SELECT ... INTO`` (so rollups
are a query plus a write). The check logs what the server answered and raises
:class:`CapabilityError` naming what the configuration needs and the server lacks.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from takt_store.client import InfluxClient, quote_ident
from takt_store.errors import CapabilityError, InfluxError, InfluxQueryError
from takt_store.settings import InfluxSettings

log = logging.getLogger(__name__)


@dataclass
class Capabilities:
    version: str = ""
    database_exists: bool = False
    can_query: bool = False
    retention_policies: set[str] | None = None
    """Policies of the database; None when the server does not list them."""
    problems: list[str] = field(default_factory=list)

    def as_log(self) -> dict[str, object]:
        return {
            "influx_version": self.version or "unknown",
            "database_exists": self.database_exists,
            "can_query": self.can_query,
            "retention_policies": sorted(self.retention_policies)
            if self.retention_policies is not None
            else "not listed",
        }


async def probe(client: InfluxClient) -> Capabilities:
    """Ask the server (ping, databases, a read, retention policies); never raises on
    a missing capability, only on an unreachable server or refused credentials."""
    s = client.settings
    caps = Capabilities(version=await client.ping())
    try:
        [series] = await client.query("SHOW DATABASES", epoch=None)
        names = {str(row[0]) for one in series for row in one.get("values") or []}
        caps.database_exists = s.database in names
    except InfluxQueryError as err:
        caps.problems.append(f"SHOW DATABASES refused: {err.message}")
    if caps.database_exists:
        try:
            await client.query("SHOW MEASUREMENTS LIMIT 1", epoch=None)
            caps.can_query = True
        except InfluxQueryError as err:
            caps.problems.append(f"cannot query {s.database}: {err.message}")
        try:
            [series] = await client.query(
                f"SHOW RETENTION POLICIES ON {quote_ident(s.database)}", epoch=None
            )
            caps.retention_policies = {
                str(row[0]) for one in series for row in one.get("values") or []
            }
        except InfluxQueryError as err:
            caps.problems.append(f"SHOW RETENTION POLICIES refused: {err.message}")
    return caps


def missing(settings: InfluxSettings, caps: Capabilities) -> list[str]:
    """What the configuration requires and the server lacks (empty: all good)."""
    out = []
    if not caps.database_exists:
        out.append(f"database {settings.database!r} does not exist (or is not visible)")
    elif not caps.can_query:
        out.append(f"database {settings.database!r} cannot be queried")
    if settings.retention_policies and caps.database_exists:
        wanted = {settings.raw_rp, settings.rollup_rp}
        if caps.retention_policies is None:
            out.append(
                "the server does not list retention policies, but retention_policies is on "
                "(turn it off for InfluxDB 3.x, or map database/policy pairs on 2.x)"
            )
        elif absent := sorted(wanted - caps.retention_policies):
            out.append(f"retention policies {absent} missing on {settings.database!r}")
    return out


async def ensure_schema(client: InfluxClient) -> None:
    """Create the database and (when on) the retention policies; 1.x InfluxQL, idempotent.

    Durations are altered to the configured ones, so a changed setting takes effect.
    """
    s = client.settings
    db = quote_ident(s.database)
    await client.query(f"CREATE DATABASE {db}", epoch=None)
    if not s.retention_policies:
        return
    [series] = await client.query(f"SHOW RETENTION POLICIES ON {db}", epoch=None)
    existing = {str(row[0]) for one in series for row in one.get("values") or []}
    for rp, duration, shards, default in (
        (s.raw_rp, s.raw_duration, "", True),
        (s.rollup_rp, s.rollup_duration, f" SHARD DURATION {s.rollup_shard_duration}", False),
    ):
        verb, replication = ("ALTER", "") if rp in existing else ("CREATE", " REPLICATION 1")
        await client.query(
            f"{verb} RETENTION POLICY {quote_ident(rp)} ON {db} DURATION {duration}{replication}"
            + shards
            + (" DEFAULT" if default else ""),
            epoch=None,
        )


async def check(client: InfluxClient, *, create: bool | None = None) -> Capabilities:
    """Set up when allowed (``create``, default the setting), then probe, log and require.

    Raises :class:`CapabilityError` listing every missing requirement; lets
    ``InfluxUnavailable``/``InfluxAuthError`` through (the caller may wait and retry).
    """
    s = client.settings
    if s.create if create is None else create:
        try:
            await ensure_schema(client)
        except InfluxQueryError as err:
            # Not fatal by itself (no admin rights, or 2.x/3.x without these statements):
            # the probe below says whether what exists is enough.
            log.warning("influx schema setup refused", extra={"error": err.message})
    caps = await probe(client)
    log.info("influx capabilities", extra=caps.as_log())
    lacking = missing(s, caps)
    if lacking:
        raise CapabilityError(f"InfluxDB at {s.url} lacks: " + "; ".join(lacking + caps.problems))
    return caps


__all__ = ["Capabilities", "InfluxError", "check", "ensure_schema", "missing", "probe"]
