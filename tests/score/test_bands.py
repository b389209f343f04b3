"""Every numeric metric's bands, pinned at and around each edge."""

from __future__ import annotations

import pytest

from probe.directory.schema import EndpointFacts
from probe.score.inputs import AuthCounts, RefreshInput
from tests.score.builders import metric, payer, rate_for, sample


def _auth(percent: str) -> AuthCounts:
    rate = rate_for(percent)
    return AuthCounts(authorized=rate.successes, failed=rate.attempts - rate.successes)


@pytest.mark.parametrize(
    ("percent", "points", "label"),
    [
        ("100", 14, "95-100%"),
        ("95.01", 14, "95-100%"),
        ("95", 14, "95-100%"),
        ("94.99", 12, "90-95%"),
        ("90.01", 12, "90-95%"),
        ("90", 12, "90-95%"),
        ("89.99", 10, "80-90%"),
        ("80", 10, "80-90%"),
        ("79.99", 8, "70-80%"),
        ("70", 8, "70-80%"),
        ("69.99", 4, "50-70%"),
        ("50", 4, "50-70%"),
        ("49.99", 0, "Less than 50%"),
        ("0", 0, "Less than 50%"),
    ],
)
def test_auth_success_bands(percent: str, points: int, label: str) -> None:
    row = metric("auth_success", payer(authorizations=(sample(_auth(percent)),)))
    assert (row.points, row.outcome) == (points, label)
    assert row.input_value["percent"] == pytest.approx(float(percent))


def test_auth_success_excludes_bounced_and_counts_exchanged_and_revoked() -> None:
    counts = AuthCounts(authorized=10, exchanged=5, revoked=4, failed=1, bounced=500)
    row = metric("auth_success", payer(authorizations=(sample(counts),)))
    assert row.input_value["percent"] == 95.0
    assert row.points == 14


def test_auth_success_sums_samples_before_banding() -> None:
    # 19/20 and 0/0 in two samples -> 95% exactly, not the mean of per-sample rates.
    samples = (sample(AuthCounts(authorized=19, failed=1)), sample(AuthCounts(bounced=3)))
    assert metric("auth_success", payer(authorizations=samples)).points == 14


@pytest.mark.parametrize(
    ("percent", "points"),
    [
        ("100", 10),
        ("99.01", 10),
        ("99", 10),
        ("98.99", 8),
        ("95", 8),
        ("94.99", 6),
        ("90", 6),
        ("89.99", 5),
        ("80", 5),
        ("79.99", 3),
        ("70", 3),
        ("69.99", 1),
        ("50", 1),
        ("49.99", 0),
        ("0", 0),
    ],
)
def test_request_success_bands(percent: str, points: int) -> None:
    row = metric("request_success", payer(requests=(sample(rate_for(percent)),)))
    assert row.points == points


def test_request_success_99_of_100_is_ten_points() -> None:
    row = metric("request_success", payer(requests=(sample(rate_for("99")),)))
    assert (row.points, row.outcome) == (10, "99%")
    assert row.input_value == {"successes": 99, "attempts": 100, "percent": 99.0}


@pytest.mark.parametrize(
    ("percent", "points"),
    [
        ("100", 5),
        ("95", 5),
        ("94.99", 4),
        ("80", 4),
        ("79.99", 3),
        ("60", 3),
        ("59.99", 2),
        ("40", 2),
        ("39.99", 1),
        ("20", 1),
        ("19.99", 0),
        ("0", 0),
    ],
)
def test_reference_resolution_bands(percent: str, points: int) -> None:
    row = metric("reference_resolution", payer(references=(sample(rate_for(percent)),)))
    assert row.points == points


@pytest.mark.parametrize(
    ("seconds", "points"),
    [
        (0.0, 5),
        (0.5, 5),
        (0.999, 5),
        (1.0, 4),
        (4.99, 4),
        (5.0, 3),
        (9.99, 3),
        (10.0, 2),
        (29.99, 2),
        (30.0, 1),
        (59.99, 1),
        (60.0, 1),
        (60.01, 0),
        (3600.0, 0),
    ],
)
def test_sync_speed_bands_on_a_single_sync(seconds: float, points: int) -> None:
    row = metric("sync_speed", payer(sync_durations_s=(sample(seconds),)))
    assert row.points == points


def test_sync_speed_uses_the_median_not_the_mean() -> None:
    durations = (0.2, 0.4, 0.9, 120.0, 300.0)  # median 0.9 s, mean 84 s
    row = metric("sync_speed", payer(sync_durations_s=tuple(sample(d) for d in durations)))
    assert row.points == 5
    assert row.input_value["median_s"] == 0.9
    assert row.input_value["syncs"] == 5


def test_sync_speed_even_count_median_is_mean_of_middle_two() -> None:
    # middle two 0.9 and 1.1 -> median exactly 1.0 -> "< 5 seconds" (1.0 is not < 1).
    durations = (0.1, 0.9, 1.1, 50.0)
    row = metric("sync_speed", payer(sync_durations_s=tuple(sample(d) for d in durations)))
    assert row.input_value["median_s"] == 1.0
    assert row.points == 4


@pytest.mark.parametrize(
    ("days", "points", "outcome"),
    [
        (3650.0, 10, "Available for 1+ years"),
        (365.0, 10, "Available for 1+ years"),
        (364.99, 6, "Available for 6 months to 1 year"),
        (180.0, 6, "Available for 6 months to 1 year"),
        (179.99, 4, "Available for 3 months to 6 months"),
        (90.0, 4, "Available for 3 months to 6 months"),
        (89.99, 2, "Available for < 3 months"),
        (1.0, 2, "Available for < 3 months"),
        (0.0, 2, "Available for < 3 months"),
    ],
)
def test_refresh_token_bands(days: float, points: int, outcome: str) -> None:
    inputs = payer(refresh=(sample(RefreshInput(issued=True, max_days=days)),))
    row = metric("refresh_token", inputs)
    assert (row.points, row.outcome) == (points, outcome)


@pytest.mark.parametrize(
    ("months", "points"),
    [
        (float("inf"), 8),
        (600.0, 6),
        (60.0, 6),
        (59.99, 4),
        (24.0, 4),
        (23.99, 2),
        (12.0, 2),
        (11.99, 1),
        (0.5, 1),
        (0.0, 0),
    ],
)
def test_inactive_member_access_bands(months: float, points: int) -> None:
    facts = EndpointFacts(inactive_member_access_months=months)
    assert metric("inactive_member_access", payer(facts=facts)).points == points
