"""`probe prerelease STAGING_URL`: test a release candidate end to end, compare it with production.

The candidate gets the full treatment: discovery, the JWKS, and a sync of each test patient.
The baseline is either a live base URL (``--baseline``: discovery and JWKS, no sync, since its
test patients and credentials are production's) or a stored run (``--baseline-run``: its
documents, discovery evidence, key ids and sync jobs, so behaviour such as $everything support,
paging and sync speed is compared too). The change classifier of :mod:`probe.drift.classify`
compares the two; the candidate is scored; the gate decides the exit code.

Score (``--fail-under``): the *prerelease score* is the packaged payer rubric restricted to the
metrics one run of probe can observe (every metric whose sources include ``observed``, except
``sandbox``: the candidate is itself pre-production) — capability_statement,
smart_configuration, refresh_token, request_success, reference_resolution, carin_bb, clinical,
sync_speed and everything, 47 rubric points — scored exactly as the rubric scores them, with
metrics that had no data in this run (e.g. refresh_token with a static bearer token) left out
of the denominator and listed. The score is ``round(100 * earned / available)``; with nothing
observed there is no score and ``--fail-under`` fails. The raw rubric total (out of 100, the
configured metrics as not enough data) is reported beside it for reference.

Exit codes: 0 the gate passed, 1 the gate failed (``--fail-on breaking`` and a breaking change,
``--fail-on notable``, ``--fail-on required`` and a failed required check, or a score below
``--fail-under``), 2 bad usage (one line on stderr, never a traceback).
"""

from __future__ import annotations

import enum
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, NoReturn
from urllib.parse import urlsplit

import anyio
import httpx
import typer
from rich.console import Console
from rich.text import Text
from sqlalchemy import select

import probe.cli.options_credentials as opts
from probe.checks.discovery import run_discovery
from probe.cli.db import DbOption
from probe.cli.options_credentials import credentials_from_options
from probe.directory.schema import Environment
from probe.directory.secrets import SecretSource, TokenStore
from probe.drift.classify import Change, ChangeKind, DriftThresholds, classify, counts_by_kind
from probe.drift.events import DriftError, load_snapshots
from probe.drift.keys import observe_key_set
from probe.drift.snapshot import EndpointSnapshot, snapshot_from_results
from probe.http.fetch import Fetcher, Limits, new_client
from probe.http.guard import AddressGuard
from probe.http.urls import normalize_base
from probe.models import Report, Status
from probe.prerelease.report import print_summary, render_html, render_junit, render_markdown
from probe.score.collect import (
    COMPLETED_SYNC_OUTCOMES,
    REFERENCE_STEPS,
    REQUEST_STEPS,
    resource_type_of,
)
from probe.score.engine import MetricScore, score_payer
from probe.score.inputs import EverythingLevel, PayerInputs, RateInput, RefreshInput, Sample, Window
from probe.score.rubric import Rubric, default_rubric
from probe.store import Store, StoreError, open_store
from probe.store.catalog import normalize_base_url
from probe.store.runs import register_targets
from probe.store.tables import (
    DocumentSightingRow,
    EndpointRow,
    ProbeRunRow,
    RunKind,
    RunStatus,
    RunTargetRow,
    TargetStatus,
)
from probe.sync.auth import Credentials
from probe.sync.result import SyncResult
from probe.sync.runner import SyncLimits
from probe.sync.session import sync_patient

EXIT_PASS = 0
EXIT_GATE_FAILED = 1
EXIT_USAGE = 2

#: Rubric metrics a single prerelease run can observe (sources include ``observed``), minus
#: ``sandbox`` (the candidate is itself pre-production).
EXCLUDED_METRICS = frozenset({"sandbox"})
_EVERYTHING: dict[str, EverythingLevel] = {
    "paged": "paged",
    "limited": "limited",
    "unsupported": "unsupported",
}


class PrereleaseError(Exception):
    """A prerelease that cannot run as asked (bad baseline, unknown run); the message says why."""


class FailOn(enum.StrEnum):
    """What fails the gate besides ``--fail-under``."""

    BREAKING = "breaking"
    NOTABLE = "notable"
    REQUIRED = "required"


# -- observing ---------------------------------------------------------------------------------


@dataclass(slots=True)
class Observation:
    """A live probe of one base URL: discovery (with the JWKS) and the test-patient syncs."""

    base_url: str
    report: Report
    syncs: list[SyncResult] = field(default_factory=list)
    snapshot: EndpointSnapshot = field(init=False)
    label: str = ""

    def __post_init__(self) -> None:
        self.snapshot = snapshot_from_results(
            self.base_url, self.report.results, self.report.documents, self.syncs, label=self.label
        )


@dataclass(frozen=True, slots=True)
class PatientSpec:
    """A test patient to sync: FHIR id and report label."""

    id: str
    label: str


async def observe(
    fetcher: Fetcher,
    base_url: str,
    *,
    patients: Sequence[PatientSpec] = (),
    credentials: Credentials | None = None,
    secrets: SecretSource | None = None,
    token_store: TokenStore | None = None,
    sync_limits: SyncLimits | None = None,
    label: str = "",
) -> Observation:
    """Discovery, the JWKS and (when patients are given and the server answers) the syncs."""
    report = await run_discovery(fetcher, base_url)
    await observe_key_set(fetcher, report)
    syncs: list[SyncResult] = []
    answered = report.result("metadata.reachable").evidence.get("http_status") is not None
    if patients and answered:
        for patient in patients:
            syncs.append(
                await sync_patient(
                    fetcher,
                    report.base_url,
                    patient.id,
                    credentials,
                    secrets or SecretSource(),
                    patient_label=patient.label,
                    capability=report.documents.get("capability"),
                    smart_configuration=report.documents.get("smart_configuration"),
                    token_store=token_store,
                    limits=sync_limits,
                )
            )
    return Observation(report.base_url, report, syncs, label=label)


# -- the baseline --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Baseline:
    """What the candidate is compared with: a live probe or a stored run's endpoint."""

    snapshot: EndpointSnapshot
    description: str
    run_id: int | None = None
    observation: Observation | None = None

    @property
    def has_syncs(self) -> bool:
        """Whether behaviour that needs a sync can be compared."""
        return bool(self.snapshot.syncs)


def stored_baseline(store: Store, run_id: int, endpoint_url: str | None = None) -> Baseline:
    """The baseline from a stored run; `endpoint_url` picks the endpoint in a multi-endpoint run.

    PrereleaseError when the run does not exist, did not observe that endpoint, or observed
    several and none was named.
    """
    with store.session() as session:
        run = session.get(ProbeRunRow, run_id)
        if run is None:
            raise PrereleaseError(f"--baseline-run {run_id}: no such run in the database")
        observed = dict(
            session.execute(
                select(EndpointRow.id, EndpointRow.base_url)
                .where(
                    EndpointRow.id.in_(
                        select(DocumentSightingRow.endpoint_id).where(
                            DocumentSightingRow.run_id == run_id
                        )
                    )
                    | EndpointRow.id.in_(
                        select(RunTargetRow.endpoint_id).where(
                            RunTargetRow.run_id == run_id,
                            RunTargetRow.status == TargetStatus.DONE.value,
                        )
                    )
                )
                .order_by(EndpointRow.base_url)
            ).all()
        )
        if not observed:
            raise PrereleaseError(f"--baseline-run {run_id}: the run observed no endpoint")
        if endpoint_url is not None:
            wanted = normalize_base_url(endpoint_url)
            matches = [eid for eid, url in observed.items() if url == wanted]
            if not matches:
                raise PrereleaseError(
                    f"--baseline-endpoint {endpoint_url}: run {run_id} did not observe it"
                )
            endpoint_id = matches[0]
        elif len(observed) == 1:
            endpoint_id = next(iter(observed))
        else:
            shown = ", ".join(list(observed.values())[:5])
            more = f" (+{len(observed) - 5} more)" if len(observed) > 5 else ""
            raise PrereleaseError(
                f"--baseline-run {run_id} observed {len(observed)} endpoints; name one with "
                f"--baseline-endpoint URL: {shown}{more}"
            )
        try:
            snapshot = load_snapshots(session, run_id, [endpoint_id])[endpoint_id]
        except (KeyError, DriftError):
            raise PrereleaseError(f"run {run_id} has no observations of that endpoint") from None
    return Baseline(snapshot, f"run {run_id} ({run.kind}) of {snapshot.base_url}", run_id)


# -- scoring ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PrereleaseScore:
    """The prerelease score: observed rubric metrics with data, normalised to 100."""

    score: int | None
    earned: int
    available: int
    scored: tuple[MetricScore, ...]
    no_data: tuple[MetricScore, ...]
    rubric: str
    rubric_total: int
    rubric_max: int

    def to_json(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "score": self.score,
            "earned": self.earned,
            "available": self.available,
            "rubric": self.rubric,
            "rubric_total": self.rubric_total,
            "rubric_max": self.rubric_max,
            "metrics": [m.to_json() for m in self.scored],
            "not_enough_data": [m.metric_id for m in self.no_data],
        }


def prerelease_metric_ids(rubric: Rubric) -> list[str]:
    """The rubric metrics one prerelease run can observe (sources include observed, no sandbox)."""
    return [
        m.id for m in rubric.metrics if "observed" in m.sources and m.id not in EXCLUDED_METRICS
    ]


def prerelease_inputs(observation: Observation, at: datetime) -> PayerInputs:
    """Payer inputs from one live observation (the rules of ``probe.score.collect``)."""
    results = {r.id: r for r in observation.report.results}

    def verdict(presence: str, failures: tuple[str, ...]) -> tuple[Sample[bool], ...]:
        if presence in results and results[presence].status is Status.PASS:
            return (Sample(at, True, (f"check:{presence}",)),)
        if any(c in results and results[c].status is Status.FAIL for c in failures):
            return (Sample(at, False, tuple(f"check:{c}" for c in failures)),)
        return ()

    base = observation.report.base_url
    exchanges = [ex for s in observation.syncs for ex in s.exchanges]

    def rate(steps: tuple[str, ...]) -> tuple[Sample[RateInput], ...]:
        chosen = [ex for ex in exchanges if str(ex.step) in steps]
        if not chosen:
            return ()
        ok = sum(1 for ex in chosen if ex.status == 200)
        return (Sample(at, RateInput(ok, len(chosen)), ("run:prerelease",)),)

    available: set[str] = set()
    for ex in exchanges:
        if str(ex.step) == "individual" and ex.status == 200:
            rtype = resource_type_of(ex.url, base)
            if rtype:
                available.add(rtype)
    for s in observation.syncs:
        available |= {t for t, n in s.resources_by_type.items() if n}
    durations = tuple(
        Sample(at, s.duration_ms / 1000, (f"sync:{s.patient_label}",))
        for s in observation.syncs
        if s.duration_ms is not None and s.outcome in COMPLETED_SYNC_OUTCOMES
    )
    everything = tuple(
        Sample(at, _EVERYTHING[s.everything.support_level], (f"sync:{s.patient_label}",))
        for s in observation.syncs
        if s.everything.support_level in _EVERYTHING
    )
    refresh = tuple(
        Sample(
            at,
            RefreshInput(
                bool(s.tokens.refresh_token_issued),
                None
                if s.tokens.refresh_token_lifetime_s is None
                else max(0.0, s.tokens.refresh_token_lifetime_s / 86400),
            ),
            (f"sync:{s.patient_label}",),
        )
        for s in observation.syncs
        if s.tokens.refresh_token_issued is not None
    )
    return PayerInputs(
        name=urlsplit(base).hostname or base,
        capability_checks=verdict(
            "metadata.is_capability_statement",
            ("metadata.reachable", "metadata.is_capability_statement"),
        ),
        smart_checks=verdict("smart.is_json", ("smart.reachable", "smart.is_json")),
        requests=rate(REQUEST_STEPS),
        references=rate(REFERENCE_STEPS),
        resources_available=(
            (Sample(at, frozenset(available), ("run:prerelease",)),) if exchanges else ()
        ),
        sync_durations_s=durations,
        everything=everything,
        refresh=refresh,
    )


def prerelease_score(
    observation: Observation, rubric: Rubric | None = None, *, at: datetime | None = None
) -> PrereleaseScore:
    """Score one observation with the prerelease scorecard (see the module docstring)."""
    rubric = rubric or default_rubric()
    moment = at or datetime.now(UTC)
    window = Window(moment - timedelta(seconds=1), moment + timedelta(seconds=1))
    card = score_payer(prerelease_inputs(observation, moment), rubric, window=window)
    wanted = set(prerelease_metric_ids(rubric))
    rows = [m for m in card.metrics if m.metric_id in wanted]
    scored = tuple(m for m in rows if not m.not_enough_data)
    no_data = tuple(m for m in rows if m.not_enough_data)
    earned = sum(m.points for m in scored)
    available = sum(m.max_points for m in scored)
    score = round(100 * earned / available) if available else None
    return PrereleaseScore(
        score,
        earned,
        available,
        scored,
        no_data,
        f"{rubric.id} {rubric.version}",
        card.total,
        card.max_total,
    )


# -- the gate ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class GateResult:
    """Whether the candidate may be released, and each reason it may not."""

    passed: bool
    reasons: tuple[str, ...] = ()
    fail_under: int | None = None
    fail_on: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "passed": self.passed,
            "reasons": list(self.reasons),
            "fail_under": self.fail_under,
            "fail_on": list(self.fail_on),
        }


def evaluate_gate(
    changes: Sequence[Change],
    report: Report,
    score: PrereleaseScore,
    *,
    fail_under: int | None = None,
    fail_on: Sequence[FailOn] = (),
) -> GateResult:
    """Apply ``--fail-on`` and ``--fail-under`` to a prerelease's outcome."""
    reasons: list[str] = []
    wanted = set(fail_on)
    breaking = [c for c in changes if c.kind is ChangeKind.BREAKING]
    notable = [c for c in changes if c.kind is ChangeKind.NOTABLE]
    if (FailOn.BREAKING in wanted or FailOn.NOTABLE in wanted) and breaking:
        reasons.append(
            f"{len(breaking)} breaking change(s): " + ", ".join(c.id for c in breaking[:5])
        )
    if FailOn.NOTABLE in wanted and notable:
        reasons.append(f"{len(notable)} notable change(s): " + ", ".join(c.id for c in notable[:5]))
    if FailOn.REQUIRED in wanted and report.failed_required:
        ids = ", ".join(r.id for r in report.failed_required)
        reasons.append(f"{len(report.failed_required)} required check(s) failed: {ids}")
    if fail_under is not None:
        if score.score is None:
            reasons.append(f"no prerelease score (nothing observable), --fail-under {fail_under}")
        elif score.score < fail_under:
            reasons.append(f"prerelease score {score.score} is below --fail-under {fail_under}")
    return GateResult(
        not reasons,
        tuple(reasons),
        fail_under,
        tuple(sorted(str(f) for f in wanted)),
    )


# -- the whole prerelease ------------------------------------------------------------------------


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

    @property
    def counts(self) -> dict[str, int]:
        """Changes by kind."""
        return counts_by_kind(self.changes)

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
    score = prerelease_score(candidate, rubric, at=started)
    gate = evaluate_gate(
        changes,
        candidate.report,
        score,
        fail_under=options.fail_under,
        fail_on=options.fail_on,
    )
    return PrereleaseResult(
        candidate, baseline, changes, score, gate, started, time.perf_counter() - t0
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
            details = result.to_json()
            for key in ("resources_by_type", "base_url"):
                details.pop(key, None)
            writer.add_sync_job(
                endpoint_id,
                result.patient_label,
                created_at=result.created_at,
                completed_at=result.completed_at,
                outcome=result.outcome,
                resources_by_type=result.resources_by_type,
                pages=result.pages,
                size_bytes=result.bytes,
                references_found=result.references.found,
                references_resolved=result.references.resolved,
                details=details,
            )
        writer.mark_target(endpoint_id, TargetStatus.DONE)
    store.finish_run(run_id, RunStatus.COMPLETED)
    return run_id


# -- the command ---------------------------------------------------------------------------------

_err = Console(stderr=True, highlight=False)


def _usage(message: str) -> NoReturn:
    _err.print(Text.assemble(("error: ", "bold red"), message))
    raise typer.Exit(EXIT_USAGE)


def _absolute_url(value: str, option: str) -> str:
    parts = urlsplit(value.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        _usage(f"{option}: {value!r} is not an absolute http(s) URL")
    return value.strip()


def _writable(path: Path | None, option: str) -> None:
    if path is not None and not path.parent.is_dir():
        _usage(f"{option} {path}: the directory {path.parent} does not exist")


def prerelease_command(
    staging_url: Annotated[str, typer.Argument(help="the release candidate's FHIR base URL")],
    baseline_url: Annotated[
        str | None,
        typer.Option("--baseline", help="production base URL, probed live (discovery and JWKS)"),
    ] = None,
    baseline_run: Annotated[
        int | None,
        typer.Option(help="a stored run as the baseline (documents, keys and sync behaviour)"),
    ] = None,
    baseline_endpoint: Annotated[
        str | None,
        typer.Option(help="with --baseline-run: which endpoint of that run (its base URL)"),
    ] = None,
    patient: Annotated[
        list[str] | None, typer.Option("--patient", help="test patient's FHIR id (repeatable)")
    ] = None,
    label: Annotated[str | None, typer.Option(help="label for a single test patient")] = None,
    token_env: opts.TokenEnv = None,
    refresh_token_env: opts.RefreshTokenEnv = None,
    client_id: opts.ClientId = None,
    client_secret_env: opts.ClientSecretEnv = None,
    auth_method: opts.AuthMethod = "client_secret_basic",
    private_key_env: opts.PrivateKeyEnv = None,
    key_id: opts.KeyId = None,
    algorithm: opts.Algorithm = "RS384",
    scope: opts.Scope = None,
    token_url: opts.TokenUrl = None,
    token_store: opts.TokenStorePath = None,
    page_size: opts.PageSize = 200,
    max_pages: Annotated[int, typer.Option(min=1, help="page cap")] = 500,
    no_validate: opts.NoValidate = False,
    timeout: Annotated[float, typer.Option(min=0.1, help="seconds per request")] = 20.0,
    ca_bundle: Annotated[str | None, typer.Option(help="CA bundle for private CAs")] = None,
    html: Annotated[Path | None, typer.Option("--html", help="write the HTML report here")] = None,
    markdown: Annotated[
        Path | None, typer.Option("--markdown", help="write the Markdown report here")
    ] = None,
    junit: Annotated[Path | None, typer.Option("--junit", help="write JUnit XML here")] = None,
    fail_under: Annotated[
        int | None,
        typer.Option(min=0, max=100, help="exit 1 when the prerelease score is below this"),
    ] = None,
    fail_on: Annotated[
        list[str] | None,
        typer.Option(help="exit 1 on: breaking, notable (or breaking), required (repeatable)"),
    ] = None,
    slower_percent: Annotated[
        float, typer.Option(min=0, help="a sync this much slower (median, %) ...")
    ] = 50.0,
    slower_seconds: Annotated[
        float, typer.Option(min=0, help="... and this many seconds slower is notable")
    ] = 2.0,
    save: Annotated[
        bool, typer.Option("--save", help="store the candidate as a prerelease run (--db)")
    ] = False,
    db: DbOption = None,
    output_format: Annotated[str, typer.Option("--format", help="table or json")] = "table",
) -> None:
    """Test a release candidate end to end, compare it with production, gate a payer's CI."""
    candidate_url = _absolute_url(staging_url, "STAGING_URL")
    if baseline_url is not None and baseline_run is not None:
        _usage("give --baseline URL or --baseline-run RUN_ID, not both")
    if baseline_endpoint is not None and baseline_run is None:
        _usage("--baseline-endpoint needs --baseline-run")
    live_baseline = _absolute_url(baseline_url, "--baseline") if baseline_url else None
    if output_format.lower() not in ("table", "json"):
        _usage(f"--format must be table or json, not {output_format!r}")
    try:
        gates = tuple(FailOn(v.lower()) for v in fail_on or [])
    except ValueError:
        _usage(f"--fail-on takes breaking, notable or required, not {fail_on!r}")
    if label is not None and len(patient or []) > 1:
        _usage("--label names a single --patient; with several, their ids are the labels")
    for path, option in ((html, "--html"), (markdown, "--markdown"), (junit, "--junit")):
        _writable(path, option)
    try:
        credentials = credentials_from_options(
            token_env=token_env,
            refresh_token_env=refresh_token_env,
            client_id=client_id,
            client_secret_env=client_secret_env,
            auth_method=auth_method,
            private_key_env=private_key_env,
            key_id=key_id,
            algorithm=algorithm,
            scope=scope,
            token_url=token_url,
        )
    except ValueError as exc:
        _usage(str(exc))
    patients = tuple(
        PatientSpec(pid, label if label and len(patient or []) == 1 else pid)
        for pid in patient or []
    )
    store: Store | None = None
    baseline: Baseline | None = None
    try:
        if baseline_run is not None or save:
            store = open_store(db)
        if baseline_run is not None and store is not None:
            baseline = stored_baseline(store, baseline_run, baseline_endpoint)
    except (StoreError, PrereleaseError) as exc:
        if store is not None:
            store.close()
        _usage(str(exc))
    options = PrereleaseOptions(
        patients=patients,
        credentials=credentials,
        limits=Limits(
            connect_timeout=min(timeout, 10.0), read_timeout=timeout, total_timeout=timeout * 1.5
        ),
        sync_limits=SyncLimits(page_size=page_size, max_pages=max_pages, validate=not no_validate),
        token_store=token_store,
        verify=ca_bundle or True,
        thresholds=DriftThresholds(slower_percent, slower_seconds),
        fail_under=fail_under,
        fail_on=gates,
    )

    async def go() -> PrereleaseResult:
        return await run_prerelease(
            candidate_url, options, baseline_url=live_baseline, baseline=baseline
        )

    try:
        result = anyio.run(go)
        if save and store is not None:
            result.saved_run_id = save_candidate(store, result.candidate)
    except KeyboardInterrupt:
        raise typer.Exit(130) from None
    except StoreError as exc:
        _usage(f"could not save the candidate: {exc}")
    finally:
        if store is not None:
            store.close()
    try:
        if markdown is not None:
            markdown.write_text(render_markdown(result), encoding="utf-8")
        if html is not None:
            html.write_text(render_html(result), encoding="utf-8")
        if junit is not None:
            junit.write_text(render_junit(result), encoding="utf-8")
    except OSError as exc:
        _usage(f"cannot write the report: {exc.strerror or exc}")
    if output_format.lower() == "json":
        sys.stdout.write(json.dumps(result.to_json(), indent=2, default=str) + "\n")
    else:
        console = Console() if Console().is_terminal else Console(width=160)
        print_summary(result, console)
    raise typer.Exit(EXIT_PASS if result.gate.passed else EXIT_GATE_FAILED)
