"""Open the relational store and bring its schema to the current Alembic revision.

Every entry point (``takt kpi run``, the CLI, tests) goes through :class:`Database`, which
migrates on open, so a service upgraded in place never runs against an old schema. SQLite
connections are pooled (opening one per request cost ~3 ms of every audited request; a
pooled insert takes ~0.3 ms) and run with foreign keys on, a busy timeout and write-ahead
logging, because the CLI and the service may write at the same time.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, create_engine, event

from takt_common.errors import TaktError

MIGRATIONS = Path(__file__).parent / "migrations"
_migrated: set[str] = set()
_lock = threading.Lock()


class StoreError(TaktError, RuntimeError):
    """The database cannot be opened or migrated (the message says which and why)."""


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


def utcnow() -> datetime:
    return datetime.now(UTC)


def as_utc(value: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; everything stored here is UTC."""
    if value is None:
        return None
    return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    # WAL: the CLI and the service write while readers read; NORMAL sync is durable in WAL
    # mode except for the last commits on power loss (not on a process crash).
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def alembic_config(engine: Engine) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["engine"] = engine
    return config


class Database:
    """An engine on ``url`` whose schema is at the newest revision (migrated on open)."""

    def __init__(self, url: str | Path, *, migrate: bool = True) -> None:
        if isinstance(url, Path):
            url = sqlite_url(url)
        self.url = url
        if url.startswith("sqlite"):
            path = url.split("///", 1)[1] if "///" in url else ""
            if path and path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            self.engine = create_engine(url, pool_size=2, max_overflow=8)
            event.listen(self.engine, "connect", _sqlite_pragmas)
        else:
            self.engine = create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=5)
        if migrate:
            self.upgrade()

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def upgrade(self, revision: str = "head") -> None:
        """Apply pending migrations (once per process and database; idempotent anyway)."""
        with _lock:
            if revision == "head" and self.url in _migrated:
                return
            try:
                command.upgrade(alembic_config(self.engine), revision)
            except Exception as err:
                raise StoreError(f"cannot migrate the store {self.engine.url!r}: {err}") from err
            if revision == "head":
                _migrated.add(self.url)

    def revision(self) -> str | None:
        with self.engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()

    def dispose(self) -> None:
        self.engine.dispose()
