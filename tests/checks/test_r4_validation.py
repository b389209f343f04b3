"""R4 validation (probe.checks.r4_validation) on real payer documents, a Synthea patient and the
fleet's patients, judged against the validator it replaced (fhir.resources R4B models).

Every resource of every real document in ../shared/data/real is validated: each document, and
each entry of a Bundle. The R4B verdicts are computed here, with the previous validator's logic
(`r4b_rejects`), so the superset claim is checked against the real thing, not a copy of its
results.
"""

from __future__ import annotations

import gzip
import importlib
import json
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from probe.checks import fhir_schema
from probe.checks.r4_validation import ValidationIssue, can_validate, is_valid_r4, validate_r4

DATA = Path(__file__).resolve().parent / "data"

# Every resource of ../shared/data/real the validator flags, with the first issue's path (the
# reason, in order of the document). "file#entry[i]" is a Bundle's entry; "file" alone is the
# document (a Bundle is validated whole as well).
EXPECTED_FLAGGED: dict[str, str] = {
    # BFD v2 synthetic data: "IGNORED_FIELD" placeholders in ids, meta.lastUpdated and dates.
    "bundles/bfd_v2_claim_search_paginated_previous.json": "Bundle.id",
    "bundles/bfd_v2_claim_search_paginated_previous.json#entry[0]": "Claim.insurance",
    "bundles/bfd_v2_coverage_search.json": "Bundle.id",
    "bundles/bfd_v2_coverage_search.json#entry[0]": "Coverage.meta.lastUpdated",
    "bundles/bfd_v2_coverage_search.json#entry[1]": "Coverage.meta.lastUpdated",
    "bundles/bfd_v2_coverage_search.json#entry[2]": "Coverage.meta.lastUpdated",
    "bundles/bfd_v2_coverage_search.json#entry[3]": "Coverage.meta.lastUpdated",
    "bundles/bfd_v2_eob_read_carrier.json": "ExplanationOfBenefit.meta.lastUpdated",
    "bundles/bfd_v2_eob_read_pde.json": "ExplanationOfBenefit.meta.lastUpdated",
    "bundles/bfd_v2_eob_search_paged.json": "Bundle.id",
    **{
        f"bundles/bfd_v2_eob_search_paged.json#entry[{i}]": "ExplanationOfBenefit.meta.lastUpdated"
        for i in range(8)
    },
    "bundles/bfd_v2_patient_read.json": "Patient.meta.lastUpdated",
    # Blue Button v1: STU3 EOBs (no provider/insurer; STU3 elements; a contained STU3
    # ReferralRequest, on which the R4B validator raised KeyError).
    "bundles/bluebutton_v1_eob_search.json": "Bundle.entry[0].resource.provider",
    **{
        f"bundles/bluebutton_v1_eob_search.json#entry[{i}]": "ExplanationOfBenefit.provider"
        for i in range(10)
    },
    # Blue Button v2: R4 EOBs without the 1..1 insurer (and insurance.focal, outcome).
    "bundles/bluebutton_v2_eob_read_carrier.json": "ExplanationOfBenefit.provider",
    "bundles/bluebutton_v2_eob_read_inpatient.json": "ExplanationOfBenefit.insurer",
    "bundles/bluebutton_v2_eob_search.json": "Bundle.entry[0].resource.insurer",
    **{
        f"bundles/bluebutton_v2_eob_search.json#entry[{i}]": "ExplanationOfBenefit.insurer"
        for i in range(10)
    },
    "capability/bfd_v2_r4_metadata_current.json": "CapabilityStatement.id",
    # A DSTU2 Conformance: not an R4 resource type (R4B had no model: never validated).
    "capability/ehr_cerner_dstu2_conformance.json": "Conformance",
    # OperationOutcomes without the 1..1 issue.code (the JSON Schema alone misses these).
    "errors/ehr_drchrono_500_medicationstatement_search.json": "OperationOutcome.issue[0].code",
    "errors/ehr_nextgen_403_account_search.json": "OperationOutcome.issue[0].code",
    "errors/ehr_nextgen_404_careplan_search.json": "OperationOutcome.issue[0].code",
}

# Documents whose every resource is valid R4 (no false alarm allowed on these).
KNOWN_VALID = [
    "bundles/bluebutton_v2_coverage_read.json",
    "bundles/bluebutton_v2_coverage_search.json",
    "bundles/bluebutton_v2_patient_read.json",
    "bundles/bluebutton_v2_patient_search.json",
    "bundles/ehr_athena_observation_search_page1_next.json",
    "bundles/ehr_athena_observation_search_page2_next.json",
    "capability/bluebutton_v2_r4_metadata.json",
    "capability/centene_provider_directory_hapi.json",
    "capability/devoted_health_patient_access.json",
    "capability/ehr_epic_sandbox_r4.json",
    "errors/bluebutton_operationoutcome_unsupported_id.json",
    "errors/careevolution_403_endpoint_read.json",
    "errors/cigna_sandbox_500_coverage_read.json",
    "errors/cigna_sandbox_500_practitioner_read.json",
    "errors/ehr_athena_403_medicationrequest_search.json",
    "errors/ehr_ecw_healow_400_careplan_search.json",
    "errors/ehr_epic_sandbox_400_careplan_search.json",
]


def real_resources(shared: Path) -> dict[str, dict[str, Any]]:
    """Every FHIR resource in ../shared/data/real: each document, and each Bundle entry."""
    out: dict[str, dict[str, Any]] = {}
    root = shared / "data" / "real"
    for path in sorted(root.rglob("*.json")):
        doc = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(doc, dict) or "resourceType" not in doc:
            continue  # smart-configuration and OIDC documents, userinfo
        name = path.relative_to(root).as_posix()
        out[name] = doc
        if doc["resourceType"] == "Bundle":
            for i, entry in enumerate(doc.get("entry", [])):
                if isinstance(entry.get("resource"), dict):
                    out[f"{name}#entry[{i}]"] = entry["resource"]
    return out


@cache
def _r4b_model(resource_type: str) -> Any:
    try:
        module = importlib.import_module(f"fhir.resources.R4B.{resource_type.lower()}")
    except ImportError:
        return None
    return getattr(module, resource_type, None)


def r4b_rejects(resource: dict[str, Any]) -> str | None:
    """The previous validator's verdict: why R4B rejects the resource, None when it accepts it
    (or has no model for its type). An exception it raised counts as a rejection."""
    model = _r4b_model(str(resource.get("resourceType", "")))
    if model is None:
        return None
    try:
        model.model_validate(resource)
    except ValidationError as exc:
        return str(exc.errors()[0]["msg"])
    except Exception as exc:
        return f"raised {exc!r}"
    return None


@pytest.fixture(scope="module")
def real(shared_dir: Path) -> dict[str, dict[str, Any]]:
    return real_resources(shared_dir)


def synthea_resources() -> list[dict[str, Any]]:
    bundle = json.loads(gzip.decompress((DATA / "synthea_patient.json.gz").read_bytes()))
    return [entry["resource"] for entry in bundle["entry"]]


def test_flags_exactly_the_known_invalid_real_resources(real: dict[str, dict[str, Any]]) -> None:
    flagged = {key: issues[0].path for key, r in real.items() if (issues := validate_r4(r))}
    assert flagged == EXPECTED_FLAGGED


def test_flags_every_real_resource_r4b_rejects_and_more(real: dict[str, dict[str, Any]]) -> None:
    r4b = {key for key, r in real.items() if r4b_rejects(r) is not None}
    not_bundles = {k for k in r4b if real[k]["resourceType"] != "Bundle"}
    assert len(not_bundles) == 42  # issue 16's count (6 of them by raising KeyError)
    assert len(r4b - not_bundles) == 5  # and 5 whole Bundles
    assert r4b <= set(EXPECTED_FLAGGED)
    # What R4B did not flag: the DSTU2 Conformance (it had no model for it).
    assert set(EXPECTED_FLAGGED) - r4b == {"capability/ehr_cerner_dstu2_conformance.json"}


def test_r4b_raised_on_the_contained_stu3_referral_request(
    real: dict[str, dict[str, Any]],
) -> None:
    """The bug this replaces: R4B raised KeyError('R4.ReferralRequestType'), an exception that
    could escape a sync; the new validator names the STU3 resource instead."""
    eob = real["bundles/bluebutton_v1_eob_search.json#entry[0]"]
    assert eob["contained"][0]["resourceType"] == "ReferralRequest"
    model = _r4b_model("ExplanationOfBenefit")
    with pytest.raises(KeyError, match=r"R4\.ReferralRequestType"):
        model.model_validate(eob)
    issues = validate_r4(eob)
    assert (
        ValidationIssue(
            "ExplanationOfBenefit.contained[0]", '"ReferralRequest" is not a FHIR R4 resource type'
        )
        in issues
    )


def test_no_issue_on_the_known_valid_real_documents(real: dict[str, dict[str, Any]]) -> None:
    for name in KNOWN_VALID:
        keys = [k for k in real if k == name or k.startswith(name + "#")]
        assert keys, name
        for key in keys:
            assert validate_r4(real[key]) == [], key
            assert r4b_rejects(real[key]) is None, key


def test_no_issue_on_the_synthea_patient() -> None:
    resources = synthea_resources()
    assert len(resources) == 3241
    assert len({r["resourceType"] for r in resources}) == 25
    flagged = [(r["resourceType"], r.get("id"), validate_r4(r)) for r in resources]
    assert [f for f in flagged if f[2]] == []


def test_no_issue_on_the_fleet_patients() -> None:
    from probe.fleet.app import Fleet
    from probe.fleet.config import parse_fleet_config

    fleet = Fleet(parse_fleet_config({"seed": 11, "payers": [{"slug": "p", "patients": 6}]}))
    data = fleet.data("p")
    count = 0
    for patient in fleet.patients("p"):
        for key in data.everything[patient]:
            resource = json.loads(data.resources[key])
            assert validate_r4(resource) == [], key
            count += 1
    assert count > 300


def test_what_r4b_missed_ids_over_64_characters_and_codes_outside_required_value_sets() -> None:
    patient = {"resourceType": "Patient", "id": "a" * 65, "gender": "M"}
    assert r4b_rejects(patient) is None
    assert validate_r4(patient) == [
        ValidationIssue("Patient.id", "id is 65 characters long (at most 64)"),
        ValidationIssue(
            "Patient.gender", '"M" is not one of the codes male, female, other, unknown'
        ),
    ]
    assert validate_r4({"resourceType": "Patient", "id": "a" * 64, "gender": "male"}) == []
    assert validate_r4({"resourceType": "Patient", "id": "a b"}) == [
        ValidationIssue("Patient.id", '"a b" is not a valid FHIR id')
    ]


def test_required_primitive_may_be_its_extension_twin() -> None:
    """issue.code is 1..1: a value, or `_code` carrying an extension (data-absent-reason)."""
    outcome = {"resourceType": "OperationOutcome", "issue": [{"severity": "error"}]}
    assert validate_r4(outcome) == [
        ValidationIssue("OperationOutcome.issue[0].code", "required element is missing")
    ]
    absent = {"extension": [{"url": "http://hl7.org/fhir/StructureDefinition/data-absent-reason"}]}
    outcome["issue"][0]["_code"] = absent
    absent["extension"][0]["valueCode"] = "unknown"
    assert validate_r4(outcome) == []
    outcome["issue"][0] = {"code": "processing"}
    assert validate_r4(outcome) == [
        ValidationIssue("OperationOutcome.issue[0].severity", "required element is missing")
    ]


def test_required_choice_element() -> None:
    eob_diagnosis: dict[str, Any] = {"sequence": 1}
    observation = {
        "resourceType": "Observation",
        "status": "final",
        "code": {"text": "x"},
        "component": [{"code": {"text": "y"}}],  # component.value[x] is 0..1: not required
    }
    assert validate_r4(observation) == []
    issues = validate_r4({"resourceType": "Claim", "diagnosis": [eob_diagnosis]})
    assert (
        ValidationIssue(
            "Claim.diagnosis[0].diagnosis[x]",
            "required element is missing (one of diagnosisCodeableConcept, diagnosisReference)",
        )
        in issues
    )
    eob_diagnosis["diagnosisCodeableConcept"] = {"text": "flu"}
    issues = validate_r4({"resourceType": "Claim", "diagnosis": [eob_diagnosis]})
    assert not [i for i in issues if i.path.startswith("Claim.diagnosis")]


def test_unknown_element_and_wrong_json_type_are_named() -> None:
    assert validate_r4({"resourceType": "Patient", "sex": "male", "active": "yes"}) == [
        ValidationIssue("Patient.active", '"yes" is not of JSON type boolean'),
        ValidationIssue("Patient.sex", "is not an element of this type in FHIR R4"),
    ]


def test_nested_resources_are_reported_at_their_own_paths() -> None:
    bundle = {
        "resourceType": "Bundle",
        "type": "searchset",
        "entry": [
            {"resource": {"resourceType": "Patient", "gender": "x"}},
            {"resource": {"resourceType": "ReferralRequest", "id": "r"}},
        ],
    }
    assert validate_r4(bundle) == [
        ValidationIssue(
            "Bundle.entry[0].resource.gender",
            '"x" is not one of the codes male, female, other, unknown',
        ),
        ValidationIssue(
            "Bundle.entry[1].resource", '"ReferralRequest" is not a FHIR R4 resource type'
        ),
    ]


def test_unknown_or_missing_resource_type_is_an_issue_not_an_error() -> None:
    assert can_validate("ReferralRequest") and can_validate("Patient")
    assert not can_validate("")
    assert validate_r4({"resourceType": "ReferralRequest", "id": "1"}) == [
        ValidationIssue("ReferralRequest", '"ReferralRequest" is not a FHIR R4 resource type')
    ]
    assert validate_r4({"id": "1"}) == [
        ValidationIssue("resourceType", "resourceType is missing or not a string")
    ]
    assert validate_r4({"resourceType": 4}) == [
        ValidationIssue("resourceType", "resourceType is missing or not a string")
    ]


def test_an_exception_inside_the_validator_is_a_finding(monkeypatch: pytest.MonkeyPatch) -> None:
    class Broken:
        def is_valid(self, instance: Any) -> bool:
            raise RuntimeError("schema engine blew up\nsecond line")

    monkeypatch.setattr(fhir_schema, "_validator_for", lambda types: Broken())
    assert validate_r4({"resourceType": "Patient"}) == [
        ValidationIssue(
            "Patient",
            "the validator failed on this resource (RuntimeError: schema engine blew up)",
        )
    ]


def test_a_value_the_engine_cannot_read_is_a_finding() -> None:
    """Not JSON at all (a Python object): jsonschema-rs raises ValueError, reported as a finding."""
    issues = validate_r4({"resourceType": "Patient", "id": object()})
    assert len(issues) == 1
    assert issues[0].path == "Patient"
    assert issues[0].message.startswith("the validator failed on this resource (ValueError:")


def test_nesting_deeper_than_the_parser_allows_still_validates() -> None:
    """probe's JSON reader stops at 200 levels (probe.http.body.MAX_JSON_DEPTH) and json.loads
    near 1,000; the Rust engine recurses, so a resource four times deeper must still pass."""
    node: dict[str, Any] = {"url": "http://example.org/x", "valueString": "a"}
    for _ in range(4000):
        node = {"url": "http://example.org/x", "extension": [node]}
    assert validate_r4({"resourceType": "Patient", "extension": [node]}) == []


def test_metadata_check_messages_use_the_new_paths(real: dict[str, dict[str, Any]]) -> None:
    issues = validate_r4(real["capability/bfd_v2_r4_metadata_current.json"])
    assert issues == [
        ValidationIssue("CapabilityStatement.id", '"IGNORED_FIELD" is not a valid FHIR id'),
        ValidationIssue("CapabilityStatement.date", '"IGNORED_FIELD" is not a valid FHIR dateTime'),
    ]


def test_is_valid_r4_agrees_with_validate_r4(real: dict[str, dict[str, Any]]) -> None:
    """The sync counts with is_valid_r4 and names the problems with validate_r4."""
    for key, resource in real.items():
        assert is_valid_r4(resource) == (validate_r4(resource) == []), key
    assert all(is_valid_r4(r) for r in synthea_resources()[:500])
    assert not is_valid_r4({"resourceType": "Patient", "id": object()})


def test_warm_builds_the_validator_once() -> None:
    fhir_schema.warm()
    built = list(fhir_schema._validators)
    fhir_schema.warm()
    assert fhir_schema._validators == built  # nothing built again
    assert any(types >= fhir_schema.COMMON_TYPES for types, _ in built)


def test_unknown_element_names_from_the_server_are_quoted_when_not_plain() -> None:
    issues = validate_r4(
        {"resourceType": "Patient", "\x1b[31mred": 1, "name": [{"given\n": ["x"]}]}
    )
    assert [i.path for i in issues] == [
        'Patient.name[0]."given\\n"',
        'Patient."\\u001b[31mred"',
    ]
