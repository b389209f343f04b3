"""Authorization attempts imported from an authorization log (`probe import authorizations`).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create the authorization_attempts table."""
    op.create_table(
        "authorization_attempts",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("endpoint_id", sa.Integer(), nullable=False),
        sa.Column("attempt_key", sa.String(length=200), nullable=False),
        sa.Column("attempted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("query_ineligible", sa.Boolean(), nullable=False),
        sa.Column("source", sa.String(length=300), nullable=True),
        sa.Column("imported_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "state IN ('authorized', 'exchanged', 'revoked', 'bounced', 'failed')",
            name=op.f("ck_authorization_attempts_state"),
        ),
        sa.ForeignKeyConstraint(
            ["endpoint_id"],
            ["endpoints.id"],
            name=op.f("fk_authorization_attempts_endpoint_id_endpoints"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_authorization_attempts")),
        sa.UniqueConstraint(
            "endpoint_id",
            "attempt_key",
            name=op.f("uq_authorization_attempts_endpoint_id_attempt_key"),
        ),
    )
    op.create_index(
        op.f("ix_authorization_attempts_endpoint_id_attempted_at"),
        "authorization_attempts",
        ["endpoint_id", "attempted_at"],
    )


def downgrade() -> None:
    """Drop the authorization_attempts table (its index goes with it)."""
    op.drop_table("authorization_attempts")
