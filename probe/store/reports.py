"""Saving one discovery report (`probe check --save`) as a run of its own."""

from __future__ import annotations

from probe.directory.schema import Environment
from probe.models import Report
from probe.store.handle import Store
from probe.store.runs import register_targets
from probe.store.tables import RunKind, RunStatus, TargetStatus


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
