"""Categorical and summed metrics, and every metric's explicit not-enough-data outcome."""

from __future__ import annotations

import pytest

from probe.directory.schema import EndpointFacts, LineOfBusiness, OrganizationStatus
from probe.score.engine import score_payer
from probe.score.inputs import AuthCounts, RateInput, RefreshInput
from probe.score.rubric import NOT_ENOUGH_DATA, default_rubric
from tests.score.builders import INSIDE, WINDOW, metric, payer, sample

LOB = LineOfBusiness


@pytest.mark.parametrize(
    ("status", "points", "outcome"),
    [
        (OrganizationStatus.LIVE, 10, "live"),
        (OrganizationStatus.USER_VALIDATED, 10, "live"),
        (OrganizationStatus.INFERRED_VALIDATED, 10, "live"),
        (OrganizationStatus.BROKEN, 10, "live"),
        (OrganizationStatus.UNAVAILABLE_BUT_PLANNED, 5, "implementing"),
        (OrganizationStatus.APPLIED, 5, "implementing"),
        (OrganizationStatus.READY_TO_CONFIGURE, 5, "implementing"),
        (OrganizationStatus.NONE, 0, "not_available"),
    ],
)
def test_status_from_organization_status(
    status: OrganizationStatus, points: int, outcome: str
) -> None:
    row = metric("status", payer(organization_status=status))
    assert (row.points, row.outcome) == (points, outcome)


def test_every_organization_status_is_mapped() -> None:
    for status in OrganizationStatus:
        assert metric("status", payer(organization_status=status)).outcome != NOT_ENOUGH_DATA


@pytest.mark.parametrize("metric_id", ["capability_statement", "smart_configuration"])
def test_discovery_documents(metric_id: str) -> None:
    field = "capability_checks" if metric_id == "capability_statement" else "smart_checks"
    ok = metric(metric_id, payer(**{field: (sample(False), sample(True, INSIDE, "check:7"))}))
    assert (ok.points, ok.outcome, ok.evidence) == (2, "available", ("check:7",))
    bad = metric(metric_id, payer(**{field: (sample(False), sample(False))}))
    assert (bad.points, bad.outcome) == (0, "not_available")
    assert "failed" in bad.comment
    none = metric(metric_id, payer())
    assert (none.points, none.outcome) == (0, NOT_ENOUGH_DATA)


def test_sandbox_observed_beats_declared() -> None:
    assert metric("sandbox", payer(sandbox_checks=(sample(True),))).points == 6
    failed = payer(sandbox_declared=True, sandbox_checks=(sample(False),))
    assert metric("sandbox", failed).outcome == "not_available"
    declared = metric("sandbox", payer(sandbox_declared=True))
    assert (declared.points, declared.outcome) == (6, "available")
    assert "not verified" in declared.comment
    assert metric("sandbox", payer(sandbox_declared=False)).points == 0
    unknown = metric("sandbox", payer())
    assert (unknown.points, unknown.outcome) == (0, NOT_ENOUGH_DATA)


def test_auth_success_not_enough_data_is_zero_points() -> None:
    row = metric("auth_success", payer())
    assert (row.points, row.outcome, row.outcome_label) == (0, NOT_ENOUGH_DATA, "Not enough data")
    bounced = metric("auth_success", payer(authorizations=(sample(AuthCounts(bounced=9)),)))
    assert bounced.outcome == NOT_ENOUGH_DATA
    assert "bounced" in bounced.comment


def test_refresh_token_outcomes() -> None:
    unknown_max = metric("refresh_token", payer(refresh=(sample(RefreshInput(issued=True)),)))
    assert (unknown_max.points, unknown_max.outcome) == (2, "available_max_unknown")
    none = metric("refresh_token", payer(refresh=(sample(RefreshInput(issued=False)),)))
    assert (none.points, none.outcome) == (0, "not_available")
    never = metric("refresh_token", payer())
    assert (never.points, never.outcome) == (0, NOT_ENOUGH_DATA)


def test_refresh_token_configured_max_days_wins_over_observed_lifetime() -> None:
    inputs = payer(
        facts=EndpointFacts(refresh_token_max_days=400),
        refresh=(sample(RefreshInput(issued=True, max_days=30)),),
    )
    row = metric("refresh_token", inputs)
    assert row.points == 10
    assert "configured:refresh_token_max_days" in row.evidence
    configured_only = metric(
        "refresh_token", payer(facts=EndpointFacts(refresh_token_max_days=100))
    )
    assert configured_only.points == 4
    longest = payer(
        refresh=(
            sample(RefreshInput(issued=True, max_days=30)),
            sample(RefreshInput(issued=True, max_days=200)),
        )
    )
    assert metric("refresh_token", longest).points == 6


def test_a_refresh_token_without_maximum_scores_top_and_stays_strict_json() -> None:
    import json

    row = metric("refresh_token", payer(facts=EndpointFacts(refresh_token_max_days=float("inf"))))
    assert row.points == 10
    assert "no maximum" in row.comment
    assert row.input_value["indefinite"] is True and row.input_value["max_days"] is None
    json.dumps(row.input_value, allow_nan=False)  # no Infinity anywhere
    observed = payer(refresh=(sample(RefreshInput(issued=True, max_days=float("inf"))),))
    assert metric("refresh_token", observed).points == 10


def test_inactive_member_access_choices() -> None:
    unknown_duration = metric("inactive_member_access", payer(inactive_access_available=True))
    assert (unknown_duration.points, unknown_duration.outcome) == (1, "unknown_duration")
    unavailable = metric("inactive_member_access", payer(inactive_access_available=False))
    assert (unavailable.points, unavailable.outcome) == (0, "not_available")
    unknown = metric("inactive_member_access", payer())
    assert (unknown.points, unknown.outcome) == (0, NOT_ENOUGH_DATA)
    forever = metric(
        "inactive_member_access",
        payer(facts=EndpointFacts(inactive_member_access_months=float("inf"))),
    )
    assert (forever.points, forever.outcome) == (8, "indefinite")


def test_portal_opt_in() -> None:
    assert (
        metric(
            "portal_opt_in", payer(facts=EndpointFacts(member_portal_opt_in_required=False))
        ).points
        == 6
    )
    assert (
        metric(
            "portal_opt_in", payer(facts=EndpointFacts(member_portal_opt_in_required=True))
        ).points
        == 0
    )
    unknown = metric("portal_opt_in", payer())
    assert (unknown.points, unknown.outcome) == (0, NOT_ENOUGH_DATA)


def test_eligibility_errors() -> None:
    flagged = payer(authorizations=(sample(AuthCounts(failed=3, query_ineligible_flags=2)),))
    assert (
        metric("eligibility_errors", flagged).points,
        metric("eligibility_errors", flagged).outcome,
    ) == (4, "yes")
    configured_yes = payer(facts=EndpointFacts(eligibility_errors_on_callback=True))
    assert metric("eligibility_errors", configured_yes).points == 4
    configured_no = payer(facts=EndpointFacts(eligibility_errors_on_callback=False))
    assert metric("eligibility_errors", configured_no).points == 0
    # No recorded error state: the report's "Unknown: 2 points".
    unknown = metric(
        "eligibility_errors", payer(authorizations=(sample(AuthCounts(authorized=5)),))
    )
    assert (unknown.points, unknown.outcome, unknown.outcome_label) == (
        2,
        NOT_ENOUGH_DATA,
        "Unknown",
    )


@pytest.mark.parametrize(
    ("offered", "supported", "points", "outcome"),
    [
        ({LOB.COMMERCIAL, LOB.MEDICAID}, {LOB.COMMERCIAL, LOB.MEDICAID}, 3, "all_supported"),
        ({LOB.COMMERCIAL}, {LOB.COMMERCIAL}, 3, "all_supported"),
        (
            {LOB.COMMERCIAL, LOB.MEDICARE_ADVANTAGE},
            {LOB.MEDICARE_ADVANTAGE},
            2,
            "only_cms_supported",
        ),
        ({LOB.MEDICAID, LOB.CHIP}, {LOB.MEDICAID, LOB.CHIP}, 2, "all_cms_supported"),
        ({LOB.MEDICAID, LOB.CHIP}, {LOB.MEDICAID}, 0, "cms_partially_supported"),
        ({LOB.COMMERCIAL, LOB.MEDICAID}, set(), 0, "none_supported"),
        ({LOB.MEDICAID}, {LOB.COMMERCIAL}, 0, "none_supported"),
        (set(), {LOB.MEDICAID}, 0, NOT_ENOUGH_DATA),
        (set(), set(), 0, NOT_ENOUGH_DATA),
    ],
)
def test_lines_of_business(
    offered: set[LineOfBusiness], supported: set[LineOfBusiness], points: int, outcome: str
) -> None:
    inputs = payer(lines_offered=frozenset(offered), lines_supported=frozenset(supported))
    row = metric("lines_of_business", inputs)
    assert (row.points, row.outcome) == (points, outcome)


def test_request_and_reference_not_enough_data() -> None:
    none = metric("request_success", payer())
    assert (none.points, none.outcome) == (0, NOT_ENOUGH_DATA)
    zero = metric("reference_resolution", payer(references=(sample(RateInput(0, 0)),)))
    assert (zero.points, zero.outcome, zero.outcome_label) == (0, NOT_ENOUGH_DATA, "No references")


def test_rates_are_summed_across_samples_with_evidence() -> None:
    inputs = payer(
        requests=(
            sample(RateInput(50, 50, ("request:1",)), INSIDE, "run:1"),
            sample(RateInput(48, 50, ("request:2",)), INSIDE, "run:2"),
        )
    )
    row = metric("request_success", inputs)
    assert row.input_value == {"successes": 98, "attempts": 100, "percent": 98.0}
    assert row.points == 8
    assert set(row.evidence) == {"run:1", "run:2", "request:1", "request:2"}


@pytest.mark.parametrize(
    ("types", "points"),
    [
        ({"ExplanationOfBenefit", "Coverage", "Patient"}, 6),
        ({"ExplanationOfBenefit"}, 3),
        ({"Coverage"}, 2),
        ({"Patient"}, 1),
        ({"ExplanationOfBenefit", "Patient"}, 4),
        ({"Coverage", "Patient", "Condition"}, 3),
        (set(), 0),
    ],
)
def test_carin_bb_sum(types: set[str], points: int) -> None:
    row = metric("carin_bb", payer(resources_available=(sample(frozenset(types)),)))
    assert row.points == points
    assert row.outcome != NOT_ENOUGH_DATA


def test_carin_bb_none_and_not_enough_data() -> None:
    none = metric("carin_bb", payer(resources_available=(sample(frozenset()),)))
    assert (none.points, none.outcome) == (0, "None")
    missing = metric("carin_bb", payer())
    assert (missing.points, missing.outcome) == (0, NOT_ENOUGH_DATA)


@pytest.mark.parametrize(
    ("types", "points"),
    [
        (set(), 0),
        ({"Condition"}, 1),
        ({"Condition", "Observation"}, 2),
        ({"Condition", "Observation", "Procedure"}, 3),
        ({"Condition", "Observation", "Procedure", "Immunization"}, 4),
        ({"Condition", "Observation", "Procedure", "Immunization", "Encounter", "Goal"}, 4),
        ({"ExplanationOfBenefit", "Coverage", "Patient", "Condition"}, 1),
    ],
)
def test_clinical_one_point_each_up_to_four(types: set[str], points: int) -> None:
    row = metric("clinical", payer(resources_available=(sample(frozenset(types)),)))
    assert row.points == points


def test_resource_types_are_unioned_across_samples() -> None:
    inputs = payer(
        resources_available=(
            sample(frozenset({"ExplanationOfBenefit"})),
            sample(frozenset({"Coverage", "Patient"})),
        )
    )
    assert metric("carin_bb", inputs).points == 6


@pytest.mark.parametrize(
    ("levels", "points", "outcome"),
    [
        (("paged",), 3, "paged"),
        (("limited",), 1, "limited"),
        (("unsupported",), 0, "unsupported"),
        (("unsupported", "limited", "paged"), 3, "paged"),
        ((), 0, NOT_ENOUGH_DATA),
    ],
)
def test_everything(levels: tuple[str, ...], points: int, outcome: str) -> None:
    row = metric("everything", payer(everything=tuple(sample(level) for level in levels)))
    assert (row.points, row.outcome) == (points, outcome)


def test_developer_portal() -> None:
    available = metric("developer_portal", payer(portal_url="https://developer.example.com"))
    assert (available.points, available.outcome) == (2, "available")
    down = metric(
        "developer_portal",
        payer(portal_url="https://developer.example.com", portal_checks=(sample(False),)),
    )
    assert down.points == 2 and "did not answer" in down.comment
    email = metric("developer_portal", payer(portal_contact="email"))
    assert (email.points, email.outcome) == (1, "email")
    unknown = metric("developer_portal", payer())
    assert (unknown.points, unknown.outcome, unknown.outcome_label) == (
        0,
        NOT_ENOUGH_DATA,
        "Unknown",
    )


def test_every_metric_has_a_not_enough_data_outcome_for_an_empty_payer() -> None:
    rubric = default_rubric()
    score_rows = {
        m.id: metric(m.id, payer(organization_status=OrganizationStatus.NONE))
        for m in rubric.metrics
    }
    for metric_id, row in score_rows.items():
        if metric_id == "status":
            continue
        assert row.outcome == NOT_ENOUGH_DATA, metric_id
        assert row.points == rubric.metric(metric_id).not_enough_data.points
        assert row.comment, metric_id


def test_a_perfect_payer_scores_100() -> None:
    perfect = payer(
        lines_offered=frozenset({LOB.COMMERCIAL, LOB.MEDICAID}),
        lines_supported=frozenset({LOB.COMMERCIAL, LOB.MEDICAID}),
        facts=EndpointFacts(
            inactive_member_access_months=float("inf"),
            member_portal_opt_in_required=False,
            refresh_token_max_days=365,
        ),
        portal_url="https://developer.example.com",
        sandbox_checks=(sample(True),),
        capability_checks=(sample(True),),
        smart_checks=(sample(True),),
        authorizations=(sample(AuthCounts(authorized=100, query_ineligible_flags=1)),),
        refresh=(sample(RefreshInput(issued=True)),),
        requests=(sample(RateInput(100, 100)),),
        references=(sample(RateInput(10, 10)),),
        resources_available=(
            sample(
                frozenset(
                    {
                        "ExplanationOfBenefit",
                        "Coverage",
                        "Patient",
                        "Condition",
                        "Observation",
                        "Procedure",
                        "Immunization",
                    }
                )
            ),
        ),
        sync_durations_s=(sample(0.5),),
        everything=(sample("paged"),),
    )
    result = score_payer(perfect, window=WINDOW)
    assert [m.metric_id for m in result.metrics if m.lost] == []
    assert result.total == 100
    assert result.vendor_points == 63
    assert [(c.id, c.points) for c in result.categories] == [
        ("ecosystem", 20),
        ("patient", 45),
        ("developer", 35),
    ]
    assert result.points_lost == []
