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


def _classes(refs: ReferenceSet) -> dict[str, Any]:
    return {
        "relative": sorted(refs.relative),
        "same_origin": sorted(refs.same_origin),
        "urns": sorted(refs.urns),
        "other_origin": sorted(refs.other_origin),
        "unresolvable": sorted(refs.unresolvable),
        "contained": (refs.contained_found, refs.contained_resolved),
        "long_ids": sorted(refs.long_ids),
    }


def test_a_reference_seen_again_is_classified_as_the_first_time() -> None:
    base = "https://payer.example/fhir"
    long_id = "x" * 70
    kinds = [
        "Patient/p1",
        " Patient/p1 ",
        f"{base}/Encounter/e1/_history/2",
        "https://payer.example/other/Thing/1",
        "https://elsewhere.example/fhir/Patient/p9",
        "urn:uuid:0b8f3c1e-1111-4222-8333-444455556666",
        "Patient?identifier=123",
        f"Practitioner/{long_id}",
        "#med1",
        " #med1",
        "#missing",
    ]
    once = ReferenceSet(base)
    for ref in kinds:
        once.add(ref, {"#med1"})
    again = ReferenceSet(base)
    for _ in range(3):
        for ref in kinds:
            again.add(ref, {"#med1"})
    assert _classes(again) == {
        **_classes(once),
        "contained": (9, 6),  # '#id' references count at every occurrence
    }
    assert _classes(once) == {
        "relative": ["Encounter/e1", "Patient/p1", f"Practitioner/{long_id}"],
        "same_origin": ["https://payer.example/other/Thing/1"],
        "urns": ["urn:uuid:0b8f3c1e-1111-4222-8333-444455556666"],
        "other_origin": ["https://elsewhere.example/fhir/Patient/p9"],
        "unresolvable": ["Patient?identifier=123"],
        "contained": (3, 2),
        "long_ids": [f"Practitioner/{long_id}"],
    }
    assert again.total == once.total + 6
