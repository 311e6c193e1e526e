"""Period closes: frozen score snapshots with a content hash, re-opens kept as history.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision: str | None = "0003"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "period_closes",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("scheme", sa.String(64), nullable=False),
        sa.Column("period", sa.String(64), nullable=False),
        sa.Column("first_day", sa.Date, nullable=False),
        sa.Column("last_day", sa.Date, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("workers", sa.Integer, nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("snapshot", sa.Text, nullable=False),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("closed_by", sa.String(128), nullable=False),
        sa.Column("open_key", sa.String(32), nullable=False),
        sa.Column("reopened_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("reopened_by", sa.String(128), nullable=True),
        sa.Column("reopen_reason", sa.Text, nullable=True),
        sa.UniqueConstraint("scheme", "period", "open_key", name="period_closes_one_in_force"),
    )


def downgrade() -> None:
    op.drop_table("period_closes")
