"""run_hosts.pending_targets and an index to claim the host with the most work left first.

A worker claims the free host of a run with the most pending targets (longest work first): the
largest hosts start at once and never wait behind small ones (the politeness bound of a run is
its largest host's), and hosts of equal size take turns, so they finish together instead of the
first-listed ones first and the last ones in a tail at the end. `pending_targets` is the host's
pending targets when it was listed or last handed back; the index reads the free pending hosts
in that order without visiting the run's done hosts.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add run_hosts.pending_targets (counted for existing rows) and its claim index."""
    with op.batch_alter_table("run_hosts") as batch:
        batch.add_column(
            sa.Column("pending_targets", sa.Integer(), nullable=False, server_default="0")
        )
    op.execute(
        "UPDATE run_hosts SET pending_targets = (SELECT count(*) FROM run_targets "
        "WHERE run_targets.run_id = run_hosts.run_id AND run_targets.host = run_hosts.host "
        "AND run_targets.status = 'pending')"
    )
    op.create_index(
        "ix_run_hosts_run_status_pending",
        "run_hosts",
        ["run_id", "status", sa.text("pending_targets DESC"), "id"],
    )


def downgrade() -> None:
    """Drop the index and the column."""
    op.drop_index("ix_run_hosts_run_status_pending", table_name="run_hosts")
    with op.batch_alter_table("run_hosts") as batch:
        batch.drop_column("pending_targets")
