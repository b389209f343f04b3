"""Probe's own waiting per request (http_requests.wait_ms) and a shared host's pace
(run_hosts.pace_ms).

`latency_ms` is the server's time on the wire; `wait_ms` is the time the request waited for
probe's politeness and concurrency limits before it was sent (its send time is `started_at`
plus `wait_ms`). `pace_ms` is the interval between request starts a worker handing a host back
had come to (slower than `--rate` after the host throttled): the next worker starts there.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add http_requests.wait_ms and run_hosts.pace_ms (both nullable: older rows have none)."""
    with op.batch_alter_table("http_requests") as batch:
        batch.add_column(sa.Column("wait_ms", sa.Float(), nullable=True))
    with op.batch_alter_table("run_hosts") as batch:
        batch.add_column(sa.Column("pace_ms", sa.Float(), nullable=True))


def downgrade() -> None:
    """Drop the two columns."""
    with op.batch_alter_table("run_hosts") as batch:
        batch.drop_column("pace_ms")
    with op.batch_alter_table("http_requests") as batch:
        batch.drop_column("wait_ms")
