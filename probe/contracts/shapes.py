"""The shapes of probe's JSON outputs, as typed dicts: the models the JSON Schemas are generated
from (``python -m probe.contracts.generate``).

One top-level shape per contract (:data:`TOP_LEVEL`); every output also carries
``schema_version`` (see :mod:`probe.contracts.versions`). The generator closes every object
that declares properties (``additionalProperties: false``), so a field an emitter adds without
adding it here fails the schema tests. Maps keyed by data (resource types, check ids, steps)
are open maps. ``Any`` marks values whose shape is the server's or the metric's own (check
evidence, a change's before and after, a metric's input).

Strict JSON: no output holds NaN or Infinity. A duration that can be indefinite (the rubric's
``inactive_member_access_months: .inf``) appears as ``{"months": null, "indefinite": true}`` in
a metric's ``input``; any other non-finite number is written as null.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import Field
from typing_extensions import TypedDict

from probe.authorize.outcome import Outcome as AttemptOutcome
from probe.directory.schema import Environment, OrganizationStatus
from probe.drift.classify import ChangeKind
from probe.models import Severity
from probe.models import Status as CheckStatus
from probe.store.tables import DocumentKind, RunKind, RunStatus

# Enumerations are the code's own enums, so a new value shows in the generated schema (and the
# schema test fails until it is regenerated, with a minor version bump).
TokenKind = Literal["none", "bearer", "refresh_token", "backend_services"]
SupportLevel = Literal["paged", "limited", "unsupported", "unknown"]
SyncOutcome = Literal["running", "completed", "partial", "failed", "auth_failed", "timeout"]

# -- probe check -------------------------------------------------------------------------------


class CheckResultJson(TypedDict):
    """One check's verdict: the check's identity, the outcome, and the evidence behind it."""

    id: str
    title: str
    severity: Severity
    status: CheckStatus
    spec: str
    message: str
    evidence: dict[str, Any]


StatusCounts = TypedDict(
    "StatusCounts", {"pass": int, "fail": int, "warn": int, "skip": int, "error": int}
)


class CheckReportBody(TypedDict):
    """The discovery suite's results against one base URL."""

    base_url: str
    started_at: datetime
    duration_ms: float
    checks: list[CheckResultJson]
    summary: StatusCounts


class CheckOutput(CheckReportBody):
    """``probe check --format json``."""

    schema_version: str


# -- probe sync --------------------------------------------------------------------------------


class PatientJson(TypedDict):
    """The test patient: FHIR id and report label."""

    id: str
    label: str


class TimingJson(TypedDict):
    """Where the sync's wall time went, in ms."""

    wall_ms: float
    server_ms: float
    probe_wait_ms: float
    scored_ms: float


class ReferencesJson(TypedDict):
    """Reference resolution figures."""

    found: int
    in_bundle: int
    fetched: int
    resolved: int
    other_origin: int
    rate: float | None
    unresolved_sample: list[str]


class EverythingJson(TypedDict):
    """How ``$everything`` behaved."""

    supported: bool | None
    paged: bool | None
    support_level: SupportLevel
    method: str | None
    fallback_used: bool
    pages: int
    reason: str | None


class TokensJson(TypedDict):
    """What the token endpoint told probe (never a token value)."""

    kind: TokenKind
    refresh_token_issued: bool | None
    refresh_token_rotated: bool
    refresh_token_lifetime_s: float | None
    access_token_lifetime_s: float | None
    refreshes: int


class FindingJson(TypedDict):
    """Something notable the sync saw."""

    code: str
    message: str
    url: str | None


class SyncBody(TypedDict):
    """One test patient's sync: outcome, timings, counts by type, requests by step, findings."""

    base_url: str
    patient: PatientJson
    outcome: SyncOutcome
    created_at: datetime
    completed_at: datetime | None
    duration_ms: float | None
    timing: TimingJson | None
    pages: int
    bytes: int
    resources_by_type: dict[str, int]
    requests_by_step: dict[str, dict[str, int]]
    references: ReferencesJson
    everything: EverythingJson
    validation_failures_by_type: dict[str, int]
    validation_samples: dict[str, str]
    tokens: TokensJson
    searched_types: dict[str, int | None]
    search_strategies: dict[str, str]
    findings: list[FindingJson]


class SyncOutput(SyncBody):
    """``probe sync --format json``."""

    schema_version: str


# -- probe score -------------------------------------------------------------------------------


class WindowJson(TypedDict):
    """The scoring window."""

    start: datetime
    end: datetime


class MetricJson(TypedDict):
    """One metric's verdict for one payer: points, expected, actual (``input``), evidence."""

    metric: str
    title: str
    category: str
    points: int
    max_points: int
    outcome: str
    outcome_label: str
    input: Annotated[
        Any,
        Field(
            description=(
                "The metric's input as resolved from the window (its shape is the metric's). "
                "Strict JSON: an indefinite duration is never Infinity; inactive_member_access "
                'configured as .inf is {"months": null, "indefinite": true, ...}.'
            )
        ),
    ]
    expected: str
    comment: str
    reference: str
    audience: list[str]
    sources: list[str]
    evidence: list[str]
    evidence_total: int


class ScoredMetricJson(MetricJson):
    """A metric row of ``probe score``: with the not-enough-data flag and grouped evidence."""

    not_enough_data: bool
    evidence_summary: dict[str, list[str]]


class CategoryJson(TypedDict):
    """A category's payer points."""

    id: str
    title: str
    points: int
    max_points: int


class PayerJson(TypedDict):
    """One ranked payer."""

    rank: int
    payer: str
    vendor: str | None
    lives: int | None
    organization_status: OrganizationStatus
    live_production: bool
    total: int
    max_total: int
    vendor_points: int
    vendor_max: int
    flags: list[str]
    categories: list[CategoryJson]
    metrics: list[ScoredMetricJson]
    not_enough_data: list[str]


class VendorJson(TypedDict):
    """One vendor: the median over its Live production payers (rank null: not enough data)."""

    rank: int | None
    vendor: str
    score: float | None
    outcome: Literal["scored", "not_enough_data"]
    max_points: int
    total_computed: int
    payers: list[str]
    skipped_payers: list[str]
    metric_medians: dict[str, float]
    comment: str


class ExclusionJson(TypedDict):
    """A payer left out of the scores, and why."""

    payer: str
    vendor: str | None
    lives: int | None
    reason: str


class ScoreOutput(TypedDict):
    """``probe score --format json``."""

    schema_version: str
    rubric: str
    as_of: datetime
    window: WindowJson
    payer_total: int
    vendor_total_stated: int
    vendor_total_computed: int
    vendor_denominator: int
    vendor_total_discrepancy: str | None
    notes: list[str]
    payers: list[PayerJson]
    vendors: list[VendorJson]
    excluded: list[ExclusionJson]
    database: str


# -- probe history -----------------------------------------------------------------------------


class HistoryRunJson(TypedDict):
    """One stored run of the endpoint, with its check counts by status."""

    run_id: int
    kind: RunKind
    status: RunStatus
    started_at: datetime
    checks: dict[CheckStatus, int]


class HistoryVerdictJson(TypedDict):
    """One run's verdict of the ``--check`` check."""

    run_id: int
    check_id: str
    status: CheckStatus
    message: str
    observed_at: datetime


class DocumentVersionJson(TypedDict):
    """One version of a document (by content hash) and when it was seen."""

    content_hash: str
    first_seen: datetime
    last_seen: datetime
    sightings: int


class HistoryOutput(TypedDict):
    """``probe history URL --format json``."""

    schema_version: str
    base_url: str
    environment: Environment
    runs: list[HistoryRunJson]
    check: list[HistoryVerdictJson]
    documents: dict[DocumentKind, list[DocumentVersionJson]]


# -- probe drift -------------------------------------------------------------------------------


class DriftEndpointJson(TypedDict):
    """The endpoint a drift event concerns."""

    id: int
    environment: Environment
    base_url: str


class DriftEventJson(TypedDict):
    """One stored change of one endpoint between a run and its previous run."""

    id: int | None
    run_id: int
    previous_run_id: int | None
    payer: str
    endpoint: DriftEndpointJson
    kind: ChangeKind
    change_id: str
    path: str
    before: Any
    after: Any
    reason: str
    detected_at: datetime


class DriftOutput(TypedDict):
    """``probe drift --format json``: the events, newest run first, most severe first."""

    schema_version: str
    events: list[DriftEventJson]


# -- probe prerelease --------------------------------------------------------------------------


class BaselineJson(TypedDict):
    """What the candidate was compared with."""

    description: str
    run_id: int | None
    base_url: str
    behaviour_compared: bool


class GateJson(TypedDict):
    """Whether the candidate may be released, and each reason it may not."""

    passed: bool
    reasons: list[str]
    fail_under: int | None
    fail_on: list[Literal["breaking", "notable", "required"]]
    scope: Literal["prerelease", "discovery"]


class NotTestedJson(TypedDict):
    """Something the prerelease did not test: a rubric metric (its points count 0 in the
    score), the baseline comparison, or the test-patient sync."""

    item: str
    title: str
    points: int
    reason: str


class PrereleaseScoreJson(TypedDict):
    """The prerelease score over its scope: untested criteria count 0 of their points."""

    scope: Literal["prerelease", "discovery"]
    score: int | None
    points_earned: int
    points_tested: int
    points_possible: int
    prerelease_points_earned: int
    prerelease_points_tested: int
    prerelease_points_possible: int
    rubric: str
    rubric_total: int
    rubric_max: int
    metrics: list[MetricJson]
    not_enough_data: list[str]


class ChangeJson(TypedDict):
    """One classified difference between the baseline and the candidate."""

    id: str
    kind: ChangeKind
    path: str
    before: Any
    after: Any
    reason: str


class ChangeCounts(TypedDict):
    """Changes by kind."""

    breaking: int
    notable: int
    cosmetic: int


class PrereleaseOutput(TypedDict):
    """``probe prerelease --format json``."""

    schema_version: str
    candidate: str
    baseline: BaselineJson | None
    started_at: datetime
    duration_s: float
    gate: GateJson
    score: PrereleaseScoreJson
    not_tested: list[NotTestedJson]
    changes: list[ChangeJson]
    change_counts: ChangeCounts
    checks: list[CheckResultJson]
    syncs: list[SyncBody]
    saved_run_id: int | None


# -- probe authorize ---------------------------------------------------------------------------


class AuthorizeFindingJson(TypedDict):
    """A requirement the attempt's token response did not meet."""

    id: str
    message: str


class AuthorizeOutput(TypedDict):
    """``probe authorize URL --format json``: one SMART patient authorization, walked in a
    browser: how it ended, the token's facts (never the tokens) and the journey's evidence."""

    schema_version: str
    base_url: str
    started_at: datetime
    outcome: AttemptOutcome
    #: The OAuth error code (the callback's or the token endpoint's), if any.
    error: str | None
    error_description: str | None
    #: A short human reason (the login failure, the identity vendor, the browser error).
    detail: str | None
    patient: str | None
    refresh_token_issued: bool
    scopes_granted: list[str]
    pkce: Literal["S256"]
    duration_ms: float
    redirects: int
    identity_verification_vendor: str | None
    findings: list[AuthorizeFindingJson]
    #: The authorization and token endpoints used and where they were found.
    endpoints: dict[str, str | None]
    #: Timings, navigation and pages seen (the journey's own shape).
    evidence: dict[str, Any]


#: The top-level shape of each contract.
TOP_LEVEL: dict[str, type] = {
    "check": CheckOutput,
    "sync": SyncOutput,
    "score": ScoreOutput,
    "history": HistoryOutput,
    "drift": DriftOutput,
    "prerelease": PrereleaseOutput,
    "authorize": AuthorizeOutput,
}
