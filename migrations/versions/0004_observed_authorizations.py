"""Authorization attempts observed by `probe authorize`: origin, outcome and evidence columns.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    """Add origin (imported rows stay `imported`), outcome and evidence."""
    with op.batch_alter_table("authorization_attempts") as batch:
        batch.add_column(
            sa.Column(
                "origin", sa.String(length=16), nullable=False, server_default="imported"
            )
        )
        batch.add_column(sa.Column("outcome", sa.String(length=32), nullable=True))
        batch.add_column(sa.Column("evidence", _JSON, nullable=True))
        batch.create_check_constraint(
            op.f("ck_authorization_attempts_origin"), "origin IN ('imported', 'observed')"
        )


def downgrade() -> None:
    """Drop the columns again (observed rows stay, as attempts without their origin)."""
    with op.batch_alter_table("authorization_attempts") as batch:
        batch.drop_constraint(op.f("ck_authorization_attempts_origin"), type_="check")
        batch.drop_column("evidence")
        batch.drop_column("outcome")
        batch.drop_column("origin")
