"""Read helpers over stored observations: what an endpoint returned over time.

All functions take a Session and only read.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from probe.store.tables import (
    CheckResultRow,
    DocumentKind,
    DocumentRow,
    DocumentSightingRow,
    HttpRequestRow,
    ProbeRunRow,
)


@dataclass(frozen=True, slots=True)
class DocumentVersion:
    """One stretch of time an endpoint served the same document content."""

    document_id: int
    content_hash: str
    first_seen: datetime
    last_seen: datetime
    sightings: int
    run_ids: tuple[int, ...]


def document_history(
    session: Session, endpoint_id: int, kind: DocumentKind | str
) -> list[DocumentVersion]:
    """The endpoint's document of this kind over time, oldest first, one entry per change.

    Consecutive sightings of identical content are merged; content that changes back to an
    earlier version starts a new entry, so every change is visible.
    """
    rows = session.execute(
        select(
            DocumentSightingRow.document_id,
            DocumentRow.content_hash,
            DocumentSightingRow.seen_at,
            DocumentSightingRow.run_id,
        )
        .join(DocumentRow, DocumentRow.id == DocumentSightingRow.document_id)
        .where(
            DocumentSightingRow.endpoint_id == endpoint_id,
            DocumentRow.kind == str(DocumentKind(kind)),
        )
        .order_by(DocumentSightingRow.seen_at, DocumentSightingRow.id)
    ).all()
    versions: list[DocumentVersion] = []
    for doc_id, digest, seen_at, run_id in rows:
        last = versions[-1] if versions else None
        if last is not None and last.document_id == doc_id:
            versions[-1] = DocumentVersion(
                doc_id,
                digest,
                last.first_seen,
                seen_at,
                last.sightings + 1,
                (*last.run_ids, run_id),
            )
        else:
            versions.append(DocumentVersion(doc_id, digest, seen_at, seen_at, 1, (run_id,)))
    return versions


def document_body(session: Session, document_id: int) -> dict[str, Any] | None:
    """The stored body of a document, or None when there is no such document."""
    return session.scalar(select(DocumentRow.body).where(DocumentRow.id == document_id))


@dataclass(frozen=True, slots=True)
class CheckObservation:
    """One stored verdict of one check, with the run it came from."""

    run_id: int
    run_kind: str
    check_id: str
    status: str
    severity: str
    message: str
    observed_at: datetime


def check_history(
    session: Session, endpoint_id: int, check_id: str | None = None, *, limit: int = 50
) -> list[CheckObservation]:
    """The endpoint's stored check verdicts, newest first (only `check_id` when given)."""
    query = (
        select(
            CheckResultRow.run_id,
            ProbeRunRow.kind,
            CheckResultRow.check_id,
            CheckResultRow.status,
            CheckResultRow.severity,
            CheckResultRow.message,
            CheckResultRow.observed_at,
        )
        .join(ProbeRunRow, ProbeRunRow.id == CheckResultRow.run_id)
        .where(CheckResultRow.endpoint_id == endpoint_id)
        .order_by(CheckResultRow.observed_at.desc(), CheckResultRow.id.desc())
        .limit(limit)
    )
    if check_id is not None:
        query = query.where(CheckResultRow.check_id == check_id)
    return [CheckObservation(*row) for row in session.execute(query)]


@dataclass(frozen=True, slots=True)
class RunSummary:
    """How one run went for one endpoint: check verdicts counted by status."""

    run_id: int
    kind: str
    run_status: str
    started_at: datetime
    counts: dict[str, int] = field(default_factory=dict)


def run_history(session: Session, endpoint_id: int, *, limit: int = 20) -> list[RunSummary]:
    """The runs that stored check results for this endpoint, newest first, with status counts."""
    runs = session.execute(
        select(ProbeRunRow.id, ProbeRunRow.kind, ProbeRunRow.status, ProbeRunRow.started_at)
        .where(
            ProbeRunRow.id.in_(
                select(CheckResultRow.run_id)
                .where(CheckResultRow.endpoint_id == endpoint_id)
                .distinct()
            )
        )
        .order_by(ProbeRunRow.started_at.desc(), ProbeRunRow.id.desc())
        .limit(limit)
    ).all()
    if not runs:
        return []
    counts: dict[int, Counter[str]] = {run_id: Counter() for run_id, *_ in runs}
    for run_id, status, n in session.execute(
        select(CheckResultRow.run_id, CheckResultRow.status, func.count())
        .where(CheckResultRow.endpoint_id == endpoint_id, CheckResultRow.run_id.in_(counts))
        .group_by(CheckResultRow.run_id, CheckResultRow.status)
    ):
        counts[run_id][status] = n
    return [
        RunSummary(run_id, kind, status, started, dict(counts[run_id]))
        for run_id, kind, status, started in runs
    ]


@dataclass(frozen=True, slots=True)
class StepStats:
    """Request outcomes for one extraction step: how many, how many got a 2xx, latency."""

    step: str
    requests: int
    succeeded: int
    mean_latency_ms: float

    @property
    def success_rate(self) -> float:
        """Share of requests answered with a 2xx (0.0 when there were none)."""
        return self.succeeded / self.requests if self.requests else 0.0


def request_stats_by_step(
    session: Session, run_id: int, endpoint_id: int | None = None
) -> dict[str, StepStats]:
    """Request success rates and mean latency per extraction step, for a run (and endpoint)."""
    ok = case((HttpRequestRow.status.between(200, 299), 1), else_=0)
    query = (
        select(
            HttpRequestRow.step,
            func.count(),
            func.coalesce(func.sum(ok), 0),
            func.coalesce(func.avg(HttpRequestRow.latency_ms), 0.0),
        )
        .where(HttpRequestRow.run_id == run_id)
        .group_by(HttpRequestRow.step)
    )
    if endpoint_id is not None:
        query = query.where(HttpRequestRow.endpoint_id == endpoint_id)
    return {
        step: StepStats(step, int(n), int(good), float(latency))
        for step, n, good, latency in session.execute(query)
    }
