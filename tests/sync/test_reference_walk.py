"""The reference walk: every `reference` string at any depth, none from contained resources,
no recursion limit on hostile nesting, and the reference cap honoured exactly."""

from __future__ import annotations

from typing import Any

from probe.sync.references import ReferenceSet, iter_references


def test_every_reference_at_any_depth_but_not_in_contained() -> None:
    resource = {
        "resourceType": "ExplanationOfBenefit",
        "patient": {"reference": "Patient/p1"},
        "contained": [{"resourceType": "Practitioner", "x": {"reference": "Practitioner/no"}}],
        "careTeam": [{"provider": {"reference": "#pr1"}}, {"provider": {"display": "no ref"}}],
        "item": [[{"a": [{"b": {"reference": "Location/l1"}}]}], "text", 3, None],
        "insurance": [{"coverage": {"reference": "Coverage/c1", "display": "x"}}],
        "note": {"reference": 42},  # not a string: not a reference
    }
    assert sorted(iter_references(resource)) == [
        "#pr1",
        "Coverage/c1",
        "Location/l1",
        "Patient/p1",
    ]


def test_deep_nesting_does_not_recurse() -> None:
    node: dict[str, Any] = {"reference": "Patient/deep"}
    for _ in range(20_000):
        node = {"x": [node]}
    assert iter_references({"resourceType": "Basic", "n": node}) == ["Patient/deep"]


def test_the_reference_cap_is_exact() -> None:
    refs = ReferenceSet("https://payer.example/fhir", max_references=5)
    resource = {
        "resourceType": "List",
        "entry": [{"item": {"reference": f"Observation/o{i}"}} for i in range(4)],
    }
    refs.add_resource(resource, None)
    assert refs.total == 4
    refs.add_resource(
        {
            "resourceType": "List",
            "entry": [{"item": {"reference": f"Condition/c{i}"}} for i in range(4)],
        },
        None,
    )
    assert refs.total == 5  # one more fitted under the cap, the rest were not taken
    refs.add_resource(resource, None)  # duplicates only: nothing new, still within the cap
    assert refs.total == 5
