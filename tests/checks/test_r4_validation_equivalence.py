"""The R4 validator runs schemas derived from the shipped HL7 one, for speed; it judges exactly
as the HL7 schema itself does.

- The schema it loads (``fhir.schema.validation.json.gz``) is HL7's without its descriptions
  (annotations): checked equal to its derivation from the shipped HL7 file.
- An invalid resource's problems are named by a validator of its type that holds only the
  definitions the type reaches (nested resources cut, validated on their own).

Both against the route used before (the HL7 file as published, per-type validators holding
every definition), on the real payer documents of ../shared/data/real (with the STU3
ReferralRequest contained in the Blue Button v1 EOBs), the Synthea patient and hand-made
invalid resources: the same verdicts and the same issues, in the same order.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import re
from collections.abc import Callable, Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from probe.checks import fhir_schema
from probe.checks.r4_validation import ValidationIssue, is_valid_r4, validate_r4
from tests.checks.test_r4_validation import real_resources, synthea_resources

SOURCE = fhir_schema.DATA / "fhir.schema.json.gz.source.txt"
CACHED = ("_schema", "_load_schema", "_type_validator")

# Invalid in the ways the validator names: nested resources (contained, Bundle entries,
# Parameters), unknown elements, wrong JSON types, patterns, codes, required elements.
HAND_MADE: list[dict[str, Any]] = [
    {"resourceType": "Patient", "id": "a" * 65, "gender": "M"},
    {"resourceType": "Patient", "sex": "male", "active": "yes", "\x1b[31mred": 1},
    {"resourceType": "Patient", "contained": [{"resourceType": "ReferralRequest", "id": "r1"}]},
    {"resourceType": "Patient", "contained": ["not a resource", {"resourceType": "Patient"}]},
    {
        "resourceType": "ExplanationOfBenefit",
        "contained": [{"resourceType": "Coverage", "status": "bogus", "beneficiary": 3}],
        "diagnosis": [{"sequence": 1}],
    },
    {
        "resourceType": "Bundle",
        "type": "searchset",
        "entry": [
            {"resource": {"resourceType": "Patient", "gender": "x"}},
            {"resource": {"resourceType": "ReferralRequest", "id": "r"}},
            {"resource": {"resourceType": "Bundle", "type": "collection", "entry": [{"x": 1}]}},
        ],
    },
    {
        "resourceType": "Parameters",
        "parameter": [
            {"name": "a", "resource": {"resourceType": "Observation", "status": "nope"}},
            {"name": "b", "part": [{"name": "c", "resource": {"resourceType": "Nope"}}]},
        ],
    },
    {"resourceType": "OperationOutcome", "issue": [{"severity": "error"}]},
    {"resourceType": "Claim", "diagnosis": [{"sequence": 1}], "created": "yesterday"},
    {
        "resourceType": "Observation",
        "status": "final",
        "code": {"text": "x"},
        "valueQuantity": {"value": "1"},
    },
    {"resourceType": "ReferralRequest", "id": "1"},
    {"id": "1"},
]


def _forget() -> None:
    for name in CACHED:
        getattr(fhir_schema, name).cache_clear()
    fhir_schema._validators.clear()


@cache
def _whole_root(schema_file: Path) -> Any:
    """The validator of the whole schema's root (its oneOf over every resource type), as the
    verdicts came before: one per schema file."""
    import jsonschema_rs

    assert schema_file == fhir_schema.VALIDATION_SCHEMA_FILE
    return jsonschema_rs.Draft7Validator(fhir_schema._schema().document, offline=True)


def judgements(resources: list[dict[str, Any]]) -> list[tuple[bool, list[ValidationIssue]]]:
    """Each resource's verdict (as the sync counts) and issues (as it names them)."""
    return [(is_valid_r4(r), validate_r4(r)) for r in resources]


@pytest.fixture
def as_before(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[], None]]:
    """Switches the validator to the route used before: the HL7 schema file as published,
    per-type validators holding every definition, verdicts from the whole root."""

    def switch() -> None:
        _forget()
        monkeypatch.setattr(fhir_schema, "VALIDATION_SCHEMA_FILE", fhir_schema.SCHEMA_FILE)
        monkeypatch.setattr(
            fhir_schema,
            "_reached_definitions",
            lambda *names: list(fhir_schema._schema().document["definitions"]),
        )
        monkeypatch.setattr(
            fhir_schema, "_validator_for", lambda types: _whole_root(fhir_schema.SCHEMA_FILE)
        )

    _forget()
    yield switch
    monkeypatch.undo()
    _forget()


@pytest.fixture(scope="module")
def corpus(shared_dir: Path) -> dict[str, list[dict[str, Any]]]:
    return {
        "real": list(real_resources(shared_dir).values()),
        "synthea": synthea_resources(),
        "hand-made": HAND_MADE,
    }


def test_validation_schema_is_the_hl7_schema_without_its_descriptions(tmp_path: Path) -> None:
    published = gzip.decompress(fhir_schema.SCHEMA_FILE.read_bytes())
    hl7 = json.loads(published)
    shipped = gzip.decompress(fhir_schema.VALIDATION_SCHEMA_FILE.read_bytes())
    assert json.loads(shipped) == fhir_schema.validation_schema(hl7)
    digest = fhir_schema.write_validation_schema(out=tmp_path / "remade.json.gz")
    assert gzip.decompress((tmp_path / "remade.json.gz").read_bytes()) == shipped
    assert digest == hashlib.sha256(shipped).hexdigest()
    assert digest in re.findall(r"\b[0-9a-f]{64}\b", SOURCE.read_text(encoding="utf-8"))
    # Only text descriptions go: the elements named "description" (a schema each) stay.
    assert "description" in hl7["definitions"]["Questionnaire"]["properties"]
    assert "description" in json.loads(shipped)["definitions"]["Questionnaire"]["properties"]
    assert '"description":"' not in shipped.decode("utf-8")
    assert len(shipped) < len(published) / 4


def test_per_type_definitions_stop_at_nested_resources() -> None:
    reached = fhir_schema._reached_definitions("Patient")
    assert "Patient" in reached and "HumanName" in reached and "Extension" in reached
    assert "ResourceList" not in reached and "Observation" not in reached
    assert len(reached) < len(fhir_schema._schema().document["definitions"]) / 5


@pytest.mark.parametrize("name", ["real", "synthea", "hand-made"])
def test_judgements_equal_those_of_the_hl7_schema_as_published(
    name: str, corpus: dict[str, list[dict[str, Any]]], as_before: Callable[[], None]
) -> None:
    resources = corpus[name]
    now = judgements(resources)
    as_before()
    before = judgements(resources)
    assert now == before
    invalid = sum(not valid for valid, _ in now)
    if name == "real":
        assert invalid >= 42  # tests/checks/test_r4_validation.py names each
        stu3 = [issues for _, issues in now if any("ReferralRequest" in i.message for i in issues)]
        assert stu3  # the Blue Button v1 EOBs' contained STU3 ReferralRequest
    elif name == "synthea":
        assert invalid == 0 and len(resources) > 3000
    else:
        assert invalid == len(resources)


# Nested resources where the schema takes any resource, valid and not, of common types and of
# types outside fhir_schema.COMMON_TYPES, and values at those places that are not resources.
NESTED: list[dict[str, Any]] = [
    {"resourceType": "Patient", "contained": [{"resourceType": "Substance", "id": "s"}]},
    {"resourceType": "Patient", "contained": [{"resourceType": "Substance", "status": "x"}]},
    {"resourceType": "Patient", "contained": [{"resourceType": "Patient", "id": "p2"}]},
    {"resourceType": "Patient", "contained": [{"resourceType": "Library", "status": "draft"}]},
    {"resourceType": "Patient", "contained": [{"id": "no-type"}, "text", 3, None, []]},
    {"resourceType": "Patient", "contained": ["only a string"]},
    {"resourceType": "Patient", "contained": [{"resourceType": 7}]},
    {"resourceType": "Patient", "contained": [{"resourceType": "ReferralRequest"}]},
    {"resourceType": "Patient", "contained": {"resourceType": "Patient"}},
    {
        "resourceType": "Patient",
        "contained": [
            {
                "resourceType": "Group",
                "type": "person",
                "actual": True,
                "contained": [{"resourceType": "Medication", "id": "deep"}],
            }
        ],
    },
    {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [
            {"resource": {"resourceType": "Library", "status": "active", "type": {"text": "x"}}},
            {"resource": {"resourceType": "Patient"}},
            {"response": {"status": "200", "outcome": {"resourceType": "OperationOutcome"}}},
            {"response": {"status": "200", "outcome": "not an object"}},
            {"resource": ["not an object"]},
        ],
    },
    {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [
            {
                "resource": {
                    "resourceType": "Bundle",
                    "type": "collection",
                    "entry": [{"resource": {"resourceType": "Substance", "id": "in-a-bundle"}}],
                }
            }
        ],
    },
    {
        "resourceType": "Parameters",
        "parameter": [
            {"name": "a", "resource": {"resourceType": "Substance"}},
            {
                "name": "b",
                "part": [
                    {"name": "c", "part": [{"name": "d", "resource": {"resourceType": "Basic"}}]}
                ],
            },
        ],
    },
    {
        "resourceType": "Parameters",
        "parameter": [{"name": "e", "part": [{"name": "f", "resource": 5}]}],
    },
    {"resourceType": "Substance", "id": "top-level, not common"},
    {"resourceType": "Nope"},
    {"resourceType": "Patient", "entry": [{"resource": {"resourceType": "Library"}}]},
    # valid ones (the 2nd and 9th above are too)
    {
        "resourceType": "Patient",
        "contained": [{"resourceType": "Substance", "code": {"text": "x"}}],
    },
    {
        "resourceType": "Bundle",
        "type": "batch-response",
        "entry": [
            {
                "resource": {"resourceType": "Library", "status": "active", "type": {"text": "x"}},
                "response": {
                    "status": "200",
                    "outcome": {
                        "resourceType": "OperationOutcome",
                        "issue": [{"severity": "information", "code": "informational"}],
                    },
                },
            }
        ],
    },
    {
        "resourceType": "Parameters",
        "parameter": [
            {
                "name": "b",
                "part": [{"name": "c", "resource": {"resourceType": "Basic", "code": {}}}],
            }
        ],
    },
]
VALID_NESTED = [2, 9, 17, 18, 19]


def test_what_the_reduced_validators_rely_on_holds_in_the_schema() -> None:
    """Every resource definition requires `resourceType` as the const of its name, declares no
    JSON type, and `ResourceList` (any resource) is a oneOf over all of them taken only where
    resource_types_in looks: contained resources, Bundle entries and Parameters."""
    document = fhir_schema._schema().document
    definitions = document["definitions"]
    types = sorted(fhir_schema.resource_types())
    assert len(types) == 146
    for name in types:
        definition = definitions[name]
        assert "resourceType" in definition["required"], name
        assert definition["properties"]["resourceType"] == {"const": name}, name
        assert "type" not in definition, name
    branches = [{"$ref": f"#/definitions/{t}"} for t in types]
    assert definitions["ResourceList"] == {"oneOf": branches}
    assert sorted(document["oneOf"], key=str) == sorted(branches, key=str)

    def places(target: str) -> set[tuple[str | int, ...]]:
        found: set[tuple[str | int, ...]] = set()

        def walk(node: Any, path: tuple[str | int, ...]) -> None:
            if isinstance(node, dict):
                if node.get("$ref") == f"#/definitions/{target}":
                    found.add(path)
                for key, value in node.items():
                    walk(value, (*path, key))
            elif isinstance(node, list):
                for i, value in enumerate(node):
                    walk(value, (*path, i))

        walk(definitions, ())
        return found

    nested = places("ResourceList")
    contained = {p for p in nested if p[1:] == ("properties", "contained", "items")}
    assert {p[0] for p in contained} <= set(types)
    assert nested - contained == {
        ("Bundle_Entry", "properties", "resource"),
        ("Bundle_Response", "properties", "outcome"),
        ("Parameters_Parameter", "properties", "resource"),
    }
    assert places("Bundle_Entry") == {("Bundle", "properties", "entry", "items")}
    assert places("Bundle_Response") == {("Bundle_Entry", "properties", "response")}
    assert places("Parameters_Parameter") == {
        ("Parameters", "properties", "parameter", "items"),
        ("Parameters_Parameter", "properties", "part", "items"),
    }


def test_nested_types_are_found_where_the_schema_takes_any_resource() -> None:
    assert fhir_schema.resource_types_in(NESTED[9]) == {"Patient", "Group", "Medication"}
    assert fhir_schema.resource_types_in(NESTED[11]) == {"Bundle", "Substance"}
    assert fhir_schema.resource_types_in(NESTED[12]) == {"Parameters", "Substance", "Basic"}
    assert fhir_schema.resource_types_in(NESTED[10]) == {
        "Bundle",
        "Library",
        "Patient",
        "OperationOutcome",
    }
    assert fhir_schema.resource_types_in("not a resource") == set()


@pytest.mark.parametrize("common", ["as shipped", "none"])
@pytest.mark.parametrize("name", ["real", "synthea", "hand-made", "nested"])
def test_verdicts_equal_those_of_the_whole_root(
    name: str, common: str, corpus: dict[str, list[dict[str, Any]]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Reduced validators (the common types' one, and with no common types the first resource's
    types' one, then the whole set of types) judge every resource as the whole schema's root."""
    resources = [*corpus.get(name, []), *(NESTED if name == "nested" else [])]
    _forget()
    if common == "none":
        monkeypatch.setattr(fhir_schema, "COMMON_TYPES", frozenset())
    try:
        root = _whole_root(fhir_schema.VALIDATION_SCHEMA_FILE)
        verdicts = [(is_valid_r4(r), root.is_valid(r)) for r in resources]
        assert [now for now, _ in verdicts] == [whole for _, whole in verdicts]
        built = [types for types, _ in fhir_schema._validators]
        assert len(built) <= 2
        if len(built) == 2:
            assert built[0] == fhir_schema.resource_types() and len(built[1]) < len(built[0])
        if common == "none":
            assert len(built) == 2  # the first resource's types, then every type
    finally:
        monkeypatch.undo()
        _forget()
    if name == "nested":
        assert [i for i, (now, _) in enumerate(verdicts) if now] == VALID_NESTED
