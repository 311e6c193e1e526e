"""Workers' roles, effective-dated (a scheme may apply to a role).

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision: str | None = "0005"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "worker_roles",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("worker", sa.String(64), nullable=False),
        sa.Column("role", sa.String(64), nullable=False),
        sa.Column("effective_from", sa.Date, nullable=False),
        sa.Column("note", sa.Text, nullable=False),
        sa.Column("set_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("set_by", sa.String(128), nullable=False),
    )
    op.create_index("worker_roles_worker", "worker_roles", ["worker", "effective_from"])


def downgrade() -> None:
    op.drop_index("worker_roles_worker", "worker_roles")
    op.drop_table("worker_roles")
