"""Loading and validating rubric files: the packaged one, broken ones, a user-supplied one."""

from __future__ import annotations

import copy
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
import yaml

from probe.score.engine import score
from probe.score.rubric import (
    DEFAULT_RUBRIC,
    KNOWN_METRICS,
    Bands,
    RubricError,
    band_coverage_problems,
    default_rubric,
    load_rubric,
    packaged_rubrics,
    parse_rubric,
)
from tests.score.builders import AS_OF, payer

PAYER_POINTS = {
    "status": 10,
    "sandbox": 6,
    "capability_statement": 2,
    "smart_configuration": 2,
    "auth_success": 14,
    "refresh_token": 10,
    "inactive_member_access": 8,
    "portal_opt_in": 6,
    "eligibility_errors": 4,
    "lines_of_business": 3,
    "request_success": 10,
    "reference_resolution": 5,
    "carin_bb": 6,
    "clinical": 4,
    "sync_speed": 5,
    "everything": 3,
    "developer_portal": 2,
}
VENDOR_METRICS = {
    "sandbox",
    "capability_statement",
    "smart_configuration",
    "auth_success",
    "refresh_token",
    "eligibility_errors",
    "request_success",
    "reference_resolution",
    "sync_speed",
    "everything",
    "developer_portal",
}


def _text() -> str:
    return resources.files("probe.rubrics").joinpath(DEFAULT_RUBRIC).read_text(encoding="utf-8")


def _data() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(_text())
    return copy.deepcopy(data)


def _metric(data: dict[str, Any], metric_id: str) -> dict[str, Any]:
    return next(m for m in data["metrics"] if m["id"] == metric_id)


def _problems(data: dict[str, Any]) -> list[str]:
    with pytest.raises(RubricError) as info:
        parse_rubric(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), "test.yaml")
    return info.value.problems


def test_packaged_rubric_is_package_data() -> None:
    assert DEFAULT_RUBRIC in packaged_rubrics()
    rubric = default_rubric()
    assert rubric.label == "state-of-the-payer@2025-05"
    assert load_rubric() is rubric
    assert load_rubric(DEFAULT_RUBRIC) is rubric


def test_packaged_rubric_matches_the_report() -> None:
    rubric = default_rubric()
    assert {m.id: m.points for m in rubric.metrics} == PAYER_POINTS
    assert set(rubric.metrics[i].id for i in range(len(rubric.metrics))) == set(KNOWN_METRICS)
    assert all(m.for_payers for m in rubric.metrics)
    assert {m.id for m in rubric.vendor_metrics} == VENDOR_METRICS
    assert rubric.payer_total == 100
    assert {c.id: c.points for c in rubric.categories} == {
        "ecosystem": 20,
        "patient": 45,
        "developer": 35,
    }
    assert (rubric.window_months, rubric.min_lives) == (6, 500)


def test_vendor_total_discrepancy_63_vs_70() -> None:
    rubric = default_rubric()
    assert rubric.vendor_total_stated == 70
    assert rubric.vendor_total_computed == 63
    assert rubric.vendor_denominator == "stated"
    assert rubric.vendor_total == 70
    note = rubric.vendor_total_discrepancy
    assert note is not None and "70" in note and "63" in note
    card = score([payer()], as_of=AS_OF)
    assert (card.vendor_total_stated, card.vendor_total_computed) == (70, 63)
    assert card.vendor_denominator == 70
    assert card.vendor_total_discrepancy == note
    assert note in card.notes
    assert card.to_json()["vendor_total_discrepancy"] == note


def test_every_metric_declares_sources_and_not_enough_data() -> None:
    for m in default_rubric().metrics:
        assert m.sources
        assert m.not_enough_data.label
    rubric = default_rubric()
    assert rubric.metric("eligibility_errors").not_enough_data.points == 2
    assert rubric.metric("auth_success").not_enough_data.points == 0
    assert rubric.metric("reference_resolution").not_enough_data.label == "No references"


def test_wrong_payer_total_is_an_error() -> None:
    data = _data()
    data["payer_total"] = 99
    problems = _problems(data)
    assert any("payer_total" in p and "add up to 100, not payer_total 99" in p for p in problems)


def test_changed_metric_points_break_category_and_total() -> None:
    data = _data()
    _metric(data, "status")["points"] = 12
    _metric(data, "status")["choices"][0]["points"] = 12
    problems = _problems(data)
    assert any(
        "category 'ecosystem' is worth 20 points but its payer metrics add up to 22" in p
        for p in problems
    )
    assert any("add up to 102" in p for p in problems)


def test_gap_between_bands_names_metric_and_gap() -> None:
    data = _data()
    bands = _metric(data, "auth_success")["bands"]["bands"]
    bands[1]["interval"] = "(90, 95)"  # 90 itself is now uncovered
    problems = _problems(data)
    assert len(problems) == 1
    assert "metric 'auth_success' bands: gap after '80-90%': no band covers 90" in problems[0]
    assert "metrics[4](auth_success).bands.bands" in problems[0]


def test_wide_gap_between_bands() -> None:
    data = _data()
    _metric(data, "sync_speed")["bands"]["bands"][2]["interval"] = "[6, 10)"
    (problem,) = _problems(data)
    assert (
        "metric 'sync_speed' bands: gap after 'Median completion < 5 seconds': no band covers [5, 6)"
        in problem
    )


def test_overlap_between_bands_names_metric_and_overlap() -> None:
    data = _data()
    _metric(data, "request_success")["bands"]["bands"][1]["interval"] = "[95, 99]"
    (problem,) = _problems(data)
    assert "metric 'request_success' bands: overlap" in problem
    assert "both cover 99" in problem


def test_bands_not_covering_the_end_of_the_range() -> None:
    data = _data()
    _metric(data, "auth_success")["bands"]["bands"][0]["interval"] = "[95, 100)"
    (problem,) = _problems(data)
    assert "gap at the end of the range [0, 100]: no band covers 100" in problem


def test_bands_beyond_the_range() -> None:
    data = _data()
    _metric(data, "reference_resolution")["bands"]["bands"][0]["interval"] = "[95, 101]"
    (problem,) = _problems(data)
    assert "bands extend beyond the range [0, 100]" in problem


def test_band_coverage_problems_directly() -> None:
    def bands(*intervals: str) -> Bands:
        return Bands.model_validate(
            {
                "unit": "percent",
                "range": {"interval": "[0, 100]"},
                "bands": [
                    {"label": f"b{i}", "interval": text, "points": 0}
                    for i, text in enumerate(intervals)
                ],
            }
        )

    assert band_coverage_problems(bands("[0, 50)", "[50, 100]")) == []
    assert band_coverage_problems(bands("[50, 100]", "[0, 50)")) == []  # order does not matter
    assert band_coverage_problems(bands("(0, 100]")) == [
        "gap at the start of the range: no band covers 0"
    ]
    assert band_coverage_problems(bands("[0, 50]", "[50, 100]")) == [
        "overlap: 'b0' [0, 50] and 'b1' [50, 100] both cover 50"
    ]
    assert band_coverage_problems(bands("[0, 40)", "[30, 100]")) == [
        "overlap: 'b0' [0, 40) and 'b1' [30, 100] both cover [30, 40)"
    ]
    assert band_coverage_problems(bands("[0, 50)", "(50, 100]")) == [
        "gap after 'b0': no band covers 50"
    ]
    assert band_coverage_problems(bands("[-1, 100]"))[0].startswith(
        "band 'b0' [-1, 100] starts below"
    )


def test_explicit_edge_form_is_equivalent_to_interval_notation() -> None:
    data = _data()
    _metric(data, "auth_success")["bands"]["bands"][1] = {
        "label": "90-95%",
        "min": 90,
        "max": 95,
        "min_inclusive": True,
        "max_inclusive": False,
        "points": 12,
    }
    rubric = parse_rubric(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
    assert rubric.metric("auth_success").bands == default_rubric().metric("auth_success").bands


def test_explicit_edges_must_say_which_side_is_inclusive() -> None:
    data = _data()
    _metric(data, "auth_success")["bands"]["bands"][1] = {
        "label": "90-95%",
        "min": 90,
        "max": 95,
        "points": 12,
    }
    problems = _problems(data)
    assert any("min_inclusive" in p and "Field required" in p for p in problems)
    assert any("max_inclusive" in p for p in problems)


def test_bad_interval_notation() -> None:
    data = _data()
    _metric(data, "auth_success")["bands"]["bands"][1]["interval"] = "90 to 95"
    problems = _problems(data)
    assert any("'90 to 95' is not of the form" in p for p in problems)
    data = _data()
    _metric(data, "auth_success")["bands"]["bands"][1]["interval"] = [90, 95]
    assert any("quoted string" in p for p in _problems(data))
    data = _data()
    _metric(data, "auth_success")["bands"]["bands"][1]["interval"] = "[95, 90)"
    assert any("is empty" in p for p in _problems(data))
    data = _data()
    _metric(data, "sync_speed")["bands"]["bands"][5]["interval"] = "(60, inf]"
    assert any("unbounded upper edge cannot be inclusive" in p for p in _problems(data))


def test_unknown_metric_missing_choice_wrong_unit_and_points() -> None:
    data = _data()
    _metric(data, "status")["id"] = "vibes"
    assert any("unknown metric id 'vibes'" in p for p in _problems(data))

    data = _data()
    _metric(data, "everything")["choices"].pop()
    assert any("metric 'everything': missing choice 'unsupported'" in p for p in _problems(data))

    data = _data()
    _metric(data, "sync_speed")["bands"]["unit"] = "percent"
    assert any("metric 'sync_speed' is measured in seconds" in p for p in _problems(data))

    data = _data()
    _metric(data, "developer_portal")["choices"][0]["points"] = 3
    assert any("worth 2 points but an outcome awards 3" in p for p in _problems(data))

    data = _data()
    del _metric(data, "auth_success")["not_enough_data"]
    assert any(
        "metrics[4](auth_success).not_enough_data: Field required" in p for p in _problems(data)
    )

    data = _data()
    _metric(data, "status")["category"] = "vibes"
    assert any("unknown category 'vibes'" in p for p in _problems(data))


def test_problems_carry_file_and_line(tmp_path: Path) -> None:
    text = _text().replace('interval: "[90, 95)", points: 12', 'interval: "(90, 95)", points: 12')
    line = next(i for i, ln in enumerate(text.splitlines(), 1) if '"(90, 95)"' in ln)
    path = tmp_path / "broken.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(RubricError) as info:
        load_rubric(path)
    (problem,) = info.value.problems
    assert problem == (
        f"{path}:{line}: metrics[4](auth_success).bands.bands[1]: metric 'auth_success' bands: "
        "gap after '80-90%': no band covers 90"
    )


def test_yaml_syntax_error_and_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("id: [unclosed\n", encoding="utf-8")
    with pytest.raises(RubricError, match="YAML syntax"):
        load_rubric(path)
    with pytest.raises(RubricError, match="cannot read"):
        load_rubric(tmp_path / "nope.yaml")


def test_user_supplied_alternative_rubric(tmp_path: Path) -> None:
    """A user rubric: vendor total fixed to the computed 63, stricter auth bands, no clinical."""
    data = _data()
    data["id"] = "my-rubric"
    data["version"] = "1"
    data["vendor_total_stated"] = 63
    data["vendor_denominator"] = "computed"
    data["window_months"] = 3
    data["min_lives"] = 0
    data["payer_total"] = 96
    data["metrics"] = [m for m in data["metrics"] if m["id"] != "clinical"]
    next(c for c in data["categories"] if c["id"] == "developer")["points"] = 31
    auth = _metric(data, "auth_success")["bands"]["bands"]
    auth[0]["interval"] = "[99, 100]"
    auth[1]["interval"] = "[90, 99)"
    path = tmp_path / "mine.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")

    rubric = load_rubric(path)
    assert rubric.label == "my-rubric@1"
    assert rubric.vendor_total_discrepancy is None
    assert rubric.vendor_total == 63
    from probe.score.inputs import AuthCounts
    from tests.score.builders import sample

    card = score(
        [payer(lives=10, authorizations=(sample(AuthCounts(authorized=97, failed=3)),))],
        rubric,
        as_of=AS_OF,
    )
    assert card.rubric == "my-rubric@1"
    scored = card.payer("Acme Health")
    assert scored.metric("auth_success").points == 12  # 97% is below this rubric's 99
    assert scored.max_total == 96
    assert "clinical" not in {m.metric_id for m in scored.metrics}
    assert card.window.start.month == 2  # 3 months before May 1
    assert card.vendor_denominator == 63
    assert card.vendor_total_discrepancy is None
