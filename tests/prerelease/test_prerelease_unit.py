"""Prerelease in-process against the fleet: score mapping, gate, JUnit/Markdown/HTML, saved runs."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from probe.drift.classify import ChangeKind
from probe.fleet.app import Fleet
from probe.prerelease.baseline import PrereleaseError, stored_baseline
from probe.prerelease.gate import FailOn
from probe.prerelease.report import render_html, render_junit, render_markdown, score_line
from probe.prerelease.run import save_candidate
from probe.prerelease.scoring import prerelease_metric_ids
from probe.score.rubric import default_rubric
from probe.store.handle import Store
from tests.prerelease.conftest import make_fleet, prerelease


@pytest.fixture(scope="module")
def fleet() -> Fleet:
    return make_fleet()


def parse(xml: str) -> ET.Element:
    """Our own JUnit output (trusted)."""
    return ET.fromstring(xml)  # noqa: S314


def suites(xml: str) -> dict[str, ET.Element]:
    root = parse(xml)
    assert root.tag == "testsuites"
    return {s.get("name", ""): s for s in root.findall("testsuite")}


def failures(xml: str) -> dict[str, str]:
    root = parse(xml)
    return {
        case.get("name", ""): failure.get("type", "")
        for case in root.iter("testcase")
        if (failure := case.find("failure")) is not None
    }


def test_the_prerelease_scorecard_is_the_observed_rubric_metrics_normalised(fleet: Fleet) -> None:
    assert prerelease_metric_ids(default_rubric()) == [
        "capability_statement",
        "smart_configuration",
        "refresh_token",
        "request_success",
        "reference_resolution",
        "carin_bb",
        "clinical",
        "sync_speed",
        "everything",
    ]
    result = prerelease(fleet, "staging")
    score = result.score
    scored = {m.metric_id: (m.points, m.max_points) for m in score.scored}
    assert scored["capability_statement"] == (2, 2)
    assert scored["everything"] == (3, 3)
    assert scored["carin_bb"] == (6, 6)
    assert scored["refresh_token"] == (2, 10)  # a refresh token, lifetime unknown
    assert [m.metric_id for m in score.no_data] == ["reference_resolution"]
    assert score.scope == "prerelease"
    assert score.earned == sum(p for p, _ in scored.values())
    assert score.tested == sum(m for _, m in scored.values())
    # Every metric one run can observe is possible: 47 points; reference_resolution had no data
    # (the fleet's resources hold no references), so its 5 points count 0.
    assert score.possible == 47 and score.untested == 5 == score.possible - score.tested
    assert score.score == round(100 * score.earned / score.possible)
    assert [n.item for n in result.not_tested] == ["metric:reference_resolution"]
    # The raw rubric total adds the configured metrics' not-enough-data points (e.g. 2 for
    # eligibility errors): reported beside the score, never used by --fail-under.
    assert score.rubric_max == 100 and score.rubric_total >= score.earned


def test_static_bearer_leaves_refresh_token_untested(fleet: Fleet) -> None:
    bearer = prerelease(fleet, "staging-bearer")
    assert "refresh_token" in [m.metric_id for m in bearer.score.no_data]
    assert "metric:refresh_token" in [n.item for n in bearer.not_tested]


def test_without_baseline_or_patient_the_gate_does_not_pass_on_what_it_did_not_test(
    fleet: Fleet,
) -> None:
    bare = prerelease(fleet, "staging", baseline_slug=None, sync=False, fail_under=60)
    score = bare.score
    assert [m.metric_id for m in score.scored] == ["capability_statement", "smart_configuration"]
    # 4 of 4 discovery points, but 47 possible: the 43 untested points count 0.
    assert (score.earned, score.tested, score.possible) == (4, 4, 47)
    assert score.score == round(100 * 4 / 47) and score.untested == 43
    assert not bare.gate.passed and bare.gate.scope == "prerelease"
    assert (
        "prerelease score 9 is below --fail-under 60 (4 of 47 points; 43 untested"
        in (bare.gate.reasons[0])
    )
    items = [n.item for n in bare.not_tested]
    assert items[-2:] == ["baseline", "sync"]
    assert {i for i in items if i.startswith("metric:")} == {
        "metric:refresh_token",
        "metric:request_success",
        "metric:reference_resolution",
        "metric:carin_bb",
        "metric:clinical",
        "metric:sync_speed",
        "metric:everything",
    }
    assert sum(n.points for n in bare.not_tested) == 43
    line = score_line(bare)
    assert "9/100 (4 of 47 points possible, 4 tested, 43 not tested count 0" in line
    markdown = render_markdown(bare)
    assert "not tested: Test-patient sync: no --patient given" in markdown
    assert "0/10 (not tested)" in markdown
    junit = suites(render_junit(bare))
    skipped = {
        c.get("name")
        for c in junit["prerelease.score"].iter("testcase")
        if c.find("skipped") is not None
    }
    assert skipped == set(items)
    assert "not tested: Comparison with a baseline" in render_html(bare)

    # --discovery-only: the gate is over the discovery criteria, and the output says so.
    discovery = prerelease(
        fleet, "staging", baseline_slug=None, sync=False, fail_under=60, discovery_only=True
    )
    assert discovery.gate.passed and discovery.gate.scope == "discovery"
    assert (discovery.score.score, discovery.score.possible) == (100, 4)
    assert discovery.score.prerelease_possible == 47
    assert score_line(discovery).startswith("discovery score: 100/100 (4 of 4 points)")
    assert "--discovery-only" in score_line(discovery)
    assert [n.item for n in discovery.not_tested] == items  # still listed


def test_fail_on_breaking_without_a_baseline_fails_the_gate(fleet: Fleet) -> None:
    result = prerelease(fleet, "staging", baseline_slug=None, fail_on=(FailOn.BREAKING,))
    assert not result.gate.passed
    assert result.gate.reasons == (
        "--fail-on breaking: no baseline was compared (give --baseline URL or --baseline-run "
        "RUN_ID)",
    )


def test_faithful_staging_passes_with_only_cosmetic_changes(fleet: Fleet) -> None:
    result = prerelease(fleet, "staging", fail_on=(FailOn.BREAKING, FailOn.REQUIRED), fail_under=60)
    assert result.gate.passed, result.gate.reasons
    assert {c.kind for c in result.changes} == {ChangeKind.COSMETIC}
    xml = render_junit(result)
    assert failures(xml) == {}
    junit = suites(xml)
    names = [c.get("name", "") for c in junit["prerelease.checks"].iter("testcase")]
    assert len(names) == len(result.candidate.report.results)
    assert any(n.startswith("smart.jwks: ") for n in names)
    changes = [c.get("name") for c in junit["prerelease.changes"].iter("testcase")]
    assert changes[0] == "baseline comparison"
    assert set(changes[1:]) == {c.id for c in result.changes}


def test_breaking_candidate_fails_the_gate_and_junit(fleet: Fleet) -> None:
    report_only = prerelease(fleet, "staging-bad")
    assert report_only.gate.passed  # no --fail-on: a report, not a gate
    gated = prerelease(fleet, "staging-bad", fail_on=(FailOn.BREAKING,))
    assert not gated.gate.passed
    assert "capability.operation.removed:Patient.everything" in gated.gate.reasons[0]
    assert failures(render_junit(gated)) == {
        "capability.operation.removed:Patient.everything": "breaking"
    }
    notable = prerelease(fleet, "staging", fail_on=(FailOn.NOTABLE,))
    assert notable.gate.passed  # cosmetic changes only


def test_failed_required_check_is_a_junit_failure_and_gates_with_fail_on_required(
    fleet: Fleet,
) -> None:
    result = prerelease(fleet, "staging-locked", fail_on=(FailOn.REQUIRED,))
    assert not result.gate.passed
    assert any("required check(s) failed" in r for r in result.gate.reasons)
    found = failures(render_junit(result))
    assert found["metadata.reachable: CapabilityStatement endpoint answers"] == "required"


def test_score_below_fail_under_fails_gate_and_score_testcase(fleet: Fleet) -> None:
    result = prerelease(fleet, "staging", fail_under=99)
    assert result.score.score is not None and result.score.score < 99
    assert not result.gate.passed
    assert failures(render_junit(result)) == {"prerelease score": "score"}


def test_reports_escape_what_servers_send(fleet: Fleet) -> None:
    result = prerelease(fleet, "staging-html")
    page = render_html(result)
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    markdown = render_markdown(result)
    assert "# probe prerelease: NOT GATED" in markdown  # no --fail-on, no --fail-under
    assert "\\| Plan" in markdown  # a pipe in a value cannot break the table
    parse(render_junit(result))  # well-formed whatever the values


def test_a_saved_candidate_is_a_baseline_for_the_next_release(store: Store, fleet: Fleet) -> None:
    first = prerelease(fleet, "staging-bad", baseline_slug=None)
    run_id = save_candidate(store, first.candidate)
    baseline = stored_baseline(store, run_id)
    assert baseline.has_syncs and baseline.run_id == run_id
    again = prerelease(fleet, "staging-bad", baseline=baseline, fail_on=(FailOn.BREAKING,))
    assert again.changes == [] and again.gate.passed
    # Against the stored staging-bad run, a faithful staging shows $everything coming back.
    better = prerelease(fleet, "staging", baseline=baseline)
    ids = {c.id: c.kind for c in better.changes}
    assert ids["behaviour.everything.up"] is ChangeKind.NOTABLE
    assert ids["capability.operation.added:Patient.everything"] is ChangeKind.NOTABLE
    with pytest.raises(PrereleaseError, match="no such run"):
        stored_baseline(store, run_id + 100)
    with pytest.raises(PrereleaseError, match="did not observe it"):
        stored_baseline(store, run_id, "https://elsewhere.example/fhir")
