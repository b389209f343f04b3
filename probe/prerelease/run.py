"""A whole prerelease: observe the candidate and a live baseline, compare, score, gate; save."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from probe.directory.schema import Environment
from probe.directory.secrets import SecretSource, TokenStore
from probe.drift.classify import Change, classify, counts_by_kind
from probe.drift.settings import DriftThresholds
from probe.http.fetch import Fetcher, new_client
from probe.http.guard import AddressGuard
from probe.http.limits import Limits
from probe.http.urls import normalize_base
from probe.prerelease.baseline import Baseline
from probe.prerelease.gate import FailOn, GateResult, evaluate_gate
from probe.prerelease.observe import Observation, PatientSpec, observe
from probe.prerelease.scoring import PrereleaseScore, prerelease_score
from probe.score.rubric import Rubric
from probe.store.handle import Store
from probe.store.runs import register_targets
from probe.store.tables import (
    RunKind,
    RunStatus,
    TargetStatus,
)
from probe.sync.auth import Credentials
from probe.sync.limits import SyncLimits

# -- the whole prerelease ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NotTested:
    """Something a prerelease did not test: a rubric metric without data in this run (its
    points count 0), the comparison with a baseline, or the test-patient sync."""

    item: str
    title: str
    points: int
    reason: str

    def to_json(self) -> dict[str, Any]:
        """JSON form: item, title, points, reason."""
        return {
            "item": self.item,
            "title": self.title,
            "points": self.points,
            "reason": self.reason,
        }


def _in_this_run(comment: str) -> str:
    """A no-data comment of the rubric engine, which speaks of a window, said of one run."""
    if not comment:
        return "no data in this run"
    return comment.replace(" in the window", " in this run")


@dataclass(slots=True)
class PrereleaseResult:
    """Everything one prerelease produced: observations, changes, score, gate."""

    candidate: Observation
    baseline: Baseline | None
    changes: list[Change]
    score: PrereleaseScore
    gate: GateResult
    started_at: datetime
    duration_s: float
    saved_run_id: int | None = None
    patients_requested: int = 0

    @property
    def counts(self) -> dict[str, int]:
        """Changes by kind."""
        return counts_by_kind(self.changes)

    @property
    def not_tested(self) -> tuple[NotTested, ...]:
        """What this prerelease did not test: metrics without data, the baseline, the sync."""
        out = [
            NotTested(
                f"metric:{m.metric_id}",
                m.title,
                m.max_points,
                _in_this_run(m.comment),
            )
            for m in self.score.no_data
        ]
        if self.baseline is None:
            out.append(
                NotTested(
                    "baseline",
                    "Comparison with a baseline",
                    0,
                    "no --baseline or --baseline-run: no change was looked for",
                )
            )
        if not self.candidate.syncs:
            reason = (
                "the candidate did not answer /metadata, so no patient was synced"
                if self.patients_requested
                else "no --patient given: no member data was fetched"
            )
            out.append(NotTested("sync", "Test-patient sync", 0, reason))
        return tuple(out)

    def to_json(self) -> dict[str, Any]:
        """The JSON printed by ``probe prerelease --format json``."""
        return {
            "candidate": self.candidate.report.base_url,
            "baseline": None
            if self.baseline is None
            else {
                "description": self.baseline.description,
                "run_id": self.baseline.run_id,
                "base_url": self.baseline.snapshot.base_url,
                "behaviour_compared": self.baseline.has_syncs,
            },
            "started_at": self.started_at.isoformat(),
            "duration_s": round(self.duration_s, 3),
            "gate": self.gate.to_json(),
            "score": self.score.to_json(),
            "not_tested": [n.to_json() for n in self.not_tested],
            "changes": [c.to_json() for c in self.changes],
            "change_counts": self.counts,
            "checks": [r.to_json() for r in self.candidate.report.results],
            "syncs": [s.to_json() for s in self.candidate.syncs],
            "saved_run_id": self.saved_run_id,
        }


@dataclass(frozen=True, slots=True)
class PrereleaseOptions:
    """How to probe (timeouts, paging, credentials) and what to gate on."""

    patients: tuple[PatientSpec, ...] = ()
    credentials: Credentials | None = None
    limits: Limits = field(default_factory=Limits)
    sync_limits: SyncLimits = field(default_factory=SyncLimits)
    token_store: Path | None = None
    verify: bool | str = True
    thresholds: DriftThresholds = field(default_factory=DriftThresholds)
    fail_under: int | None = None
    fail_on: tuple[FailOn, ...] = ()
    #: Gate ``--fail-under`` on the discovery metrics only (``--discovery-only``).
    discovery_only: bool = False


async def run_prerelease(
    candidate_url: str,
    options: PrereleaseOptions,
    *,
    baseline_url: str | None = None,
    baseline: Baseline | None = None,
    secrets: SecretSource | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    rubric: Rubric | None = None,
) -> PrereleaseResult:
    """Probe the candidate (and a live baseline), classify the changes, score and gate."""
    started = datetime.now(UTC)
    t0 = time.perf_counter()
    guard = AddressGuard()
    guard.admit(candidate_url, baseline_url, getattr(options.credentials, "token_url", None))
    client = (
        httpx.AsyncClient(transport=transport, follow_redirects=False)
        if transport is not None
        else new_client(verify=options.verify, guard=guard)
    )
    async with client:
        fetcher = Fetcher(client, options.limits, guard=guard)
        candidate = await observe(
            fetcher,
            candidate_url,
            patients=options.patients,
            credentials=options.credentials,
            secrets=secrets,
            token_store=TokenStore(options.token_store),
            sync_limits=options.sync_limits,
            label=f"candidate {normalize_base(candidate_url)}",
        )
        if baseline is None and baseline_url is not None:
            live = await observe(
                fetcher, baseline_url, label=f"live {normalize_base(baseline_url)}"
            )
            baseline = Baseline(live.snapshot, f"live probe of {live.base_url}", None, live)
    changes: list[Change] = []
    if baseline is not None:
        changes = classify(baseline.snapshot, candidate.snapshot, thresholds=options.thresholds)
    scope = "discovery" if options.discovery_only else "prerelease"
    score = prerelease_score(candidate, rubric, at=started, scope=scope)
    gate = evaluate_gate(
        changes,
        candidate.report,
        score,
        fail_under=options.fail_under,
        fail_on=options.fail_on,
        compared=baseline is not None,
    )
    return PrereleaseResult(
        candidate,
        baseline,
        changes,
        score,
        gate,
        started,
        time.perf_counter() - t0,
        patients_requested=len(options.patients),
    )


def save_candidate(store: Store, observation: Observation) -> int:
    """Store the candidate's observations as a completed ``prerelease`` run (a future baseline).

    The endpoint is recorded as a sandbox endpoint (created ad hoc when unknown).
    """
    report = observation.report
    endpoint_id = store.ensure_endpoint(report.base_url, Environment.SANDBOX)
    run_id = store.start_run(RunKind.PRERELEASE, {"base_url": report.base_url})
    register_targets(store.engine, run_id, [endpoint_id])
    with store.writer(run_id) as writer:
        writer.mark_target(endpoint_id, TargetStatus.PENDING, started_at=report.started_at)
        writer.add_exchanges(endpoint_id, report.exchanges)
        writer.add_check_results(endpoint_id, report.results, observed_at=report.started_at)
        for kind, body in report.documents.items():
            writer.add_document(endpoint_id, kind, body, seen_at=report.started_at)
        for result in observation.syncs:
            writer.add_exchanges(endpoint_id, result.exchanges)
            writer.add_sync_job(endpoint_id, result.patient_label, **result.job_fields())
        writer.mark_target(endpoint_id, TargetStatus.DONE)
    store.finish_run(run_id, RunStatus.COMPLETED)
    return run_id
