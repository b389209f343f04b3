"""An index on run_targets (run_id, status, host): the queue's queries by host and state.

Claiming a slice of a host, handing it back and sizing the next slice ask for a run's pending
targets, on one host or in all; without this index each of them read every target of the run
(the unique (run_id, endpoint_id) index narrows to the run only): a Lantern-sized run of 29,400
targets claimed in about 1,800 slices read some 160 million rows under the write lock.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create ix_run_targets_run_status_host."""
    op.create_index("ix_run_targets_run_status_host", "run_targets", ["run_id", "status", "host"])


def downgrade() -> None:
    """Drop it."""
    op.drop_index("ix_run_targets_run_status_host", table_name="run_targets")
