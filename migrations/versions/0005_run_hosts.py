"""Runs shared by workers: each target's host and the hosts' leases (run_hosts).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add run_targets.host and the run_hosts table of leases."""
    with op.batch_alter_table("run_targets") as batch:
        batch.add_column(sa.Column("host", sa.String(length=255), nullable=True))
    op.create_table(
        "run_hosts",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("host", sa.String(length=255), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("worker", sa.String(length=128), nullable=True),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("claims", sa.Integer(), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status IN ('pending', 'claimed', 'done')", name=op.f("ck_run_hosts_status")
        ),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["probe_runs.id"],
            name=op.f("fk_run_hosts_run_id_probe_runs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_run_hosts")),
        sa.UniqueConstraint("run_id", "host", name=op.f("uq_run_hosts_run_id_host")),
    )


def downgrade() -> None:
    """Drop run_hosts and run_targets.host."""
    op.drop_table("run_hosts")
    with op.batch_alter_table("run_targets") as batch:
        batch.drop_column("host")
