"""Initial schema: payers, endpoints, runs, targets, results, requests, sync jobs, documents, locks.

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _json() -> sa.types.TypeEngine[object]:
    return sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def _bigid() -> sa.types.TypeEngine[int]:
    return sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _ts() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def _fk(table: str, column: str, target: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        [column], [f"{target}.id"], name=op.f(f"fk_{table}_{column}_{target}"), ondelete="CASCADE"
    )


def upgrade() -> None:
    """Create every table of the observation store."""
    op.create_table(
        "payers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=300), nullable=False),
        sa.Column("lives", sa.BigInteger(), nullable=True),
        sa.Column("vendor", sa.String(length=200), nullable=True),
        sa.Column("organization_status", sa.String(length=40), nullable=False),
        sa.Column("lines_of_business", _json(), nullable=True),
        sa.Column("source", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payers")),
        sa.UniqueConstraint("name", name=op.f("uq_payers_name")),
    )
    op.create_table(
        "endpoints",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("payer_id", sa.Integer(), nullable=False),
        sa.Column("environment", sa.String(length=16), nullable=False),
        sa.Column("base_url", sa.String(length=2048), nullable=False),
        sa.Column("portal_url", sa.String(length=2048), nullable=True),
        sa.Column("facts", _json(), nullable=True),
        sa.CheckConstraint(
            "environment IN ('production', 'sandbox')", name=op.f("ck_endpoints_environment")
        ),
        _fk("endpoints", "payer_id", "payers"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_endpoints")),
        sa.UniqueConstraint(
            "environment", "base_url", name=op.f("uq_endpoints_environment_base_url")
        ),
    )
    op.create_index(op.f("ix_endpoints_payer_id"), "endpoints", ["payer_id"])

    op.create_table(
        "probe_runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("started_at", _ts(), nullable=False),
        sa.Column("finished_at", _ts(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("probe_version", sa.String(length=64), nullable=False),
        sa.Column("host", sa.String(length=255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("config", _json(), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.CheckConstraint(
            "kind IN ('nightly', 'check', 'prerelease', 'sync')", name=op.f("ck_probe_runs_kind")
        ),
        sa.CheckConstraint(
            "status IN ('running', 'completed', 'interrupted', 'failed')",
            name=op.f("ck_probe_runs_status"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_probe_runs")),
    )
    op.create_index(op.f("ix_probe_runs_kind_started_at"), "probe_runs", ["kind", "started_at"])
    op.create_index(op.f("ix_probe_runs_status"), "probe_runs", ["status"])

    op.create_table(
        "run_targets",
        sa.Column("id", _bigid(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("endpoint_id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("started_at", _ts(), nullable=True),
        sa.Column("finished_at", _ts(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.CheckConstraint(
            "status IN ('pending', 'done', 'failed')", name=op.f("ck_run_targets_status")
        ),
        _fk("run_targets", "endpoint_id", "endpoints"),
        _fk("run_targets", "run_id", "probe_runs"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_run_targets")),
        sa.UniqueConstraint(
            "run_id", "endpoint_id", name=op.f("uq_run_targets_run_id_endpoint_id")
        ),
    )
    op.create_index(op.f("ix_run_targets_endpoint_id"), "run_targets", ["endpoint_id"])

    op.create_table(
        "check_results",
        sa.Column("id", _bigid(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("endpoint_id", sa.Integer(), nullable=False),
        sa.Column("check_id", sa.String(length=128), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("severity", sa.String(length=16), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("evidence", _json(), nullable=True),
        sa.Column("observed_at", _ts(), nullable=False),
        sa.CheckConstraint(
            "severity IN ('required', 'recommended', 'informational')",
            name=op.f("ck_check_results_severity"),
        ),
        sa.CheckConstraint(
            "status IN ('pass', 'fail', 'warn', 'skip', 'error')",
            name=op.f("ck_check_results_status"),
        ),
        _fk("check_results", "endpoint_id", "endpoints"),
        _fk("check_results", "run_id", "probe_runs"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_check_results")),
        sa.UniqueConstraint(
            "run_id",
            "endpoint_id",
            "check_id",
            name=op.f("uq_check_results_run_id_endpoint_id_check_id"),
        ),
    )
    op.create_index(
        op.f("ix_check_results_check_id_observed_at"), "check_results", ["check_id", "observed_at"]
    )
    op.create_index(
        op.f("ix_check_results_endpoint_id_observed_at"),
        "check_results",
        ["endpoint_id", "observed_at"],
    )

    op.create_table(
        "http_requests",
        sa.Column("id", _bigid(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("endpoint_id", sa.Integer(), nullable=False),
        sa.Column("method", sa.String(length=10), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("status", sa.Integer(), nullable=True),
        sa.Column("latency_ms", sa.Float(), nullable=False),
        sa.Column("bytes", sa.BigInteger(), nullable=False),
        sa.Column("content_type", sa.String(length=255), nullable=True),
        sa.Column("error_class", sa.String(length=64), nullable=True),
        sa.Column("step", sa.String(length=16), nullable=False),
        sa.Column("started_at", _ts(), nullable=False),
        sa.CheckConstraint(
            "step IN ('discovery', 'everything', 'individual', 'pagination', 'retry', "
            "'reference', 'token', 'portal')",
            name=op.f("ck_http_requests_step"),
        ),
        _fk("http_requests", "endpoint_id", "endpoints"),
        _fk("http_requests", "run_id", "probe_runs"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_http_requests")),
    )
    op.create_index(
        op.f("ix_http_requests_endpoint_id_started_at"),
        "http_requests",
        ["endpoint_id", "started_at"],
    )
    op.create_index(
        op.f("ix_http_requests_run_id_endpoint_id"), "http_requests", ["run_id", "endpoint_id"]
    )

    op.create_table(
        "sync_jobs",
        sa.Column("id", _bigid(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("endpoint_id", sa.Integer(), nullable=False),
        sa.Column("patient_label", sa.String(length=200), nullable=False),
        sa.Column("created_at", _ts(), nullable=False),
        sa.Column("completed_at", _ts(), nullable=True),
        sa.Column("outcome", sa.String(length=64), nullable=True),
        sa.Column("resources_by_type", _json(), nullable=True),
        sa.Column("pages", sa.Integer(), nullable=False),
        sa.Column("bytes", sa.BigInteger(), nullable=False),
        sa.Column("references_found", sa.Integer(), nullable=False),
        sa.Column("references_resolved", sa.Integer(), nullable=False),
        sa.Column("details", _json(), nullable=True),
        _fk("sync_jobs", "endpoint_id", "endpoints"),
        _fk("sync_jobs", "run_id", "probe_runs"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sync_jobs")),
    )
    op.create_index(
        op.f("ix_sync_jobs_endpoint_id_created_at"), "sync_jobs", ["endpoint_id", "created_at"]
    )
    op.create_index(op.f("ix_sync_jobs_run_id_endpoint_id"), "sync_jobs", ["run_id", "endpoint_id"])

    op.create_table(
        "documents",
        sa.Column("id", _bigid(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("body", _json(), nullable=False),
        sa.Column("first_seen", _ts(), nullable=False),
        sa.CheckConstraint(
            "kind IN ('capability', 'smart_configuration')", name=op.f("ck_documents_kind")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_documents")),
        sa.UniqueConstraint("kind", "content_hash", name=op.f("uq_documents_kind_content_hash")),
    )
    op.create_table(
        "document_sightings",
        sa.Column("id", _bigid(), nullable=False),
        sa.Column("document_id", _bigid(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("endpoint_id", sa.Integer(), nullable=False),
        sa.Column("seen_at", _ts(), nullable=False),
        _fk("document_sightings", "document_id", "documents"),
        _fk("document_sightings", "endpoint_id", "endpoints"),
        _fk("document_sightings", "run_id", "probe_runs"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_document_sightings")),
        sa.UniqueConstraint(
            "document_id",
            "run_id",
            "endpoint_id",
            name=op.f("uq_document_sightings_document_id_run_id_endpoint_id"),
        ),
    )
    op.create_index(
        op.f("ix_document_sightings_endpoint_id_seen_at"),
        "document_sightings",
        ["endpoint_id", "seen_at"],
    )
    op.create_index(op.f("ix_document_sightings_run_id"), "document_sightings", ["run_id"])

    op.create_table(
        "run_locks",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("holder", sa.String(length=255), nullable=False),
        sa.Column("acquired_at", _ts(), nullable=False),
        sa.Column("heartbeat_at", _ts(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_run_locks")),
    )


def downgrade() -> None:
    """Drop every table of the observation store (their indexes go with them)."""
    for table in (
        "run_locks",
        "document_sightings",
        "documents",
        "sync_jobs",
        "http_requests",
        "check_results",
        "run_targets",
        "probe_runs",
        "endpoints",
        "payers",
    ):
        op.drop_table(table)
