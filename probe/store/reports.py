"""Saving one discovery report (`probe check --save`) as a run of its own, and reading back the
newest check verdicts per endpoint (the HTML report's conformance section)."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, or_, select, true
from sqlalchemy.orm import Session

from probe.directory.schema import Environment
from probe.models import Report
from probe.store.handle import Store
from probe.store.runs import register_targets
from probe.store.tables import (
    CheckResultRow,
    EndpointRow,
    PayerRow,
    ProbeRunRow,
    RunKind,
    RunStatus,
    TargetStatus,
)


def save_report(
    store: Store,
    report: Report,
    *,
    kind: RunKind = RunKind.CHECK,
    environment: Environment = Environment.PRODUCTION,
    payer_name: str | None = None,
) -> int:
    """Store the report's checks, requests and documents as a completed run; return its id."""
    endpoint_id = store.ensure_endpoint(report.base_url, environment, payer_name)
    run_id = store.start_run(kind, {"base_url": report.base_url})
    register_targets(store.engine, run_id, [endpoint_id])
    with store.writer(run_id) as writer:
        writer.mark_target(endpoint_id, TargetStatus.PENDING, started_at=report.started_at)
        writer.add_exchanges(endpoint_id, report.exchanges)
        writer.add_check_results(endpoint_id, report.results, observed_at=report.started_at)
        for doc_kind, body in report.documents.items():
            writer.add_document(endpoint_id, doc_kind, body, seen_at=report.started_at)
        writer.mark_target(endpoint_id, TargetStatus.DONE)
    store.finish_run(run_id, RunStatus.COMPLETED)
    return run_id


@dataclass(frozen=True, slots=True)
class StoredCheck:
    """One endpoint's newest stored verdict of one check, with where and when it was observed."""

    id: int
    run_id: int
    payer: str
    endpoint_id: int
    environment: str
    base_url: str
    check_id: str
    status: str
    severity: str
    message: str
    evidence: dict[str, Any]
    observed_at: datetime


AD_HOC_SOURCE = "ad-hoc"
"""``payers.source`` of a payer created by ``probe check URL --save`` (probe.store.catalog)."""


def latest_check_results(
    session: Session,
    *,
    since: datetime,
    until: datetime,
    run_kinds: Collection[str] = (RunKind.NIGHTLY, RunKind.CHECK, RunKind.SYNC),
    include_ad_hoc: bool = False,
) -> list[StoredCheck]:
    """Per endpoint and check, the newest verdict observed in ``[since, until]`` by a run of
    one of `run_kinds` (prerelease runs test probe itself); ordered by payer, endpoint, check.
    Payers created ad hoc (``probe check URL --save``) are left out unless asked for, as the
    scores leave them out."""
    ranked = (
        select(
            CheckResultRow.id.label("id"),
            func.row_number()
            .over(
                partition_by=(CheckResultRow.endpoint_id, CheckResultRow.check_id),
                order_by=(CheckResultRow.observed_at.desc(), CheckResultRow.id.desc()),
            )
            .label("newest"),
        )
        .join(ProbeRunRow, ProbeRunRow.id == CheckResultRow.run_id)
        .where(
            CheckResultRow.observed_at >= since,
            CheckResultRow.observed_at <= until,
            ProbeRunRow.kind.in_([str(k) for k in run_kinds]),
        )
        .subquery()
    )
    rows = session.execute(
        select(
            CheckResultRow.id,
            CheckResultRow.run_id,
            PayerRow.name,
            EndpointRow.id,
            EndpointRow.environment,
            EndpointRow.base_url,
            CheckResultRow.check_id,
            CheckResultRow.status,
            CheckResultRow.severity,
            CheckResultRow.message,
            CheckResultRow.evidence,
            CheckResultRow.observed_at,
        )
        .join(ranked, ranked.c.id == CheckResultRow.id)
        .join(EndpointRow, EndpointRow.id == CheckResultRow.endpoint_id)
        .join(PayerRow, PayerRow.id == EndpointRow.payer_id)
        .where(ranked.c.newest == 1)
        .where(
            true()
            if include_ad_hoc
            else or_(PayerRow.source.is_(None), PayerRow.source != AD_HOC_SOURCE)
        )
        .order_by(PayerRow.name, EndpointRow.environment, EndpointRow.id, CheckResultRow.check_id)
    ).all()
    # Columns in StoredCheck's order; evidence that is not an object reads as empty.
    return [
        StoredCheck(*row[:10], row[10] if isinstance(row[10], dict) else {}, row[11])
        for row in rows
    ]
