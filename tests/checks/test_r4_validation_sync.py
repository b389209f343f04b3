"""R4 validation inside a sync (the mock payer of tests/sync): every resource is judged, a type R4
does not define and an STU3 resource contained in an R4 one are counted with a named sample,
and a validator that fails is a counted finding, never an exception escaping the sync."""

from __future__ import annotations

from typing import Any

import pytest

from probe.checks import fhir_schema
from tests.sync.fhir_mock import MockPayer, patient_record
from tests.sync.test_sync_mock import refresh_creds, sync


def test_stu3_resources_are_counted_with_a_named_sample() -> None:
    record = patient_record()
    patient = record[0]
    patient["contained"] = [{"resourceType": "ReferralRequest", "id": "r1"}]
    record.append(
        {"resourceType": "ReferralRequest", "id": "rr1", "subject": {"reference": "Patient/p1"}}
    )
    result = sync(MockPayer(resources=record), refresh_creds())
    assert result.validation_failures == {"Patient": 1, "ReferralRequest": 1}
    assert result.validation_samples["Patient"] == (
        'Patient/p1: Patient.contained[0]: "ReferralRequest" is not a FHIR R4 resource type'
    )
    assert result.validation_samples["ReferralRequest"] == (
        'ReferralRequest/rr1: ReferralRequest: "ReferralRequest" is not a FHIR R4 resource type'
    )


def test_a_failing_validator_is_a_finding_not_a_crash(monkeypatch: pytest.MonkeyPatch) -> None:
    class Broken:
        def is_valid(self, instance: Any) -> bool:
            raise RuntimeError("engine failure")

    monkeypatch.setattr(fhir_schema, "_validator_for", lambda types: Broken())
    record = patient_record()
    result = sync(MockPayer(resources=record), refresh_creds())
    by_type: dict[str, int] = {}
    for resource in record:
        by_type[resource["resourceType"]] = by_type.get(resource["resourceType"], 0) + 1
    by_type["Practitioner"] = 2  # read by reference (MockPayer.readable)
    assert result.validation_failures == by_type
    assert result.validation_samples["Patient"] == (
        "Patient/p1: Patient: the validator failed on this resource (RuntimeError: engine failure)"
    )


def test_resources_read_by_reference_are_validated_too() -> None:
    """Practitioners outside $everything are read to resolve references: validated as well."""
    readable = {
        "Practitioner/pr0": {"resourceType": "Practitioner", "id": "pr0", "gender": "f"},
        "Practitioner/pr1": {"resourceType": "Practitioner", "id": "pr1"},
    }
    result = sync(MockPayer(readable=readable), refresh_creds())
    assert result.references.fetched == 2
    assert result.validation_failures == {"Practitioner": 1}
    assert result.validation_samples["Practitioner"] == (
        'Practitioner/pr0: Practitioner.gender: "f" is not one of the codes male, female, '
        "other, unknown"
    )
