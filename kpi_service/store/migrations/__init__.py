"""Alembic migrations of the store (shipped with the package; applied on open)."""
