"""Nightly drift: compare each endpoint of a run with its previous run and store the changes.

For every endpoint a run finished (``run_targets`` status done), the previous run is the latest
earlier run of the same kind that also finished it. Both are read back from the store as
:class:`~probe.drift.snapshot.EndpointSnapshot` values (documents by sighting, the discovery
checks' evidence, the `smart.jwks` key ids, the sync jobs) and classified. Each change becomes a
``drift_events`` row; (run, endpoint, change id) is unique, so detecting a run twice adds
nothing and reports nothing new. Stored values pass through the store's secret scrubbing.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from probe.drift.classify import Change, ChangeKind, classify, counts_by_kind
from probe.drift.settings import DriftThresholds
from probe.drift.snapshot import (
    ANONYMOUS_CHECK,
    JWKS_CHECK,
    METADATA_CHECK,
    SMART_CHECK,
    SNAPSHOT_CHECKS,
    EndpointSnapshot,
    Fetched,
    KeySet,
    SyncFacts,
)
from probe.store.dialect import upsert
from probe.store.handle import Store
from probe.store.sanitize import scrub
from probe.store.tables import (
    CheckResultRow,
    DocumentKind,
    DocumentRow,
    DocumentSightingRow,
    DriftEventRow,
    EndpointRow,
    PayerRow,
    ProbeRunRow,
    RunTargetRow,
    SyncJobRow,
    TargetStatus,
    utcnow,
)

_CHUNK = 500


class DriftError(Exception):
    """Drift cannot be detected or listed as asked (e.g. an unknown run); the message says why."""


@dataclass(frozen=True, slots=True)
class DriftEvent:
    """One stored change of one endpoint between a run and its previous run."""

    run_id: int
    previous_run_id: int | None
    endpoint_id: int
    payer: str
    environment: str
    base_url: str
    kind: ChangeKind
    change_id: str
    path: str
    before: Any
    after: Any
    reason: str
    detected_at: datetime
    id: int | None = None

    def to_json(self) -> dict[str, Any]:
        """The JSON form printed by ``probe drift --format json`` and posted to webhooks."""
        return {
            "id": self.id,
            "run_id": self.run_id,
            "previous_run_id": self.previous_run_id,
            "payer": self.payer,
            "endpoint": {
                "id": self.endpoint_id,
                "environment": self.environment,
                "base_url": self.base_url,
            },
            "kind": str(self.kind),
            "change_id": self.change_id,
            "path": self.path,
            "before": self.before,
            "after": self.after,
            "reason": self.reason,
            "detected_at": self.detected_at.isoformat(),
        }


@dataclass(slots=True)
class DriftDetection:
    """The result of detecting one run's drift."""

    run_id: int
    compared: int = 0
    without_previous: int = 0
    events: list[DriftEvent] = field(default_factory=list)
    new_events: list[DriftEvent] = field(default_factory=list)

    @property
    def counts(self) -> dict[str, int]:
        """All of the run's events by kind."""
        return counts_by_kind(self.events)

    def summary(self) -> str:
        """One line for people: endpoints compared and events by kind."""
        counts = self.counts
        parts = [f"{n} {k}" for k, n in counts.items() if n]
        detail = f" ({', '.join(parts)})" if parts else ""
        new = len(self.new_events)
        return (
            f"drift for run {self.run_id}: {self.compared} endpoint(s) compared with their "
            f"previous run, {self.without_previous} seen for the first time; "
            f"{len(self.events)} event(s){detail}, {new} new"
        )


# -- snapshots from the store ----------------------------------------------------------------


def _chunks(values: Sequence[int]) -> Iterator[list[int]]:
    for start in range(0, len(values), _CHUNK):
        yield list(values[start : start + _CHUNK])


def load_snapshots(
    session: Session, run_id: int, endpoint_ids: Iterable[int]
) -> dict[int, EndpointSnapshot]:
    """The stored snapshot of each endpoint in `run_id` (batched queries, no bodies beyond docs)."""
    ids = sorted(set(endpoint_ids))
    if not ids:
        return {}
    base_urls: dict[int, str] = {}
    documents: dict[int, dict[str, dict[str, Any]]] = defaultdict(dict)
    checks: dict[int, dict[str, tuple[str, str, dict[str, Any] | None]]] = defaultdict(dict)
    syncs: dict[int, list[SyncFacts]] = defaultdict(list)
    for chunk in _chunks(ids):
        for eid, url in session.execute(
            select(EndpointRow.id, EndpointRow.base_url).where(EndpointRow.id.in_(chunk))
        ):
            base_urls[eid] = url
        for eid, kind, body in session.execute(
            select(DocumentSightingRow.endpoint_id, DocumentRow.kind, DocumentRow.body)
            .join(DocumentRow, DocumentRow.id == DocumentSightingRow.document_id)
            .where(
                DocumentSightingRow.run_id == run_id,
                DocumentSightingRow.endpoint_id.in_(chunk),
            )
            .order_by(DocumentSightingRow.id)
        ):
            documents[eid][kind] = body
        for eid, check_id, status, message, evidence in session.execute(
            select(
                CheckResultRow.endpoint_id,
                CheckResultRow.check_id,
                CheckResultRow.status,
                CheckResultRow.message,
                CheckResultRow.evidence,
            ).where(
                CheckResultRow.run_id == run_id,
                CheckResultRow.endpoint_id.in_(chunk),
                CheckResultRow.check_id.in_(SNAPSHOT_CHECKS),
            )
        ):
            checks[eid][check_id] = (status, message, evidence)
        for eid, label, outcome, created, completed, details in session.execute(
            select(
                SyncJobRow.endpoint_id,
                SyncJobRow.patient_label,
                SyncJobRow.outcome,
                SyncJobRow.created_at,
                SyncJobRow.completed_at,
                SyncJobRow.details,
            )
            .where(SyncJobRow.run_id == run_id, SyncJobRow.endpoint_id.in_(chunk))
            .order_by(SyncJobRow.id)
        ):
            duration = None
            if completed is not None:
                duration = max(0.0, (completed - created).total_seconds())
            syncs[eid].append(SyncFacts.from_stored(label, outcome, duration, details))
    out: dict[int, EndpointSnapshot] = {}
    for eid in ids:
        if eid not in base_urls:
            continue
        found = checks.get(eid, {})

        def fetched(check_id: str, found: dict[str, Any] = found) -> Fetched | None:
            entry = found.get(check_id)
            return Fetched.from_evidence(entry[2]) if entry else None

        jwks = None
        if (jwks_entry := found.get(JWKS_CHECK)) is not None:
            status, message, evidence = jwks_entry
            jwks = KeySet.from_evidence(status, evidence, message)
        out[eid] = EndpointSnapshot(
            base_url=base_urls[eid],
            capability=documents[eid].get(str(DocumentKind.CAPABILITY)),
            smart=documents[eid].get(str(DocumentKind.SMART_CONFIGURATION)),
            metadata_fetch=fetched(METADATA_CHECK),
            smart_fetch=fetched(SMART_CHECK),
            anonymous_fetch=fetched(ANONYMOUS_CHECK),
            jwks=jwks,
            syncs=tuple(syncs.get(eid, ())),
            run_id=run_id,
            endpoint_id=eid,
        )
    return out


def done_endpoints(session: Session, run_id: int) -> list[int]:
    """The endpoints a run finished (target status done)."""
    return list(
        session.scalars(
            select(RunTargetRow.endpoint_id)
            .where(RunTargetRow.run_id == run_id, RunTargetRow.status == TargetStatus.DONE.value)
            .order_by(RunTargetRow.endpoint_id)
        )
    )


def previous_runs(session: Session, run_id: int, endpoint_ids: Sequence[int]) -> dict[int, int]:
    """For each endpoint, the latest earlier run of the same kind that finished it.

    "Earlier" is by run id (ids grow with start time); runs of other kinds (an ad-hoc
    ``probe check --save``, a prerelease) are not compared with a nightly run.
    """
    run = session.get(ProbeRunRow, run_id)
    if run is None:
        raise DriftError(f"no run with id {run_id}")
    out: dict[int, int] = {}
    for chunk in _chunks(list(endpoint_ids)):
        rows = session.execute(
            select(RunTargetRow.endpoint_id, func.max(RunTargetRow.run_id))
            .join(ProbeRunRow, ProbeRunRow.id == RunTargetRow.run_id)
            .where(
                RunTargetRow.endpoint_id.in_(chunk),
                RunTargetRow.status == TargetStatus.DONE.value,
                RunTargetRow.run_id < run_id,
                ProbeRunRow.kind == run.kind,
            )
            .group_by(RunTargetRow.endpoint_id)
        )
        out.update({eid: prev for eid, prev in rows if prev is not None})
    return out


def stored_snapshot(session: Session, run_id: int, endpoint_id: int) -> EndpointSnapshot:
    """One endpoint's stored snapshot in one run (DriftError when the run did not observe it)."""
    snapshot = load_snapshots(session, run_id, [endpoint_id]).get(endpoint_id)
    if snapshot is None:
        raise DriftError(f"run {run_id} has no observations of endpoint {endpoint_id}")
    return snapshot


# -- detection -------------------------------------------------------------------------------


def detect_drift(
    store: Store,
    run_id: int,
    thresholds: DriftThresholds | None = None,
    *,
    now: datetime | None = None,
) -> DriftDetection:
    """Compare every endpoint the run finished with its previous run; store new drift events.

    Idempotent: a change already stored for (run, endpoint) is neither stored nor reported as
    new again. DriftError when the run does not exist.
    """
    thresholds = thresholds or DriftThresholds()
    moment = now or utcnow()
    result = DriftDetection(run_id)
    with store.session() as session:
        endpoints = done_endpoints(session, run_id)
        previous = previous_runs(session, run_id, endpoints)
        result.without_previous = len(endpoints) - len(previous)
        result.compared = len(previous)
        if not previous:
            result.events = list_drift_events(session, run_id=run_id)
            return result
        rows: list[dict[str, Any]] = []
        # A slice of endpoints at a time: memory stays flat in the directory's size.
        for some in _chunks(sorted(previous)):
            current = load_snapshots(session, run_id, some)
            by_previous: dict[int, list[int]] = defaultdict(list)
            for eid in some:
                by_previous[previous[eid]].append(eid)
            for prev, eids in sorted(by_previous.items()):
                before = load_snapshots(session, prev, eids)
                for eid in eids:
                    if eid not in before or eid not in current:
                        continue
                    for change in classify(before[eid], current[eid], thresholds=thresholds):
                        rows.append(_row(run_id, eid, prev, change, moment))
        existing: set[tuple[int, str]] = {
            (eid, cid)
            for eid, cid in session.execute(
                select(DriftEventRow.endpoint_id, DriftEventRow.change_id).where(
                    DriftEventRow.run_id == run_id
                )
            )
        }
        fresh = [r for r in rows if (r["endpoint_id"], r["change_id"]) not in existing]
        if fresh:
            conn = session.connection()
            stmt = upsert(conn, DriftEventRow).on_conflict_do_nothing(
                index_elements=["run_id", "endpoint_id", "change_id"]
            )
            conn.execute(stmt, fresh)
        result.events = list_drift_events(session, run_id=run_id)
        new_keys = {(r["endpoint_id"], r["change_id"]) for r in fresh}
        result.new_events = [e for e in result.events if (e.endpoint_id, e.change_id) in new_keys]
    return result


def _row(
    run_id: int, endpoint_id: int, previous: int, change: Change, moment: datetime
) -> dict[str, Any]:
    return {
        "run_id": run_id,
        "endpoint_id": endpoint_id,
        "previous_run_id": previous,
        "kind": str(change.kind),
        "change_id": change.id[:300],
        "path": scrub(change.path),
        "before": scrub(change.before),
        "after": scrub(change.after),
        "reason": scrub(change.reason),
        "detected_at": moment,
    }


# -- queries ---------------------------------------------------------------------------------


def list_drift_events(
    session: Session,
    *,
    since: datetime | None = None,
    run_id: int | None = None,
    payers: Sequence[str] = (),
    min_kind: ChangeKind | None = None,
    limit: int | None = None,
) -> list[DriftEvent]:
    """Stored drift events, newest run first, most severe first within an endpoint."""
    query = (
        select(DriftEventRow, EndpointRow.base_url, EndpointRow.environment, PayerRow.name)
        .join(EndpointRow, EndpointRow.id == DriftEventRow.endpoint_id)
        .join(PayerRow, PayerRow.id == EndpointRow.payer_id)
        .order_by(
            DriftEventRow.run_id.desc(),
            PayerRow.name,
            EndpointRow.base_url,
            DriftEventRow.id,
        )
    )
    if since is not None:
        query = query.where(DriftEventRow.detected_at >= since)
    if run_id is not None:
        query = query.where(DriftEventRow.run_id == run_id)
    if payers:
        query = query.where(func.lower(PayerRow.name).in_([p.lower() for p in payers]))
    if min_kind is not None:
        kinds = [str(k) for k in ChangeKind if k.at_least(min_kind)]
        query = query.where(DriftEventRow.kind.in_(kinds))
    events = [
        DriftEvent(
            run_id=row.run_id,
            previous_run_id=row.previous_run_id,
            endpoint_id=row.endpoint_id,
            payer=payer,
            environment=environment,
            base_url=base_url,
            kind=ChangeKind(row.kind),
            change_id=row.change_id,
            path=row.path,
            before=row.before,
            after=row.after,
            reason=row.reason,
            detected_at=row.detected_at,
            id=row.id,
        )
        for row, base_url, environment, payer in session.execute(query)
    ]
    events.sort(key=lambda e: (-e.run_id, e.payer, e.base_url, e.kind.rank, e.change_id))
    return events[:limit] if limit is not None else events


def drift_by_payer(
    session: Session, *, since: datetime | None = None, min_kind: ChangeKind | None = None
) -> dict[str, list[DriftEvent]]:
    """Drift events grouped by payer name (for the HTML report), newest run first."""
    grouped: dict[str, list[DriftEvent]] = defaultdict(list)
    for event in list_drift_events(session, since=since, min_kind=min_kind):
        grouped[event.payer].append(event)
    return dict(grouped)
