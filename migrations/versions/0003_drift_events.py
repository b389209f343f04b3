"""Drift events: what changed at an endpoint between two runs (`probe drift`).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    """Create the drift_events table."""
    op.create_table(
        "drift_events",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("endpoint_id", sa.Integer(), nullable=False),
        sa.Column("previous_run_id", sa.Integer(), nullable=True),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("change_id", sa.String(length=300), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("before", _JSON, nullable=True),
        sa.Column("after", _JSON, nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("detected_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "kind IN ('breaking', 'notable', 'cosmetic')",
            name=op.f("ck_drift_events_kind"),
        ),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["probe_runs.id"],
            name=op.f("fk_drift_events_run_id_probe_runs"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["endpoint_id"],
            ["endpoints.id"],
            name=op.f("fk_drift_events_endpoint_id_endpoints"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["previous_run_id"],
            ["probe_runs.id"],
            name=op.f("fk_drift_events_previous_run_id_probe_runs"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_drift_events")),
        sa.UniqueConstraint(
            "run_id",
            "endpoint_id",
            "change_id",
            name=op.f("uq_drift_events_run_id_endpoint_id_change_id"),
        ),
    )
    op.create_index(
        op.f("ix_drift_events_endpoint_id_detected_at"),
        "drift_events",
        ["endpoint_id", "detected_at"],
    )
    op.create_index(op.f("ix_drift_events_detected_at"), "drift_events", ["detected_at"])


def downgrade() -> None:
    """Drop the drift_events table (its indexes go with it)."""
    op.drop_table("drift_events")
