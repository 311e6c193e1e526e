"""Worker self-service keys: an API key may be bound to one worker (scope ``self``).

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision: str | None = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("apikeys") as batch:
        batch.add_column(sa.Column("worker", sa.String(64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("apikeys") as batch:
        batch.drop_column("worker")
