"""The observation store's schema as SQLAlchemy 2.x typed ORM models.

Every table, column, constraint and index here is mirrored by the Alembic migrations in the
repository's ``migrations/versions``; a test asserts the two never drift apart. Resource bodies
(patient data) have no column anywhere: only counts, ids, timings and public server documents
(CapabilityStatement, SMART configuration) are stored.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

#: JSON everywhere, stored as JSONB on PostgreSQL.
JSONType = JSON().with_variant(JSONB(), "postgresql")
#: 64-bit surrogate keys for the high-volume tables (SQLite needs INTEGER for its rowid alias).
BigId = BigInteger().with_variant(Integer(), "sqlite")


def utcnow() -> datetime:
    """The current time as an aware UTC datetime."""
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored in UTC and always read back as an aware UTC datetime (SQLite too)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Convert to UTC (naive values are taken to be UTC already)."""
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Attach UTC to the naive values SQLite returns."""
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class RunKind(enum.StrEnum):
    """What started a probe run."""

    NIGHTLY = "nightly"
    CHECK = "check"
    PRERELEASE = "prerelease"
    SYNC = "sync"


class RunStatus(enum.StrEnum):
    """Where a probe run stands."""

    RUNNING = "running"
    COMPLETED = "completed"
    INTERRUPTED = "interrupted"
    FAILED = "failed"


class TargetStatus(enum.StrEnum):
    """Where one endpoint of a run stands; anything not `done` is redone on resume."""

    PENDING = "pending"
    DONE = "done"
    FAILED = "failed"


class HostStatus(enum.StrEnum):
    """Where one host of a shared run stands: waiting, held by a worker, or finished."""

    PENDING = "pending"
    CLAIMED = "claimed"
    DONE = "done"


class DocumentKind(enum.StrEnum):
    """Which server document a stored body is."""

    CAPABILITY = "capability"
    SMART_CONFIGURATION = "smart_configuration"


_ENVIRONMENTS = ("production", "sandbox")
_STEPS = (
    "discovery",
    "everything",
    "individual",
    "pagination",
    "retry",
    "reference",
    "token",
    "portal",
)
_CHECK_STATUSES = ("pass", "fail", "warn", "skip", "error")
_SEVERITIES = ("required", "recommended", "informational")


def _in(column: str, values: Iterable[str]) -> str:
    """SQL for a CHECK that `column` holds one of `values`."""
    listed = ", ".join(f"'{v}'" for v in values)
    return f"{column} IN ({listed})"


class Base(DeclarativeBase):
    """Declarative base carrying the constraint naming convention the migrations rely on."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class PayerRow(Base):
    """A health plan, as named in the directory (or after a host for ad-hoc checks)."""

    __tablename__ = "payers"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(300), unique=True)
    lives: Mapped[int | None] = mapped_column(BigInteger)
    vendor: Mapped[str | None] = mapped_column(String(200))
    organization_status: Mapped[str] = mapped_column(String(40), default="none")
    lines_of_business: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    source: Mapped[str | None] = mapped_column(Text)

    endpoints: Mapped[list[EndpointRow]] = relationship(back_populates="payer")


class EndpointRow(Base):
    """One FHIR base URL of a payer in one environment."""

    __tablename__ = "endpoints"
    __table_args__ = (
        UniqueConstraint("environment", "base_url"),
        CheckConstraint(_in("environment", _ENVIRONMENTS), name="environment"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    payer_id: Mapped[int] = mapped_column(ForeignKey("payers.id", ondelete="CASCADE"), index=True)
    environment: Mapped[str] = mapped_column(String(16))
    base_url: Mapped[str] = mapped_column(String(2048))
    portal_url: Mapped[str | None] = mapped_column(String(2048))
    facts: Mapped[dict[str, Any] | None] = mapped_column(JSONType)

    payer: Mapped[PayerRow] = relationship(back_populates="endpoints")


class ProbeRunRow(Base):
    """One invocation of probe that records observations (a crawl, a check, a sync)."""

    __tablename__ = "probe_runs"
    __table_args__ = (
        CheckConstraint(_in("kind", RunKind), name="kind"),
        CheckConstraint(_in("status", RunStatus), name="status"),
        Index(None, "status"),
        Index(None, "kind", "started_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    status: Mapped[str] = mapped_column(String(16), default=RunStatus.RUNNING.value)
    probe_version: Mapped[str] = mapped_column(String(64))
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    config: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    note: Mapped[str | None] = mapped_column(Text)


class RunTargetRow(Base):
    """One endpoint of a run and whether it is done, so an interrupted crawl can resume."""

    __tablename__ = "run_targets"
    __table_args__ = (
        UniqueConstraint("run_id", "endpoint_id"),
        CheckConstraint(_in("status", TargetStatus), name="status"),
        Index(None, "endpoint_id"),
        # The queue's queries: a host's pending targets, a run's pending count (migration 0007).
        Index("ix_run_targets_run_status_host", "run_id", "status", "host"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("probe_runs.id", ondelete="CASCADE"))
    endpoint_id: Mapped[int] = mapped_column(ForeignKey("endpoints.id", ondelete="CASCADE"))
    status: Mapped[str] = mapped_column(String(16), default=TargetStatus.PENDING.value)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    error: Mapped[str | None] = mapped_column(Text)
    #: The endpoint's host (lowercased authority); workers claim a run's targets host by host.
    host: Mapped[str | None] = mapped_column(String(255))


class RunHostRow(Base):
    """One host of a run shared by workers: who holds it and until when (a lease).

    A worker claims a host with a slice of its pending targets and alone probes them, so
    per-host politeness holds across processes without a shared rate limiter; it hands the
    host back with a *not before* (`lease_until` of a pending host) and the pace it came to
    (`pace_ms`). A worker that dies stops renewing its lease and another worker takes the
    host over once the lease expires.
    """

    __tablename__ = "run_hosts"
    __table_args__ = (
        UniqueConstraint("run_id", "host"),
        CheckConstraint(_in("status", HostStatus), name="status"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("probe_runs.id", ondelete="CASCADE"))
    host: Mapped[str] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(16), default=HostStatus.PENDING.value)
    worker: Mapped[str | None] = mapped_column(String(128))
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    claims: Mapped[int] = mapped_column(Integer, default=0)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    #: Seconds between request starts the last holder had come to (after any throttling), ms.
    pace_ms: Mapped[float | None] = mapped_column(Float)
    #: The host's pending targets when it was listed or last handed back: claims take the free
    #: host with the most first (longest work first, so the largest hosts never wait).
    pending_targets: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


# Claims read a run's free pending hosts, most work left first, in listing order among equals
# (migration 0008).
Index(
    "ix_run_hosts_run_status_pending",
    RunHostRow.run_id,
    RunHostRow.status,
    RunHostRow.pending_targets.desc(),
    RunHostRow.id,
)


class CheckResultRow(Base):
    """One check's verdict for one endpoint in one run."""

    __tablename__ = "check_results"
    __table_args__ = (
        UniqueConstraint("run_id", "endpoint_id", "check_id"),
        CheckConstraint(_in("status", _CHECK_STATUSES), name="status"),
        CheckConstraint(_in("severity", _SEVERITIES), name="severity"),
        Index(None, "endpoint_id", "observed_at"),
        Index(None, "check_id", "observed_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("probe_runs.id", ondelete="CASCADE"))
    endpoint_id: Mapped[int] = mapped_column(ForeignKey("endpoints.id", ondelete="CASCADE"))
    check_id: Mapped[str] = mapped_column(String(128))
    status: Mapped[str] = mapped_column(String(16))
    severity: Mapped[str] = mapped_column(String(16))
    message: Mapped[str] = mapped_column(Text)
    evidence: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    observed_at: Mapped[datetime] = mapped_column(UTCDateTime())


class HttpRequestRow(Base):
    """One HTTP request probe made: never its body, and the URL without query-string secrets."""

    __tablename__ = "http_requests"
    __table_args__ = (
        CheckConstraint(_in("step", _STEPS), name="step"),
        Index(None, "run_id", "endpoint_id"),
        Index(None, "endpoint_id", "started_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("probe_runs.id", ondelete="CASCADE"))
    endpoint_id: Mapped[int] = mapped_column(ForeignKey("endpoints.id", ondelete="CASCADE"))
    method: Mapped[str] = mapped_column(String(10))
    url: Mapped[str] = mapped_column(Text)
    status: Mapped[int | None] = mapped_column(Integer)
    latency_ms: Mapped[float] = mapped_column(Float)
    bytes: Mapped[int] = mapped_column(BigInteger)
    content_type: Mapped[str | None] = mapped_column(String(255))
    error_class: Mapped[str | None] = mapped_column(String(64))
    step: Mapped[str] = mapped_column(String(16))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    #: Probe's own wait (politeness, concurrency) before sending; sent at started_at + wait_ms.
    wait_ms: Mapped[float | None] = mapped_column(Float)


class SyncJobRow(Base):
    """One patient-data sync against an endpoint: counts, ids and timings, never resources."""

    __tablename__ = "sync_jobs"
    __table_args__ = (
        Index(None, "run_id", "endpoint_id"),
        Index(None, "endpoint_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("probe_runs.id", ondelete="CASCADE"))
    endpoint_id: Mapped[int] = mapped_column(ForeignKey("endpoints.id", ondelete="CASCADE"))
    patient_label: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    outcome: Mapped[str | None] = mapped_column(String(64))
    resources_by_type: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    pages: Mapped[int] = mapped_column(Integer, default=0)
    bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    references_found: Mapped[int] = mapped_column(Integer, default=0)
    references_resolved: Mapped[int] = mapped_column(Integer, default=0)
    details: Mapped[dict[str, Any] | None] = mapped_column(JSONType)


class DocumentRow(Base):
    """A server document body, stored once per distinct content (sha256 of canonical JSON)."""

    __tablename__ = "documents"
    __table_args__ = (
        UniqueConstraint("kind", "content_hash"),
        CheckConstraint(_in("kind", DocumentKind), name="kind"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    content_hash: Mapped[str] = mapped_column(String(64))
    body: Mapped[dict[str, Any]] = mapped_column(JSONType)
    first_seen: Mapped[datetime] = mapped_column(UTCDateTime())


class DocumentSightingRow(Base):
    """That an endpoint served a document in a run; the trail shows when content changed."""

    __tablename__ = "document_sightings"
    __table_args__ = (
        UniqueConstraint("document_id", "run_id", "endpoint_id"),
        Index(None, "endpoint_id", "seen_at"),
        Index(None, "run_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    document_id: Mapped[int] = mapped_column(ForeignKey("documents.id", ondelete="CASCADE"))
    run_id: Mapped[int] = mapped_column(ForeignKey("probe_runs.id", ondelete="CASCADE"))
    endpoint_id: Mapped[int] = mapped_column(ForeignKey("endpoints.id", ondelete="CASCADE"))
    seen_at: Mapped[datetime] = mapped_column(UTCDateTime())


class RunLockRow(Base):
    """A named cross-process lock (e.g. 'nightly'); a row present and fresh means it is held."""

    __tablename__ = "run_locks"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str] = mapped_column(String(255))
    acquired_at: Mapped[datetime] = mapped_column(UTCDateTime())
    heartbeat_at: Mapped[datetime] = mapped_column(UTCDateTime())


metadata = Base.metadata


AUTHORIZATION_STATES = ("authorized", "exchanged", "revoked", "bounced", "failed")
"""Final states of a live patient authorization, as in the authorization log (lower case)."""

AUTHORIZATION_ORIGINS = ("imported", "observed")
"""Where an authorization attempt row comes from: an imported log, or probe's own browser."""


class AuthorizationAttemptRow(Base):
    """One live-mode patient authorization attempt, imported from an authorization log.

    `attempt_key` is the natural key within an endpoint (the log's own id, or a digest of the
    row's content and its occurrence in the file), so importing the same file twice adds nothing.
    """

    __tablename__ = "authorization_attempts"
    __table_args__ = (
        UniqueConstraint("endpoint_id", "attempt_key"),
        CheckConstraint(_in("state", AUTHORIZATION_STATES), name="state"),
        CheckConstraint(_in("origin", AUTHORIZATION_ORIGINS), name="origin"),
        Index(None, "endpoint_id", "attempted_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    endpoint_id: Mapped[int] = mapped_column(ForeignKey("endpoints.id", ondelete="CASCADE"))
    attempt_key: Mapped[str] = mapped_column(String(200))
    attempted_at: Mapped[datetime] = mapped_column(UTCDateTime())
    state: Mapped[str] = mapped_column(String(16))
    query_ineligible: Mapped[bool] = mapped_column(Boolean, default=False)
    source: Mapped[str | None] = mapped_column(String(300))
    imported_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # `imported` from an authorization log, or `observed` by `probe authorize` (issue 13), which
    # also records its finer outcome and evidence (hosts and titles, never codes or tokens).
    origin: Mapped[str] = mapped_column(String(16), default="imported", server_default="imported")
    outcome: Mapped[str | None] = mapped_column(String(32))
    evidence: Mapped[dict[str, Any] | None] = mapped_column(JSONType)


DRIFT_KINDS = ("breaking", "notable", "cosmetic")
"""How much a drift event matters: `breaking` can fail a developer's working integration."""


class DriftEventRow(Base):
    """One change an endpoint showed between two runs (see ``probe.drift`` and docs/drift.md).

    `change_id` is stable (the same change always has the same id), so detecting a run's drift
    twice adds nothing: (run, endpoint, change) is unique. `before`/`after` hold public document
    values or observed facts, never secrets.
    """

    __tablename__ = "drift_events"
    __table_args__ = (
        UniqueConstraint("run_id", "endpoint_id", "change_id"),
        CheckConstraint(_in("kind", DRIFT_KINDS), name="kind"),
        Index(None, "endpoint_id", "detected_at"),
        Index(None, "detected_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("probe_runs.id", ondelete="CASCADE"))
    endpoint_id: Mapped[int] = mapped_column(ForeignKey("endpoints.id", ondelete="CASCADE"))
    previous_run_id: Mapped[int | None] = mapped_column(
        ForeignKey("probe_runs.id", ondelete="SET NULL")
    )
    kind: Mapped[str] = mapped_column(String(16))
    change_id: Mapped[str] = mapped_column(String(300))
    path: Mapped[str] = mapped_column(Text)
    before: Mapped[Any | None] = mapped_column(JSONType)
    after: Mapped[Any | None] = mapped_column(JSONType)
    reason: Mapped[str] = mapped_column(Text)
    detected_at: Mapped[datetime] = mapped_column(UTCDateTime())
