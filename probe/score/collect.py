"""Build :class:`PayerInputs` from the observation store, keeping only the scoring window.

This is the only scoring module that touches the database; the engine itself never does.
Per payer (a ``payers`` row), observations of its *production* endpoints feed the live-mode
metrics, and its *sandbox* endpoints feed the sandbox metric:

* request_success: ``http_requests`` with step everything, individual, pagination or retry; a
  success is status 200 (the report's "200 status codes"). One sample per run, evidence
  ``run:ID`` plus up to 20 failed ``request:ID`` per run.
* reference_resolution: the same for step reference. A run whose syncs found references but
  made no reference request (every reference resolved inside the Bundle) is scored on the sync
  jobs' resolved share instead (evidence ``in_bundle``), so complete servers are not "no
  references".
* carin_bb / clinical: the resource type of each step-individual request (the first path segment
  after the base URL) that got a 200, and the types a sync job returned (``resources_by_type``
  count > 0). One sample per run.
* sync_speed: ``sync_jobs`` with ``completed_at`` and outcome completed or partial (or none
  recorded); the duration is ``completed_at - created_at``, sampled at ``created_at``.
* everything and refresh_token: ``sync_jobs.details["everything"]`` (``support_level`` when
  ``supported`` is known) and ``details["tokens"]`` (``refresh_token_issued``,
  ``refresh_token_lifetime_s``).
* capability_statement: ``check_results`` ``metadata.is_capability_statement`` pass is
  available; a failed ``metadata.reachable`` or ``metadata.is_capability_statement`` is not.
  smart_configuration: ``smart.is_json`` pass, or a failed ``smart.reachable``/``smart.is_json``.
  Skipped and errored checks say nothing.
* sandbox: the capability rule on the payer's sandbox endpoints; a sandbox endpoint row means
  ``sandbox_declared``.
* developer_portal: the endpoint's ``portal_url``; requests with step portal are its checks.
* auth_success / eligibility_errors: ``authorization_attempts`` (imported from an authorization
  log by ``probe import authorizations``) of production endpoints, one sample per payer per UTC
  day stamped with the day's last attempt; evidence ``authorization_log:FILE`` plus up to 20
  ``authorization:ID`` per day of failed attempts and callbacks with ``query_ineligible``.
  Passing `authorizations` (payer name -> samples) uses those instead of the table.

Only runs of the kinds in `run_kinds` count (default: nightly, check, sync; prerelease runs test
probe itself). Payers created ad hoc by ``probe check URL --save`` are skipped unless asked for.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import ValidationError
from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from probe.directory.schema import EndpointFacts, LineOfBusiness, OrganizationStatus
from probe.score.engine import Scorecard, score
from probe.score.inputs import (
    AuthCounts,
    EverythingLevel,
    PayerInputs,
    RateInput,
    RefreshInput,
    Sample,
    Window,
    as_utc,
)
from probe.score.rubric import Rubric
from probe.store.tables import (
    AuthorizationAttemptRow,
    CheckResultRow,
    EndpointRow,
    HttpRequestRow,
    PayerRow,
    ProbeRunRow,
    RunKind,
    SyncJobRow,
)

REQUEST_STEPS = ("everything", "individual", "pagination", "retry")
"""Extract steps whose requests make up the request success rate."""
REFERENCE_STEPS = ("reference",)
"""Extract steps whose requests make up the reference resolution rate."""
COMPLETED_SYNC_OUTCOMES = frozenset({"completed", "partial"})
"""Sync outcomes that count as a completed sync for sync speed."""
DEFAULT_RUN_KINDS = (RunKind.NIGHTLY, RunKind.CHECK, RunKind.SYNC)
MAX_FAILED_EVIDENCE = 20
_TYPE = re.compile(r"^[A-Z][A-Za-z]{1,63}$")
_EVERYTHING_LEVELS: dict[str, EverythingLevel] = {
    "paged": "paged",
    "limited": "limited",
    "unsupported": "unsupported",
}


def resource_type_of(url: str, base_url: str) -> str | None:
    """The FHIR resource type a request URL asks for (``Coverage`` in ``{base}/Coverage?...``)."""
    base = base_url.rstrip("/")
    if not url.startswith(base + "/"):
        return None
    first = url[len(base) + 1 :].split("?", 1)[0].split("/", 1)[0]
    return first if _TYPE.match(first) else None


@dataclass
class _Acc:
    """Samples gathered for one payer."""

    requests: list[Sample[RateInput]] = field(default_factory=list)
    references: list[Sample[RateInput]] = field(default_factory=list)
    resources: list[Sample[frozenset[str]]] = field(default_factory=list)
    syncs: list[Sample[float]] = field(default_factory=list)
    everything: list[Sample[EverythingLevel]] = field(default_factory=list)
    refresh: list[Sample[RefreshInput]] = field(default_factory=list)
    capability: list[Sample[bool]] = field(default_factory=list)
    smart: list[Sample[bool]] = field(default_factory=list)
    sandbox: list[Sample[bool]] = field(default_factory=list)
    portal: list[Sample[bool]] = field(default_factory=list)


def collect_inputs(
    session: Session,
    window: Window,
    *,
    payers: Collection[str] | None = None,
    authorizations: Mapping[str, Sequence[Sample[AuthCounts]]] | None = None,
    run_kinds: Iterable[str] = DEFAULT_RUN_KINDS,
    include_ad_hoc: bool = False,
) -> list[PayerInputs]:
    """Every payer's :class:`PayerInputs` from stored observations inside `window`.

    `payers` restricts the result to these names. The authorization log comes from the
    ``authorization_attempts`` table unless `authorizations` (samples per payer name) is given,
    which then replaces it. Payers come out sorted by name.
    """
    query = select(PayerRow).order_by(PayerRow.name)
    if payers is not None:
        query = query.where(PayerRow.name.in_(list(payers)))
    payer_rows = [
        p for p in session.scalars(query) if include_ad_hoc or (p.source or "") != "ad-hoc"
    ]
    endpoints = list(
        session.scalars(
            select(EndpointRow)
            .where(EndpointRow.payer_id.in_([p.id for p in payer_rows]))
            .order_by(EndpointRow.id)
        )
    )
    by_id = {e.id: e for e in endpoints}
    kinds = [str(k) for k in run_kinds]
    acc: dict[int, _Acc] = defaultdict(_Acc)
    if endpoints:
        _collect_requests(session, window, by_id, kinds, acc)
        _collect_checks(session, window, by_id, kinds, acc)
        _collect_syncs(session, window, by_id, kinds, acc)
    if authorizations is None:
        imported = _collect_authorizations(session, window, by_id) if endpoints else {}
        by_name = {p.id: p.name for p in payer_rows}
        authorizations = {by_name[k]: v for k, v in imported.items()}
    out: list[PayerInputs] = []
    for row in payer_rows:
        mine = [e for e in endpoints if e.payer_id == row.id]
        production = [e for e in mine if e.environment == "production"]
        a = acc[row.id]
        offered, supported = _lines(row.lines_of_business)
        out.append(
            PayerInputs(
                name=row.name,
                vendor=row.vendor,
                lives=row.lives,
                organization_status=_status(row.organization_status),
                production_endpoint=bool(production),
                lines_offered=offered,
                lines_supported=supported,
                facts=_facts(production),
                portal_url=next((e.portal_url for e in production if e.portal_url), None),
                portal_checks=tuple(a.portal),
                sandbox_declared=True if any(e.environment == "sandbox" for e in mine) else None,
                sandbox_checks=tuple(a.sandbox),
                capability_checks=tuple(a.capability),
                smart_checks=tuple(a.smart),
                authorizations=tuple(authorizations.get(row.name, ())),
                refresh=tuple(a.refresh),
                requests=tuple(a.requests),
                references=tuple(a.references),
                resources_available=tuple(a.resources),
                sync_durations_s=tuple(a.syncs),
                everything=tuple(a.everything),
            )
        )
    return out


def _status(value: str | None) -> OrganizationStatus:
    try:
        return OrganizationStatus(value or "none")
    except ValueError:
        return OrganizationStatus.NONE


def _lines(
    data: dict[str, Any] | None,
) -> tuple[frozenset[LineOfBusiness], frozenset[LineOfBusiness]]:
    def parse(values: Any) -> frozenset[LineOfBusiness]:
        out: set[LineOfBusiness] = set()
        for v in values if isinstance(values, list) else []:
            try:
                out.add(LineOfBusiness(v))
            except ValueError:
                continue
        return frozenset(out)

    data = data or {}
    return parse(data.get("offered")), parse(data.get("supported"))


def _facts(production: Sequence[EndpointRow]) -> EndpointFacts:
    """The first value configured for each fact across the production endpoints."""
    merged: dict[str, Any] = {}
    for endpoint in production:
        for key, value in (endpoint.facts or {}).items():
            if value is not None:
                merged.setdefault(key, value)
    try:
        return EndpointFacts.model_validate(merged)
    except ValidationError:
        return EndpointFacts()


def _runs_in(kinds: Sequence[str]) -> Any:
    return select(ProbeRunRow.id).where(ProbeRunRow.kind.in_(kinds))


def _collect_requests(
    session: Session,
    window: Window,
    endpoints: Mapping[int, EndpointRow],
    kinds: Sequence[str],
    acc: dict[int, _Acc],
) -> None:
    steps = (*REQUEST_STEPS, *REFERENCE_STEPS, "portal")
    rows = session.execute(
        select(
            HttpRequestRow.id,
            HttpRequestRow.run_id,
            HttpRequestRow.endpoint_id,
            HttpRequestRow.step,
            HttpRequestRow.status,
            HttpRequestRow.url,
            HttpRequestRow.started_at,
        )
        .where(
            HttpRequestRow.endpoint_id.in_(list(endpoints)),
            HttpRequestRow.step.in_(steps),
            HttpRequestRow.started_at >= window.start,
            HttpRequestRow.started_at <= window.end,
            HttpRequestRow.run_id.in_(_runs_in(kinds)),
            # Requests probe chose not to send (an open circuit breaker) are not the payer's.
            or_(HttpRequestRow.error_class.is_(None), HttpRequestRow.error_class != "circuit_open"),
        )
        .order_by(HttpRequestRow.id)
    )
    # (payer, run, group) -> [first seen, successes, attempts, failed ids]
    rates: dict[tuple[int, int, str], list[Any]] = {}
    types: dict[tuple[int, int], tuple[datetime, set[str]]] = {}
    for req_id, run_id, endpoint_id, step, status, url, started in rows:
        endpoint = endpoints[endpoint_id]
        payer_id = endpoint.payer_id
        started = as_utc(started)
        if step == "portal":
            ok = status is not None and 200 <= status < 300
            acc[payer_id].portal.append(Sample(started, ok, (f"request:{req_id}",)))
            continue
        if endpoint.environment != "production":
            continue
        group = "reference" if step in REFERENCE_STEPS else "request"
        entry = rates.setdefault((payer_id, run_id, group), [started, 0, 0, []])
        entry[2] += 1
        if status == 200:
            entry[1] += 1
        elif len(entry[3]) < MAX_FAILED_EVIDENCE:
            entry[3].append(f"request:{req_id}")
        if step == "individual":
            rtype = resource_type_of(url, endpoint.base_url)
            if rtype is not None:
                first, ok_types = types.setdefault((payer_id, run_id), (started, set()))
                if status == 200:
                    ok_types.add(rtype)
    for (payer_id, run_id, group), (first, good, total, failed) in rates.items():
        sample = Sample(first, RateInput(good, total, tuple(failed)), (f"run:{run_id}",))
        target = acc[payer_id].references if group == "reference" else acc[payer_id].requests
        target.append(sample)
    for (payer_id, run_id), (first, ok_types) in types.items():
        acc[payer_id].resources.append(Sample(first, frozenset(ok_types), (f"run:{run_id}",)))


_CAPABILITY = ("metadata.reachable", "metadata.is_capability_statement")
_SMART = ("smart.reachable", "smart.is_json")


def _collect_checks(
    session: Session,
    window: Window,
    endpoints: Mapping[int, EndpointRow],
    kinds: Sequence[str],
    acc: dict[int, _Acc],
) -> None:
    rows = session.execute(
        select(
            CheckResultRow.id,
            CheckResultRow.run_id,
            CheckResultRow.endpoint_id,
            CheckResultRow.check_id,
            CheckResultRow.status,
            CheckResultRow.observed_at,
        )
        .where(
            CheckResultRow.endpoint_id.in_(list(endpoints)),
            CheckResultRow.check_id.in_([*_CAPABILITY, *_SMART]),
            CheckResultRow.observed_at >= window.start,
            CheckResultRow.observed_at <= window.end,
            CheckResultRow.run_id.in_(_runs_in(kinds)),
        )
        .order_by(CheckResultRow.id)
    )
    # (endpoint, run, document) -> (observed_at, verdict, evidence)
    verdicts: dict[tuple[int, int, str], tuple[datetime, bool | None, list[str]]] = {}
    for row_id, run_id, endpoint_id, check_id, status, observed in rows:
        doc = "capability" if check_id in _CAPABILITY else "smart"
        key = (endpoint_id, run_id, doc)
        at, verdict, evidence = verdicts.get(key, (as_utc(observed), None, []))
        evidence.append(f"check:{row_id}")
        presence = check_id in ("metadata.is_capability_statement", "smart.is_json")
        if presence and status == "pass":
            verdict = True
        elif status == "fail" and verdict is not True:
            verdict = False
        verdicts[key] = (at, verdict, evidence)
    for (endpoint_id, run_id, doc), (at, verdict, evidence) in verdicts.items():
        if verdict is None:
            continue
        endpoint = endpoints[endpoint_id]
        a = acc[endpoint.payer_id]
        sample = Sample(at, verdict, (f"run:{run_id}", *evidence))
        if endpoint.environment == "sandbox":
            if doc == "capability":
                a.sandbox.append(sample)
        elif doc == "capability":
            a.capability.append(sample)
        else:
            a.smart.append(sample)


def _collect_syncs(
    session: Session,
    window: Window,
    endpoints: Mapping[int, EndpointRow],
    kinds: Sequence[str],
    acc: dict[int, _Acc],
) -> None:
    production = [i for i, e in endpoints.items() if e.environment == "production"]
    if not production:
        return
    rows = session.scalars(
        select(SyncJobRow)
        .where(
            SyncJobRow.endpoint_id.in_(production),
            SyncJobRow.created_at >= window.start,
            SyncJobRow.created_at <= window.end,
            SyncJobRow.run_id.in_(_runs_in(kinds)),
        )
        .order_by(SyncJobRow.id)
    )
    for job in rows:
        a = acc[endpoints[job.endpoint_id].payer_id]
        created = as_utc(job.created_at)
        evidence = (f"run:{job.run_id}", f"sync_job:{job.id}")
        if job.completed_at is not None and (
            job.outcome is None or job.outcome in COMPLETED_SYNC_OUTCOMES
        ):
            seconds = max(0.0, (as_utc(job.completed_at) - created).total_seconds())
            timing = (job.details or {}).get("timing")
            scored = timing.get("scored_ms") if isinstance(timing, Mapping) else None
            if isinstance(scored, int | float) and not isinstance(scored, bool) and scored >= 0:
                seconds = min(seconds, scored / 1000)  # probe's own waits are not the server's
            a.syncs.append(Sample(created, seconds, evidence))
        returned = {t for t, n in (job.resources_by_type or {}).items() if n and _TYPE.match(t)}
        if returned:
            a.resources.append(Sample(created, frozenset(returned), evidence))
        details = job.details or {}
        everything = details.get("everything")
        if isinstance(everything, dict) and everything.get("supported") is not None:
            level = _EVERYTHING_LEVELS.get(str(everything.get("support_level")))
            if level is None:
                if not everything.get("supported"):
                    level = "unsupported"
                else:
                    level = "paged" if everything.get("paged") else "limited"
            a.everything.append(Sample(created, level, evidence))
        _reference_fallback(a, job, details, created, evidence)
        tokens = details.get("tokens")
        if isinstance(tokens, dict) and tokens.get("refresh_token_issued") is not None:
            lifetime = tokens.get("refresh_token_lifetime_s")
            days = lifetime / 86400 if isinstance(lifetime, int | float) and lifetime >= 0 else None
            refresh = RefreshInput(bool(tokens["refresh_token_issued"]), days)
            a.refresh.append(Sample(created, refresh, evidence))


def _reference_fallback(
    a: _Acc,
    job: SyncJobRow,
    details: Mapping[str, Any],
    created: datetime,
    evidence: tuple[str, ...],
) -> None:
    """A run whose syncs found references but never had to fetch one (everything was in the
    Bundle, contained or `urn:uuid`) is scored on the sync's resolved share: the report's
    request-based rate would otherwise call the most complete servers "no references"."""
    if any(f"run:{job.run_id}" in sample.evidence for sample in a.references):
        return
    refs = details.get("references")
    other = refs.get("other_origin", 0) if isinstance(refs, Mapping) else 0
    eligible = (job.references_found or 0) - (other if isinstance(other, int) else 0)
    if eligible <= 0:
        return
    resolved = min(job.references_resolved or 0, eligible)
    a.references.append(
        Sample(created, RateInput(resolved, eligible, ()), (*evidence, "in_bundle"))
    )


def _collect_authorizations(
    session: Session, window: Window, endpoints: Mapping[int, EndpointRow]
) -> dict[int, list[Sample[AuthCounts]]]:
    """Imported attempts of production endpoints in the window: one sample per payer per day."""
    production = [i for i, e in endpoints.items() if e.environment == "production"]
    if not production:
        return {}
    rows = session.execute(
        select(
            AuthorizationAttemptRow.id,
            AuthorizationAttemptRow.endpoint_id,
            AuthorizationAttemptRow.attempted_at,
            AuthorizationAttemptRow.state,
            AuthorizationAttemptRow.query_ineligible,
            AuthorizationAttemptRow.source,
            AuthorizationAttemptRow.origin,
        )
        .where(
            AuthorizationAttemptRow.endpoint_id.in_(production),
            AuthorizationAttemptRow.attempted_at >= window.start,
            AuthorizationAttemptRow.attempted_at <= window.end,
        )
        .order_by(AuthorizationAttemptRow.attempted_at, AuthorizationAttemptRow.id)
    )
    fetched = list(rows)
    # A payer's imported log (live members' attempts) is preferred; probe's own observed
    # attempts (`probe authorize`) count only for payers without a log in the window.
    with_log = {
        endpoints[endpoint_id].payer_id
        for _, endpoint_id, _, _, _, _, origin in fetched
        if origin != "observed"
    }
    # (payer, day) -> [last attempt, counts by state, query_ineligible flags, sources, ids]
    days: dict[tuple[int, str], list[Any]] = {}
    for row_id, endpoint_id, at, state, ineligible, source, origin in fetched:
        payer_id = endpoints[endpoint_id].payer_id
        if origin == "observed" and payer_id in with_log:
            continue
        at = as_utc(at)
        key = (payer_id, at.date().isoformat())
        entry = days.setdefault(key, [at, defaultdict(int), 0, {}, []])
        entry[0] = max(entry[0], at)
        entry[1][state] += 1
        entry[2] += 1 if ineligible else 0
        if origin == "observed":  # the evidence says which source each figure came from
            entry[3].setdefault("observed:probe authorize", None)
        elif source:
            entry[3].setdefault(f"authorization_log:{source}", None)
        if (state == "failed" or ineligible) and len(entry[4]) < MAX_FAILED_EVIDENCE:
            entry[4].append(f"authorization:{row_id}")
    out: dict[int, list[Sample[AuthCounts]]] = defaultdict(list)
    for (payer_id, _day), (last, states, flags, sources, ids) in sorted(days.items()):
        counts = AuthCounts(
            authorized=states["authorized"],
            exchanged=states["exchanged"],
            revoked=states["revoked"],
            failed=states["failed"],
            bounced=states["bounced"],
            query_ineligible_flags=flags,
        )
        out[payer_id].append(Sample(last, counts, (*sources, *ids)))
    return out


EVIDENCE_KINDS = (
    "run",
    "request",
    "check",
    "sync_job",
    "authorization",
    "authorization_log",
    "configured",
)
"""Evidence pointer prefixes ``collect_inputs`` and the engine emit, in display order."""


def evidence_summary(evidence: Iterable[str]) -> dict[str, list[str]]:
    """Evidence pointers grouped by kind (``run`` -> ["1", "2"], ...); others under ``other``."""
    out: dict[str, list[str]] = {}
    for item in evidence:
        kind, sep, value = item.partition(":")
        if not sep or kind not in EVIDENCE_KINDS:
            kind, value = "other", item
        out.setdefault(kind, []).append(value)
    order = {k: i for i, k in enumerate((*EVIDENCE_KINDS, "other"))}
    return dict(sorted(out.items(), key=lambda kv: order[kv[0]]))


def observation_times(
    session: Session, as_of: datetime, run_kinds: Iterable[str] = DEFAULT_RUN_KINDS
) -> list[datetime]:
    """When each counted run ended (or started, if unfinished) up to `as_of`, oldest first."""
    kinds = [str(k) for k in run_kinds]
    rows = session.execute(
        select(ProbeRunRow.started_at, ProbeRunRow.finished_at)
        .where(ProbeRunRow.kind.in_(kinds), ProbeRunRow.started_at <= as_utc(as_of))
        .order_by(ProbeRunRow.started_at, ProbeRunRow.id)
    )
    limit = as_utc(as_of)
    times = [min(as_utc(finished or started), limit) for started, finished in rows]
    return sorted(times)


def first_authorization(session: Session) -> datetime | None:
    """The earliest imported authorization attempt, if any."""
    value = session.scalar(select(func.min(AuthorizationAttemptRow.attempted_at)))
    return None if value is None else as_utc(value)


def scored_payer_count(session: Session) -> int:
    """How many payers of a directory the store holds (ad-hoc endpoints of `probe check` aside)."""
    sources = session.scalars(select(PayerRow.source))
    return sum(1 for source in sources if (source or "") != "ad-hoc")


def score_stored(
    session: Session,
    rubric: Rubric,
    as_of: datetime,
    window_months: int,
    *,
    history_from: datetime | None = None,
) -> tuple[Scorecard, list[PayerInputs]]:
    """The scorecard as of `as_of`, and the inputs collected from `history_from` (default: the
    window's start) so that a report can also score earlier moments."""
    window = Window.ending(as_of, window_months)
    start = window.start if history_from is None else min(window.start, history_from)
    inputs = collect_inputs(session, Window(start, window.end))
    return score(inputs, rubric, as_of=as_of, window_months=window_months), inputs
