"""Vendor scores: median over Live production payers, vendor metrics only."""

from __future__ import annotations

import json
from typing import Any

import pytest

from probe.directory.schema import OrganizationStatus
from probe.score.engine import score, score_payer
from probe.score.inputs import RateInput
from probe.score.rubric import NOT_ENOUGH_DATA, default_rubric, parse_rubric
from probe.score.vendor import VendorScore, median, rank_vendors, vendor_scores
from tests.score.builders import AS_OF, WINDOW, payer, sample

# Vendor-metric subtotals of these payers: eligibility Unknown (2) is always there.
BASE = 2


def _with_requests(name: str, percent_ok: int, **fields: Any) -> Any:
    """A payer whose request success rate is `percent_ok` (10/8/6/... points)."""
    fields.setdefault("vendor", "V")
    return payer(name, requests=(sample(RateInput(percent_ok, 100)),), **fields)


def test_median() -> None:
    assert median([3.0]) == 3.0
    assert median([5.0, 1.0, 3.0]) == 3.0
    assert median([1.0, 2.0, 3.0, 10.0]) == 2.5
    with pytest.raises(ValueError):
        median([])


def test_vendor_median_odd_count() -> None:
    payers = [_with_requests("P1", 100), _with_requests("P2", 96), _with_requests("P3", 10)]
    card = score(payers, as_of=AS_OF)
    v = card.vendor("V")
    assert v.outcome == "scored"
    assert v.score == BASE + 8  # subtotals 12, 10, 2 -> 10
    assert v.payers == ("P1", "P2", "P3")
    assert v.metric_medians["request_success"] == 8.0
    assert v.max_points == 70
    assert v.total_computed == 63


def test_vendor_median_even_count_is_mean_of_middle_two() -> None:
    payers = [
        _with_requests("P1", 100),  # 12
        _with_requests("P2", 96),  # 10
        _with_requests("P3", 91),  # 8
        _with_requests("P4", 10),  # 2
    ]
    v = score(payers, as_of=AS_OF).vendor("V")
    assert v.score == 9.0
    assert v.metric_medians["request_success"] == 7.0


def test_only_live_production_payers_count() -> None:
    payers = [
        _with_requests("Live", 100),
        _with_requests("Broken", 96, organization_status=OrganizationStatus.BROKEN),
        _with_requests("Validated", 96, organization_status=OrganizationStatus.USER_VALIDATED),
        _with_requests("Planned", 10, organization_status=OrganizationStatus.APPLIED),
        _with_requests("Nothing", 10, organization_status=OrganizationStatus.NONE),
        _with_requests("SandboxOnly", 10, production_endpoint=False),
    ]
    v = score(payers, as_of=AS_OF).vendor("V")
    assert v.payers == ("Broken", "Live", "Validated")
    assert set(v.skipped_payers) == {"Planned", "Nothing", "SandboxOnly"}
    assert v.score == BASE + 8


def test_only_vendor_metrics_count() -> None:
    # Status, lines of business, CARIN BB, clinical, opt-in, inactive access are payer-only.
    rich = payer(
        "Rich",
        vendor="V",
        portal_url=None,
        resources_available=(sample(frozenset({"ExplanationOfBenefit", "Coverage", "Patient"})),),
    )
    card = score([rich], as_of=AS_OF)
    assert card.payer("Rich").total == 10 + 6 + 2  # status + CARIN BB + eligibility unknown
    assert card.vendor("V").score == BASE
    assert set(card.vendor("V").metric_medians) == {m.id for m in default_rubric().vendor_metrics}


def test_vendor_without_live_production_payers_is_not_enough_data() -> None:
    payers = [_with_requests("Planned", 100, organization_status=OrganizationStatus.APPLIED)]
    card = score(payers, as_of=AS_OF)
    v = card.vendor("V")
    assert (v.score, v.outcome) == (None, NOT_ENOUGH_DATA)
    assert v.payers == ()
    assert v.skipped_payers == ("Planned",)
    assert card.vendors[-1].rank is None


def test_payers_without_vendor_are_not_a_vendor() -> None:
    card = score([payer("Solo")], as_of=AS_OF)
    assert card.vendors == ()


def test_rank_vendors() -> None:
    payers = [
        _with_requests("A1", 100, vendor="Alpha"),
        _with_requests("B1", 100, vendor="Beta"),
        _with_requests("C1", 10, vendor="Gamma"),
        _with_requests("D1", 100, vendor="Delta", organization_status=OrganizationStatus.NONE),
    ]
    scores = vendor_scores([score_payer(p, window=WINDOW) for p in payers], default_rubric())
    ranked = rank_vendors(scores)
    assert [(r.rank, r.score.vendor, r.score.score) for r in ranked] == [
        (1, "Alpha", 12.0),
        (1, "Beta", 12.0),
        (3, "Gamma", 2.0),
        (None, "Delta", None),
    ]


def test_sum_of_medians_aggregation_and_computed_denominator() -> None:
    data = json.loads(default_rubric().model_dump_json())  # explicit min/max edges round-trip
    data["vendor_aggregation"] = "sum_of_medians"
    data["vendor_denominator"] = "computed"
    rubric = parse_rubric(json.dumps(data))
    # request_success points 10, 10, 0 -> median 10; capability 0, 2, 2 -> median 2.
    payers = [
        _with_requests("P1", 100),
        _with_requests("P2", 100, capability_checks=(sample(True),)),
        _with_requests("P3", 10, capability_checks=(sample(True),)),
    ]
    v = score(payers, rubric, as_of=AS_OF).vendor("V")
    assert v.metric_medians["request_success"] == 10.0
    assert v.metric_medians["capability_statement"] == 2.0
    assert v.score == 10 + 2 + BASE  # sum of medians: 14
    # Vendor subtotals 12, 14, 4: the default median_of_totals gives 12.
    assert v.max_points == 63
    median_of_totals = score(payers, as_of=AS_OF).vendor("V")
    assert median_of_totals.score == 12.0


def test_vendor_score_json() -> None:
    v = VendorScore("V", None, "not_enough_data", 70, 63, ())
    assert v.to_json()["outcome"] == "not_enough_data"
