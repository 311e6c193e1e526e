"""The store's tables as SQLAlchemy Core objects (the code's view; migrations create them)."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData()

# SQLite only auto-increments an INTEGER PRIMARY KEY; PostgreSQL gets a 64-bit identity.
Id = BigInteger().with_variant(Integer(), "sqlite")

apikeys = Table(
    "apikeys",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("name", String(64), nullable=False, unique=True),
    Column("hash", String(64), nullable=False, unique=True),
    Column("scopes", Text, nullable=False, comment="JSON list"),
    Column("lines", Text, nullable=True, comment="JSON list; NULL = all lines"),
    Column("worker", String(64), nullable=True, comment="A self key's worker"),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=True),
    Column("last_used_at", DateTime(timezone=True), nullable=True),
    Column("revoked_at", DateTime(timezone=True), nullable=True),
    Column("rotated_at", DateTime(timezone=True), nullable=True),
)

audit = Table(
    "audit",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("principal", String(128), nullable=False),
    Column("method", String(16), nullable=False),
    Column("path", Text, nullable=False),
    Column("query", Text, nullable=False, comment="JSON list of [name, value] pairs, in order"),
    Column("status", Integer, nullable=True, comment="HTTP status (CLI: exit code)"),
)

scheme_versions = Table(
    "scheme_versions",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("scheme", String(64), nullable=False),
    Column("version", Integer, nullable=False),
    Column("effective_from", Date, nullable=False),
    Column("spec", Text, nullable=False, comment="The validated SchemeSpec as JSON"),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("created_by", String(128), nullable=False),
    UniqueConstraint("scheme", "version", name="scheme_versions_version"),
    UniqueConstraint("scheme", "effective_from", name="scheme_versions_effective"),
)

external_metrics = Table(
    "external_metrics",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("worker", String(64), nullable=False),
    Column("metric", String(64), nullable=False),
    Column("period_start", Date, nullable=False),
    Column("period_end", Date, nullable=False),
    Column("value", Float, nullable=False),
    Column("source", String(64), nullable=False),
    Column("reference", String(256), nullable=False),
    Column("received_at", DateTime(timezone=True), nullable=False),
    Column("received_by", String(128), nullable=False),
    UniqueConstraint("source", "reference", name="external_metrics_reference"),
    Index("external_metrics_metric_period", "metric", "period_start"),
)

targets = Table(
    "targets",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("kind", String(16), nullable=False, comment="worker | station | line"),
    Column("subject", String(64), nullable=False, comment="worker id, station id or line id"),
    Column("line", String(64), nullable=False),
    Column("metric", String(64), nullable=False),
    Column("period", String(16), nullable=False, comment="day | week | month"),
    Column("period_start", Date, nullable=False),
    Column("value", Float, nullable=False),
    Column("note", Text, nullable=False),
    Column("set_at", DateTime(timezone=True), nullable=False),
    Column("set_by", String(128), nullable=False),
    Index("targets_subject", "kind", "subject", "line", "metric", "period_start"),
)

target_acks = Table(
    "target_acks",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("target_id", Id, ForeignKey("targets.id"), nullable=False),
    Column("worker", String(64), nullable=False),
    Column("acknowledged_at", DateTime(timezone=True), nullable=False),
    Column("recorded_by", String(128), nullable=False),
    UniqueConstraint("target_id", "worker", name="target_acks_once"),
)

period_closes = Table(
    "period_closes",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("scheme", String(64), nullable=False),
    Column("period", String(64), nullable=False, comment="Calendar label (YYYY-MM, week)"),
    Column("first_day", Date, nullable=False),
    Column("last_day", Date, nullable=False),
    Column("version", Integer, nullable=False),
    Column("workers", Integer, nullable=False),
    Column("content_hash", String(64), nullable=False, comment="SHA-256 of snapshot"),
    Column("snapshot", Text, nullable=False, comment="Canonical JSON of the frozen scores"),
    Column("closed_at", DateTime(timezone=True), nullable=False),
    Column("closed_by", String(128), nullable=False),
    Column("open_key", String(32), nullable=False, comment="'' while in force, else the id"),
    Column("reopened_at", DateTime(timezone=True), nullable=True),
    Column("reopened_by", String(128), nullable=True),
    Column("reopen_reason", Text, nullable=True),
    UniqueConstraint("scheme", "period", "open_key", name="period_closes_one_in_force"),
)

worker_roles = Table(
    "worker_roles",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("worker", String(64), nullable=False),
    Column("role", String(64), nullable=False),
    Column("effective_from", Date, nullable=False),
    Column("note", Text, nullable=False),
    Column("set_at", DateTime(timezone=True), nullable=False),
    Column("set_by", String(128), nullable=False),
    Index("worker_roles_worker", "worker", "effective_from"),
)

board_pairings = Table(
    "board_pairings",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("code_hash", String(64), nullable=False, unique=True, comment="Keyed hash of code"),
    Column("issued_by", String(128), nullable=False, comment="Principal that issued the code"),
    Column("lines", Text, nullable=False, comment="JSON list: the lines the board key sees"),
    Column("label", String(64), nullable=False, comment="Where the tablet hangs"),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("key_days", Integer, nullable=False, comment="Validity of the board key, days"),
    Column("redeemed_at", DateTime(timezone=True), nullable=True),
    Column("key_name", String(64), nullable=True, comment="The board key it became"),
)
