"""KPI scheme versions and external metric values.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision: str | None = "0001"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "scheme_versions",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("scheme", sa.String(64), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("effective_from", sa.Date, nullable=False),
        sa.Column("spec", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(128), nullable=False),
        sa.UniqueConstraint("scheme", "version", name="scheme_versions_version"),
        sa.UniqueConstraint("scheme", "effective_from", name="scheme_versions_effective"),
    )
    op.create_table(
        "external_metrics",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("worker", sa.String(64), nullable=False),
        sa.Column("metric", sa.String(64), nullable=False),
        sa.Column("period_start", sa.Date, nullable=False),
        sa.Column("period_end", sa.Date, nullable=False),
        sa.Column("value", sa.Float, nullable=False),
        sa.Column("source", sa.String(64), nullable=False),
        sa.Column("reference", sa.String(256), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("received_by", sa.String(128), nullable=False),
        sa.UniqueConstraint("source", "reference", name="external_metrics_reference"),
    )
    op.create_index(
        "external_metrics_metric_period", "external_metrics", ["metric", "period_start"]
    )


def downgrade() -> None:
    op.drop_index("external_metrics_metric_period", "external_metrics")
    op.drop_table("external_metrics")
    op.drop_table("scheme_versions")
