"""`probe prerelease URL` with no baseline and no test patient, through the CLI, against a live
fleet payer on loopback: the gate does not pass on what it did not test."""

from __future__ import annotations

import pytest

from probe.fleet.app import Fleet
from tests.contracts.conftest import live_fleet, run_cli, strict_loads

__all__ = ["live_fleet"]  # the module-scoped fixture, shared with the contract tests

pytestmark = pytest.mark.slow


def test_a_bare_prerelease_reports_points_possible_and_what_was_not_tested(
    live_fleet: Fleet,
) -> None:
    url = live_fleet.base_url("good")
    code, out, err = run_cli(["prerelease", url])
    assert code == 0, err  # no gate asked for: a report, which does not say it passed
    assert out.startswith("prerelease NOT GATED: ")
    assert "prerelease score: 9/100 (4 of 47 points possible, 4 tested, 43 not tested" in out
    assert "not tested: Test-patient sync: no --patient given" in out
    assert "not tested: Comparison with a baseline" in out
    assert "not tested: Refresh Token Behavior (10 points)" in out

    code, out, err = run_cli(["prerelease", url, "--fail-under", "50"])
    assert code == 1, err
    assert "gate: prerelease score 9 is below --fail-under 50 (4 of 47 points; 43 untested" in out

    code, out, err = run_cli(["prerelease", url, "--fail-under", "50", "--discovery-only"])
    assert code == 0, err
    assert "discovery score: 100/100 (4 of 4 points)" in out
    assert "--discovery-only: the gate covers the discovery criteria only" in out
    assert "not tested: Test-patient sync" in out  # still said

    code, out, err = run_cli(["prerelease", url, "--fail-on", "breaking"])
    assert code == 1, err
    assert "gate: --fail-on breaking: no baseline was compared" in out

    code, out, err = run_cli(
        ["prerelease", url, "--fail-under", "50", "--discovery-only", "--format", "json"]
    )
    assert code == 0, err
    doc = strict_loads(out)
    assert doc["gate"]["scope"] == "discovery" and doc["score"]["scope"] == "discovery"
    assert (doc["score"]["points_possible"], doc["score"]["prerelease_points_possible"]) == (4, 47)
    assert {n["item"] for n in doc["not_tested"]} >= {"baseline", "sync", "metric:everything"}
