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
from pathlib import Path
from typing import Any

import pytest

from probe.checks import fhir_schema
from probe.checks.r4_validation import ValidationIssue, is_valid_r4, validate_r4
from tests.checks.test_r4_validation import real_resources, synthea_resources

SOURCE = fhir_schema.DATA / "fhir.schema.json.gz.source.txt"
CACHED = ("_schema", "_load_schema", "_root_validator", "_build_root_validator", "_type_validator")

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


def judgements(resources: list[dict[str, Any]]) -> list[tuple[bool, list[ValidationIssue]]]:
    """Each resource's verdict (as the sync counts) and issues (as it names them)."""
    return [(is_valid_r4(r), validate_r4(r)) for r in resources]


@pytest.fixture
def as_before(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[], None]]:
    """Switches the validator to the route used before: the HL7 schema file as published,
    per-type validators holding every definition."""

    def switch() -> None:
        _forget()
        monkeypatch.setattr(fhir_schema, "VALIDATION_SCHEMA_FILE", fhir_schema.SCHEMA_FILE)
        monkeypatch.setattr(
            fhir_schema,
            "_reached_definitions",
            lambda name: list(fhir_schema._schema().document["definitions"]),
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
