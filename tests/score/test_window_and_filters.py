"""The scoring window, the lives filter, ranking and the scorecard JSON."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from probe.directory.schema import OrganizationStatus
from probe.score.engine import filter_by_lives, rank_payers, score, score_payer
from probe.score.inputs import AuthCounts, RateInput, Window, subtract_months
from probe.score.rubric import NOT_ENOUGH_DATA
from tests.score.builders import AS_OF, INSIDE, OUTSIDE, WINDOW, metric, payer, sample


@pytest.mark.parametrize(
    ("moment", "months", "expected"),
    [
        (datetime(2025, 5, 1, 12, tzinfo=UTC), 6, datetime(2024, 11, 1, 12, tzinfo=UTC)),
        (datetime(2025, 8, 31, tzinfo=UTC), 6, datetime(2025, 2, 28, tzinfo=UTC)),
        (datetime(2024, 8, 31, tzinfo=UTC), 6, datetime(2024, 2, 29, tzinfo=UTC)),
        (datetime(2025, 3, 15, tzinfo=UTC), 3, datetime(2024, 12, 15, tzinfo=UTC)),
        (datetime(2025, 1, 31, tzinfo=UTC), 1, datetime(2024, 12, 31, tzinfo=UTC)),
        (datetime(2025, 1, 31, tzinfo=UTC), 0, datetime(2025, 1, 31, tzinfo=UTC)),
        (datetime(2025, 6, 30, tzinfo=UTC), 24, datetime(2023, 6, 30, tzinfo=UTC)),
    ],
)
def test_calendar_month_arithmetic(moment: datetime, months: int, expected: datetime) -> None:
    assert subtract_months(moment, months) == expected


def test_window_is_closed_on_both_ends() -> None:
    assert WINDOW.start == datetime(2024, 11, 1, 12, tzinfo=UTC)
    assert WINDOW.end == AS_OF
    assert WINDOW.contains(WINDOW.start)
    assert WINDOW.contains(WINDOW.end)
    assert not WINDOW.contains(WINDOW.start - timedelta(microseconds=1))
    assert not WINDOW.contains(WINDOW.end + timedelta(microseconds=1))
    assert WINDOW.contains(datetime(2025, 1, 1))  # naive is UTC
    with pytest.raises(ValueError, match="after it ends"):
        Window(AS_OF, WINDOW.start)


def test_observations_outside_the_window_are_ignored() -> None:
    future = AS_OF + timedelta(seconds=1)
    inputs = payer(
        requests=(
            sample(RateInput(10, 10), INSIDE),
            sample(RateInput(0, 90), OUTSIDE),
            sample(RateInput(0, 90), future),
        ),
        sync_durations_s=(sample(0.5, INSIDE), sample(500.0, OUTSIDE), sample(500.0, OUTSIDE)),
        authorizations=(sample(AuthCounts(failed=100), OUTSIDE),),
        capability_checks=(sample(True, OUTSIDE),),
    )
    assert metric("request_success", inputs).input_value["attempts"] == 10
    assert metric("request_success", inputs).points == 10
    assert metric("sync_speed", inputs).points == 5
    assert metric("auth_success", inputs).outcome == NOT_ENOUGH_DATA
    assert metric("capability_statement", inputs).outcome == NOT_ENOUGH_DATA


def test_window_edges_are_inside() -> None:
    inputs = payer(
        requests=(sample(RateInput(1, 1), WINDOW.start), sample(RateInput(1, 1), WINDOW.end))
    )
    assert metric("request_success", inputs).input_value["attempts"] == 2


def test_score_uses_the_rubric_window_or_an_override() -> None:
    old = AS_OF - timedelta(days=120)  # inside 6 months, outside 3
    inputs = payer(capability_checks=(sample(True, old),))
    card = score([inputs], as_of=AS_OF)
    assert card.window == Window(datetime(2024, 11, 1, 12, tzinfo=UTC), AS_OF)
    assert card.payer("Acme Health").metric("capability_statement").points == 2
    short = score([inputs], as_of=AS_OF, window_months=3)
    assert short.payer("Acme Health").metric("capability_statement").outcome == NOT_ENOUGH_DATA


def test_configured_inputs_ignore_the_window() -> None:
    inputs = payer(portal_url="https://dev.example.com")
    far = Window(datetime(2000, 1, 1, tzinfo=UTC), datetime(2000, 2, 1, tzinfo=UTC))
    assert metric("developer_portal", inputs, window=far).points == 2
    assert metric("status", inputs, window=far).points == 10


def test_lives_filter() -> None:
    small = payer("Small", lives=499)
    edge = payer("Edge", lives=500)
    unknown = payer("Unknown", lives=None)
    kept, excluded = filter_by_lives([small, edge, unknown], 500)
    assert [p.name for p in kept] == ["Edge", "Unknown"]
    assert [(e.payer, e.lives) for e in excluded] == [("Small", 499)]
    assert "fewer than 500" in excluded[0].reason

    card = score([small, edge, unknown], as_of=AS_OF)
    assert {r.score.payer for r in card.payers} == {"Edge", "Unknown"}
    assert [e.payer for e in card.excluded] == ["Small"]
    assert card.payer("Unknown").flags == ("lives_unknown",)
    assert card.payer("Edge").flags == ()
    assert any("lives_unknown" in n for n in card.notes)


def test_small_payers_do_not_count_for_their_vendor() -> None:
    small = payer("Small", lives=10, vendor="V", capability_checks=(sample(True),))
    big = payer("Big", lives=10_000, vendor="V")
    card = score([small, big], as_of=AS_OF)
    assert card.vendor("V").payers == ("Big",)
    assert card.vendor("V").score == 2.0  # eligibility Unknown only


def test_rank_payers_shares_ranks_on_ties() -> None:
    # status (10/5/0) + capability (2) + eligibility unknown (2) give distinct totals
    payers = [
        payer("B", organization_status=OrganizationStatus.LIVE),
        payer("A", organization_status=OrganizationStatus.LIVE),
        payer("C", organization_status=OrganizationStatus.APPLIED),
        payer("D", organization_status=OrganizationStatus.LIVE, capability_checks=(sample(True),)),
        payer("E", organization_status=OrganizationStatus.NONE),
    ]
    ranked = rank_payers(score_payer(p, window=WINDOW) for p in payers)
    assert [(r.rank, r.score.payer, r.score.total) for r in ranked] == [
        (1, "D", 14),
        (2, "A", 12),
        (2, "B", 12),
        (4, "C", 7),
        (5, "E", 2),
    ]


def test_duplicate_payer_names_are_refused() -> None:
    with pytest.raises(ValueError, match="given twice: Acme Health"):
        score([payer(), payer()], as_of=AS_OF)


def test_scorecard_json_is_serialisable_and_explains_lost_points() -> None:
    inputs = payer(
        vendor="V",
        requests=(sample(RateInput(97, 100, ("request:42",)), INSIDE, "run:1"),),
    )
    card = score([inputs], as_of=AS_OF)
    data = json.loads(json.dumps(card.to_json()))
    assert data["rubric"] == "state-of-the-payer@2025-05"
    row = next(m for m in data["payers"][0]["metrics"] if m["metric"] == "request_success")
    assert row == {
        "metric": "request_success",
        "title": "FHIR API Resource Request Success Rate",
        "category": "developer",
        "points": 8,
        "max_points": 10,
        "outcome": "95-99%",
        "outcome_label": "95-99% [95, 99)",
        "input": {"successes": 97, "attempts": 100, "percent": 97.0},
        "expected": "99% [99, 100]",
        "comment": "97 of 100 got a 200 (97.00%)",
        "reference": "FHIR API Resource Request Success Rate",
        "audience": ["payer", "vendor"],
        "sources": ["observed"],
        "evidence": ["run:1", "request:42"],
        "evidence_total": 2,
    }
    lost = card.payer("Acme Health").points_lost
    assert lost[0].metric_id == "auth_success"  # 14 points, the biggest loss
    assert data["vendors"][0]["vendor"] == "V"
