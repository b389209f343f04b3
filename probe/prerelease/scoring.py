"""The prerelease score: the payer rubric restricted to the metrics one run can observe."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from probe.models import Status
from probe.prerelease.observe import Observation
from probe.score.collect import (
    COMPLETED_SYNC_OUTCOMES,
    REFERENCE_STEPS,
    REQUEST_STEPS,
    resource_type_of,
)
from probe.score.engine import score_payer
from probe.score.inputs import EverythingLevel, PayerInputs, RateInput, RefreshInput, Sample, Window
from probe.score.results import MetricScore
from probe.score.rubric import Rubric, default_rubric

#: Rubric metrics a single prerelease run can observe (sources include ``observed``), minus
#: ``sandbox`` (the candidate is itself pre-production).
EXCLUDED_METRICS = frozenset({"sandbox"})
#: The metrics the discovery suite alone decides (``--discovery-only`` gates on these).
DISCOVERY_METRICS = frozenset({"capability_statement", "smart_configuration"})
SCOPES = ("prerelease", "discovery")
_EVERYTHING: dict[str, EverythingLevel] = {
    "paged": "paged",
    "limited": "limited",
    "unsupported": "unsupported",
}


# -- scoring ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PrereleaseScore:
    """The prerelease score over its scope's rubric metrics; an untested metric counts 0.

    `scope` is ``prerelease`` (every metric one run can observe) or ``discovery``
    (``--discovery-only``: the metrics the discovery suite alone decides,
    :data:`DISCOVERY_METRICS`).
    `score` is ``round(100 * earned / possible)`` over the scope, `tested` the points of its
    metrics that had data in this run. The ``prerelease_*`` figures are the whole prerelease
    scorecard's, whatever the scope.
    """

    score: int | None
    earned: int
    tested: int
    possible: int
    scope: str
    prerelease_earned: int
    prerelease_tested: int
    prerelease_possible: int
    scored: tuple[MetricScore, ...]
    no_data: tuple[MetricScore, ...]
    rubric: str
    rubric_total: int
    rubric_max: int

    @property
    def untested(self) -> int:
        """Points of the scope's metrics that had no data in this run (counted as 0)."""
        return self.possible - self.tested

    def to_json(self) -> dict[str, Any]:
        """JSON form (the ``score`` object of the ``prerelease`` contract)."""
        return {
            "scope": self.scope,
            "score": self.score,
            "points_earned": self.earned,
            "points_tested": self.tested,
            "points_possible": self.possible,
            "prerelease_points_earned": self.prerelease_earned,
            "prerelease_points_tested": self.prerelease_tested,
            "prerelease_points_possible": self.prerelease_possible,
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
    observation: Observation,
    rubric: Rubric | None = None,
    *,
    at: datetime | None = None,
    scope: str = "prerelease",
) -> PrereleaseScore:
    """Score one observation with the prerelease scorecard over `scope` (see the class)."""
    if scope not in SCOPES:
        raise ValueError(f"scope must be one of {', '.join(SCOPES)}, not {scope!r}")
    rubric = rubric or default_rubric()
    moment = at or datetime.now(UTC)
    window = Window(moment - timedelta(seconds=1), moment + timedelta(seconds=1))
    card = score_payer(prerelease_inputs(observation, moment), rubric, window=window)
    wanted = set(prerelease_metric_ids(rubric))
    rows = [m for m in card.metrics if m.metric_id in wanted]
    scored = tuple(m for m in rows if not m.not_enough_data)
    no_data = tuple(m for m in rows if m.not_enough_data)

    def figures(ids: set[str]) -> tuple[int, int, int]:
        earned = sum(m.points for m in scored if m.metric_id in ids)
        tested = sum(m.max_points for m in scored if m.metric_id in ids)
        possible = sum(m.max_points for m in rows if m.metric_id in ids)
        return earned, tested, possible

    everything = figures(wanted)
    earned, tested, possible = (
        everything if scope == "prerelease" else figures(wanted & DISCOVERY_METRICS)
    )
    return PrereleaseScore(
        round(100 * earned / possible) if possible else None,
        earned,
        tested,
        possible,
        scope,
        *everything,
        scored,
        no_data,
        f"{rubric.id} {rubric.version}",
        card.total,
        card.max_total,
    )
