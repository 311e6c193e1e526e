"""Alembic environment: runs against the engine :class:`~kpi_service.store.db.Database` passes."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Engine

from kpi_service.store.tables import metadata

engine = context.config.attributes.get("engine")
if not isinstance(engine, Engine):
    raise RuntimeError("run migrations through kpi_service.store.db.Database (no engine given)")

with engine.connect() as connection:
    context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()
    connection.commit()
