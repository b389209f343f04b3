"""The scoring engine: payer inputs in, points out. Pure: no I/O, no clock, no store.

For each payer, every metric of the rubric is *resolved* from the payer's inputs inside the
scoring window (a number for banded metrics, a choice, or a set of present items), then scored
against the rubric. A metric whose input is missing resolves to the explicit ``not_enough_data``
outcome and gets the points the rubric's rule gives it, never a silent zero. Each
:class:`MetricScore` says what was expected, what was seen, the evidence and why.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from fractions import Fraction
from typing import Any

from probe.directory.schema import LineOfBusiness
from probe.score.inputs import (
    AuthCounts,
    PayerInputs,
    RateInput,
    Sample,
    Window,
    as_utc,
    best_everything,
    evidence_of,
    in_window,
)
from probe.score.results import (
    CategoryScore,
    Exclusion,
    MetricScore,
    PayerScore,
    RankedPayer,
    Resolved,
)
from probe.score.rubric import NOT_ENOUGH_DATA, Metric, Rubric, default_rubric, fmt_number
from probe.score.vendor import RankedVendor, VendorScore, rank_vendors, vendor_scores

MAX_EVIDENCE = 50
"""At most this many evidence pointers are kept per metric (`evidence_total` has the count)."""


@dataclass(frozen=True, slots=True)
class Scorecard:
    """A whole scoring run: rubric, window, ranked payers and vendors, exclusions, totals."""

    rubric: str
    as_of: datetime
    window: Window
    payer_total: int
    vendor_total_stated: int
    vendor_total_computed: int
    vendor_denominator: int
    vendor_total_discrepancy: str | None
    payers: tuple[RankedPayer, ...]
    vendors: tuple[RankedVendor, ...]
    excluded: tuple[Exclusion, ...] = ()
    notes: tuple[str, ...] = field(default_factory=tuple)

    def payer(self, name: str) -> PayerScore:
        """The score of the payer with this name (KeyError when not scored)."""
        for ranked in self.payers:
            if ranked.score.payer == name:
                return ranked.score
        raise KeyError(name)

    def vendor(self, name: str) -> VendorScore:
        """The score of the vendor with this name (KeyError when unknown)."""
        for ranked in self.vendors:
            if ranked.score.vendor == name:
                return ranked.score
        raise KeyError(name)

    def to_json(self) -> dict[str, Any]:
        """JSON form of the whole scorecard."""
        return {
            "rubric": self.rubric,
            "as_of": self.as_of.isoformat(),
            "window": self.window.to_json(),
            "payer_total": self.payer_total,
            "vendor_total_stated": self.vendor_total_stated,
            "vendor_total_computed": self.vendor_total_computed,
            "vendor_denominator": self.vendor_denominator,
            "vendor_total_discrepancy": self.vendor_total_discrepancy,
            "notes": list(self.notes),
            "payers": [{"rank": r.rank, **r.score.to_json()} for r in self.payers],
            "vendors": [{"rank": r.rank, **r.score.to_json()} for r in self.vendors],
            "excluded": [e.to_json() for e in self.excluded],
        }


# -- resolving inputs -------------------------------------------------------------------------

Resolver = Callable[[PayerInputs, Window, Rubric], Resolved]


def _pct(value: Fraction) -> float:
    return round(float(value), 4)


def _availability(samples: Sequence[Sample[bool]], what: str) -> Resolved:
    """Available when any observation in the window succeeded; not when all failed."""
    if not samples:
        return Resolved(comment=f"{what} was not fetched in the window")
    good = [s for s in samples if s.value]
    seen = {"observations": len(samples), "successful": len(good)}
    if good:
        return Resolved(choice="available", input_value=seen, evidence=evidence_of(good))
    return Resolved(
        choice="not_available",
        input_value=seen,
        evidence=evidence_of(samples),
        comment=f"all {len(samples)} attempts to fetch the {what} in the window failed",
    )


def _status(p: PayerInputs, w: Window, r: Rubric) -> Resolved:
    groups = r.organization_status
    if p.organization_status in groups.live:
        choice = "live"
    elif p.organization_status in groups.implementing:
        choice = "implementing"
    else:
        choice = "not_available"
    return Resolved(
        choice=choice,
        input_value=str(p.organization_status),
        evidence=("configured:organization_status",),
    )


def _sandbox(p: PayerInputs, w: Window, r: Rubric) -> Resolved:
    samples = in_window(p.sandbox_checks, w)
    if samples:
        return _availability(samples, "sandbox CapabilityStatement")
    if p.sandbox_declared is None:
        return Resolved(comment="no sandbox declared or observed")
    return Resolved(
        choice="available" if p.sandbox_declared else "not_available",
        input_value={"declared": p.sandbox_declared},
        evidence=("configured:sandbox_url",),
        comment="as configured; not verified in the window",
    )


def _capability(p: PayerInputs, w: Window, r: Rubric) -> Resolved:
    return _availability(in_window(p.capability_checks, w), "CapabilityStatement")


def _smart(p: PayerInputs, w: Window, r: Rubric) -> Resolved:
    return _availability(in_window(p.smart_checks, w), ".well-known/smart-configuration")


def _auth_counts(p: PayerInputs, w: Window) -> tuple[AuthCounts, tuple[str, ...]]:
    samples = in_window(p.authorizations, w)
    total = AuthCounts()
    for s in samples:
        total = total + s.value
    return total, evidence_of(samples)


def _auth_success(p: PayerInputs, w: Window, r: Rubric) -> Resolved:
    counts, evidence = _auth_counts(p, w)
    value: dict[str, Any] = {
        "authorized": counts.authorized,
        "exchanged": counts.exchanged,
        "revoked": counts.revoked,
        "failed": counts.failed,
        "bounced": counts.bounced,
    }
    rate = counts.rate().percent
    if rate is None:
        why = (
            f"only bounced authorizations ({counts.bounced}) in the window"
            if counts.bounced
            else "no live authorizations in the window"
        )
        return Resolved(input_value=value, evidence=evidence, comment=why)
    value["percent"] = _pct(rate)
    return Resolved(
        number=rate,
        input_value=value,
        evidence=evidence,
        samples=counts.attempts,
        comment=f"{counts.successes} of {counts.attempts} authorizations succeeded "
        f"({float(rate):.2f}%, bounced excluded)",
    )


def _refresh(p: PayerInputs, w: Window, r: Rubric) -> Resolved:
    samples = in_window(p.refresh, w)
    observed = [s.value for s in samples]
    issued: bool | None = None
    if any(o.issued for o in observed):
        issued = True
    elif any(o.issued is False for o in observed):
        issued = False
    lifetimes = [o.max_days for o in observed if o.max_days is not None]
    configured = p.facts.refresh_token_max_days
    max_days = configured if configured is not None else (max(lifetimes) if lifetimes else None)
    evidence = evidence_of(samples)
    if configured is not None:
        evidence = (*evidence, "configured:refresh_token_max_days")
    # No maximum (configured `.inf`): strict JSON says `null` plus `indefinite`, and the rubric
    # compares a number longer than any band's bound.
    indefinite = max_days is not None and math.isinf(max_days)
    value = {
        "issued": issued,
        "max_days": None if indefinite else max_days,
        "configured_max_days": None if indefinite else configured,
        "indefinite": indefinite,
    }
    if issued is False:
        return Resolved(
            choice="not_available",
            input_value=value,
            evidence=evidence,
            comment="token responses in the window carried no refresh token",
        )
    if issued is None and configured is None:
        return Resolved(input_value=value, comment="no token response in the window")
    if max_days is None:
        return Resolved(
            choice="available_max_unknown",
            input_value=value,
            evidence=evidence,
            comment="refresh token issued; maximum authorization period unknown",
        )
    period = "no maximum" if indefinite else f"{fmt_number(max_days)} days"
    return Resolved(
        number=NO_MAXIMUM_DAYS if indefinite else Fraction(repr(float(max_days))),
        input_value=value,
        evidence=evidence,
        samples=1,
        comment=f"maximum authorization period {period}"
        + (" (configured)" if configured is not None else " (observed)"),
    )


#: The number a refresh token without a maximum lifetime is scored as (a thousand years).
NO_MAXIMUM_DAYS = Fraction(365_000)


def _inactive(p: PayerInputs, w: Window, r: Rubric) -> Resolved:
    months = p.facts.inactive_member_access_months
    indefinite = months is not None and math.isinf(months)
    # Strict JSON has no Infinity: an indefinite duration is `months: null, indefinite: true`.
    value = {
        "months": None if indefinite else months,
        "indefinite": indefinite,
        "available": p.inactive_access_available,
    }
    evidence = ("configured:inactive_member_access_months",)
    if months is None:
        if p.inactive_access_available is None:
            return Resolved(input_value=value, comment="inactive member access not configured")
        return Resolved(
            choice="unknown_duration" if p.inactive_access_available else "not_available",
            input_value=value,
            evidence=("configured:inactive_access_available",),
        )
    if indefinite:
        return Resolved(choice="indefinite", input_value=value, evidence=evidence)
    if months == 0 or p.inactive_access_available is False:
        return Resolved(choice="not_available", input_value=value, evidence=evidence)
    return Resolved(
        number=Fraction(repr(float(months))), input_value=value, evidence=evidence, samples=1
    )


def _opt_in(p: PayerInputs, w: Window, r: Rubric) -> Resolved:
    required = p.facts.member_portal_opt_in_required
    if required is None:
        return Resolved(comment="member portal opt-in requirement not configured")
    return Resolved(
        choice="required" if required else "not_required",
        input_value={"required": required},
        evidence=("configured:member_portal_opt_in_required",),
    )


def _eligibility(p: PayerInputs, w: Window, r: Rubric) -> Resolved:
    counts, evidence = _auth_counts(p, w)
    configured = p.facts.eligibility_errors_on_callback
    value = {"query_ineligible_flags": counts.query_ineligible_flags, "configured": configured}
    if counts.query_ineligible_flags > 0:
        return Resolved(
            choice="yes",
            input_value=value,
            evidence=evidence,
            comment=f"{counts.query_ineligible_flags} callbacks carried query_ineligible",
        )
    if configured is None:
        return Resolved(input_value=value, comment="no recorded eligibility error state")
    return Resolved(
        choice="yes" if configured else "no",
        input_value=value,
        evidence=("configured:eligibility_errors_on_callback",),
    )


def _lines(p: PayerInputs, w: Window, r: Rubric) -> Resolved:
    offered, supported = set(p.lines_offered), set(p.lines_supported)
    cms: set[LineOfBusiness] = set(r.cms_mandated_lines)
    value = {"offered": sorted(offered), "supported": sorted(supported)}
    evidence = ("configured:lines_of_business",)
    if not offered:
        why = "lines of business offered are not configured"
        return Resolved(input_value=value, comment=why)
    covered = supported & offered
    if not covered:
        choice = "none_supported"
    elif covered == offered:
        choice = "all_cms_supported" if offered <= cms else "all_supported"
    elif offered & cms <= covered:
        choice = "only_cms_supported"
    else:
        choice = "cms_partially_supported"
    missing = sorted(offered - covered)
    comment = f"not supported: {', '.join(missing)}" if missing else ""
    return Resolved(choice=choice, input_value=value, evidence=evidence, comment=comment)


def _rate(samples: Sequence[Sample[RateInput]], nothing: str) -> Resolved:
    total = RateInput.total(s.value for s in samples)
    evidence = tuple(dict.fromkeys((*evidence_of(samples), *total.evidence)))
    value: dict[str, Any] = {"successes": total.successes, "attempts": total.attempts}
    percent = total.percent
    if percent is None:
        return Resolved(input_value=value, evidence=evidence, comment=nothing)
    value["percent"] = _pct(percent)
    return Resolved(
        number=percent,
        input_value=value,
        evidence=evidence,
        samples=total.attempts,
        comment=f"{total.successes} of {total.attempts} got a 200 ({float(percent):.2f}%)",
    )


def _requests(p: PayerInputs, w: Window, r: Rubric) -> Resolved:
    return _rate(in_window(p.requests, w), "no live FHIR resource requests in the window")


def _references(p: PayerInputs, w: Window, r: Rubric) -> Resolved:
    return _rate(in_window(p.references, w), "no references to resolve in the window")


def _resources(p: PayerInputs, w: Window, r: Rubric) -> Resolved:
    samples = in_window(p.resources_available, w)
    if not samples:
        return Resolved(comment="no live FHIR resource requests in the window")
    present: set[str] = set()
    for s in samples:
        present |= s.value
    return Resolved(
        items=frozenset(present),
        input_value=sorted(present),
        evidence=evidence_of(samples),
    )


def _sync_speed(p: PayerInputs, w: Window, r: Rubric) -> Resolved:
    samples = in_window(p.sync_durations_s, w)
    if not samples:
        return Resolved(comment="no completed sync in the window")
    durations = [Fraction(repr(float(s.value))) for s in samples]
    med = statistics.median(durations)
    value = {
        "median_s": round(float(med), 3),
        "syncs": len(samples),
        "min_s": round(float(min(durations)), 3),
        "max_s": round(float(max(durations)), 3),
    }
    return Resolved(
        number=Fraction(med),
        input_value=value,
        evidence=evidence_of(samples),
        samples=len(samples),
        comment=f"median of {len(samples)} syncs: {float(med):.3f} s",
    )


def _everything(p: PayerInputs, w: Window, r: Rubric) -> Resolved:
    samples = in_window(p.everything, w)
    level = best_everything(s.value for s in samples)
    if level is None:
        return Resolved(comment="$everything was not attempted in the window")
    best = [s for s in samples if s.value == level]
    levels = sorted({s.value for s in samples})
    return Resolved(
        choice=level,
        input_value={"best": level, "observed": levels},
        evidence=evidence_of(best),
    )


def _portal(p: PayerInputs, w: Window, r: Rubric) -> Resolved:
    checks = in_window(p.portal_checks, w)
    value = {"url": p.portal_url, "contact": p.portal_contact}
    if p.portal_url or p.portal_contact == "portal":
        comment = ""
        if checks and not any(s.value for s in checks):
            comment = "portal URL recorded but it did not answer in the window"
        return Resolved(
            choice="available",
            input_value=value,
            evidence=("configured:portal_url", *evidence_of(checks)),
            comment=comment,
        )
    if p.portal_contact == "email":
        return Resolved(choice="email", input_value=value, evidence=("configured:portal_contact",))
    return Resolved(input_value=value, comment="no developer portal recorded")


RESOLVERS: dict[str, Resolver] = {
    "status": _status,
    "sandbox": _sandbox,
    "capability_statement": _capability,
    "smart_configuration": _smart,
    "auth_success": _auth_success,
    "refresh_token": _refresh,
    "inactive_member_access": _inactive,
    "portal_opt_in": _opt_in,
    "eligibility_errors": _eligibility,
    "lines_of_business": _lines,
    "request_success": _requests,
    "reference_resolution": _references,
    "carin_bb": _resources,
    "clinical": _resources,
    "sync_speed": _sync_speed,
    "everything": _everything,
    "developer_portal": _portal,
}
"""How each known metric id is resolved from a payer's inputs."""


def resolve(metric_id: str, inputs: PayerInputs, window: Window, rubric: Rubric) -> Resolved:
    """The raw input of one metric for one payer inside `window` (KeyError for unknown ids)."""
    return RESOLVERS[metric_id](inputs, window, rubric)


# -- scoring -----------------------------------------------------------------------------------


def score_metric(metric: Metric, resolved: Resolved) -> MetricScore:
    """Score one resolved input against its metric: a band, a choice, a sum, or not enough data."""
    comment = resolved.comment
    outcome: str | None = None
    label = ""
    points = 0
    if resolved.choice is not None:
        choice = metric.choice(resolved.choice)
        if choice is None:  # rubric validation makes this unreachable for known metrics
            raise ValueError(f"metric {metric.id!r} has no choice {resolved.choice!r}")
        outcome, label, points = choice.value, choice.label, choice.points
    elif resolved.number is not None and metric.bands is not None:
        bands = metric.bands
        band = bands.band_for(resolved.number)
        if resolved.samples < bands.min_samples:
            comment = f"{resolved.samples} samples, fewer than the {bands.min_samples} required"
        elif band is None:
            comment = (
                f"value {float(resolved.number):g} {bands.unit} is outside the rubric's range "
                f"{bands.range.notation}"
            )
        else:
            outcome, label, points = band.label, f"{band.label} {band.notation}", band.points
    elif resolved.items is not None and metric.sum is not None:
        scoring = metric.sum
        present = [i for i in scoring.items if i.item in resolved.items]
        raw = sum(i.points for i in present)
        points = raw if scoring.cap is None else min(raw, scoring.cap)
        names = [i.item for i in present]
        outcome = ", ".join(names) if names else scoring.none_label
        label = outcome
        missing = [i.item for i in scoring.items if i.item not in resolved.items]
        if points < metric.points and missing:
            extra = f"missing: {', '.join(missing)}"
            comment = f"{comment}; {extra}" if comment else extra
    if outcome is None:
        rule = metric.not_enough_data
        outcome, label, points = NOT_ENOUGH_DATA, rule.label, rule.points
    evidence = resolved.evidence
    return MetricScore(
        metric_id=metric.id,
        title=metric.title,
        category=metric.category,
        points=points,
        max_points=metric.points,
        outcome=outcome,
        outcome_label=label,
        input_value=resolved.input_value,
        evidence=evidence[:MAX_EVIDENCE],
        comment=comment,
        expected=metric.expected,
        reference=metric.reference,
        audience=tuple(metric.audience),
        sources=tuple(metric.sources),
        evidence_total=len(evidence),
    )


def is_live_production(inputs: PayerInputs, rubric: Rubric) -> bool:
    """True when the payer has a production endpoint and a Live organization status."""
    return inputs.production_endpoint and inputs.organization_status in (
        rubric.organization_status.live
    )


def score_payer(inputs: PayerInputs, rubric: Rubric | None = None, *, window: Window) -> PayerScore:
    """Score one payer on every metric of `rubric` (default: the packaged rubric)."""
    rubric = rubric or default_rubric()
    rows = tuple(score_metric(m, resolve(m.id, inputs, window, rubric)) for m in rubric.metrics)
    payer_rows = [row for row in rows if "payer" in row.audience]
    vendor_rows = [row for row in rows if "vendor" in row.audience]
    categories = tuple(
        CategoryScore(
            c.id,
            c.title,
            sum(row.points for row in payer_rows if row.category == c.id),
            c.points,
        )
        for c in rubric.categories
    )
    flags = ("lives_unknown",) if inputs.lives is None else ()
    return PayerScore(
        payer=inputs.name,
        vendor=inputs.vendor,
        lives=inputs.lives,
        organization_status=inputs.organization_status,
        live_production=is_live_production(inputs, rubric),
        total=sum(row.points for row in payer_rows),
        max_total=rubric.payer_total,
        vendor_points=sum(row.points for row in vendor_rows),
        vendor_max=rubric.vendor_total_computed,
        metrics=rows,
        categories=categories,
        flags=flags,
    )


def filter_by_lives(
    inputs: Iterable[PayerInputs], min_lives: int
) -> tuple[list[PayerInputs], list[Exclusion]]:
    """Split payers into those scored and those covering fewer than `min_lives` lives.

    Payers whose lives are unknown are kept (and flagged ``lives_unknown`` on their score).
    """
    kept: list[PayerInputs] = []
    excluded: list[Exclusion] = []
    for payer in inputs:
        if payer.lives is not None and payer.lives < min_lives:
            reason = f"covers {payer.lives} lives, fewer than {min_lives}"
            excluded.append(Exclusion(payer.name, payer.vendor, payer.lives, reason))
        else:
            kept.append(payer)
    return kept, excluded


def rank_payers(scores: Iterable[PayerScore]) -> list[RankedPayer]:
    """Payers by total, highest first (then by name); equal totals share a rank (1, 2, 3, 3, 5)."""
    ordered = sorted(scores, key=lambda s: (-s.total, s.payer.casefold(), s.payer))
    out: list[RankedPayer] = []
    for i, s in enumerate(ordered):
        rank = out[-1].rank if out and out[-1].score.total == s.total else i + 1
        out.append(RankedPayer(rank, s))
    return out


def score(
    inputs: Iterable[PayerInputs],
    rubric: Rubric | None = None,
    *,
    as_of: datetime,
    window_months: int | None = None,
) -> Scorecard:
    """Score every payer and vendor as of `as_of`.

    Only observations in ``[as_of - window_months calendar months, as_of]`` count
    (`window_months` defaults to the rubric's, 6). Payers with fewer than the rubric's
    `min_lives` are excluded; vendors get the median over their Live production payers.
    """
    rubric = rubric or default_rubric()
    payers = list(inputs)
    names = [p.name for p in payers]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"payers given twice: {', '.join(duplicates)}")
    months = rubric.window_months if window_months is None else window_months
    window = Window.ending(as_of, months)
    kept, excluded = filter_by_lives(payers, rubric.min_lives)
    scores = [score_payer(p, rubric, window=window) for p in kept]
    notes: list[str] = []
    unknown = [s.payer for s in scores if "lives_unknown" in s.flags]
    if unknown:
        notes.append(
            f"{len(unknown)} payer(s) with unknown lives were kept (flagged lives_unknown)"
        )
    if rubric.vendor_total_discrepancy:
        notes.append(rubric.vendor_total_discrepancy)
    return Scorecard(
        rubric=rubric.label,
        as_of=as_utc(as_of),
        window=window,
        payer_total=rubric.payer_total,
        vendor_total_stated=rubric.vendor_total_stated,
        vendor_total_computed=rubric.vendor_total_computed,
        vendor_denominator=rubric.vendor_total,
        vendor_total_discrepancy=rubric.vendor_total_discrepancy,
        payers=tuple(rank_payers(scores)),
        vendors=tuple(rank_vendors(vendor_scores(scores, rubric))),
        excluded=tuple(excluded),
        notes=tuple(notes),
    )
