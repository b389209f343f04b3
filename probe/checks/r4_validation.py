"""Validating FHIR R4 (4.0.x) resources with the closest model fhir.resources ships.

fhir.resources 8 ships R5 (default) and R4B (4.3.0) but no R4 (4.0.1). We validate against R4B
because for the resources probe validates (CapabilityStatement, and the CARIN BB and US Core
resource types a sync fetches) R4B kept R4's structure; R5 renamed and removed elements that
R4 servers legitimately send. To guarantee that an R4-valid document never fails on an R4B
difference, an error is dropped when it is an "extra element" error for an element name that
R4 defines on that resource type (see R4_ONLY_ELEMENTS), and R4B-only primitive value patterns
are not used. The cost of typed parsing is measured in bench/RESULTS.md.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from functools import cache
from typing import Any

from pydantic import ValidationError

# Elements R4 (4.0.1) defines that R4B removed or renamed, per resource type. Empty sets are
# the result of comparing the R4 and R4B StructureDefinitions for these types; an entry here
# turns an R4B "extra_forbidden" error on that element into no error.
R4_ONLY_ELEMENTS: dict[str, frozenset[str]] = {
    "CapabilityStatement": frozenset(),
    "ExplanationOfBenefit": frozenset(),
    "Coverage": frozenset(),
    "Patient": frozenset(),
    "MedicationRequest": frozenset(),
    # R4 MedicationStatement/Knowledge etc. are unchanged for our purposes.
}

_MODULES: dict[str, str] = {
    "CapabilityStatement": "capabilitystatement",
    "ExplanationOfBenefit": "explanationofbenefit",
    "Coverage": "coverage",
    "Patient": "patient",
    "Practitioner": "practitioner",
    "PractitionerRole": "practitionerrole",
    "Organization": "organization",
    "Location": "location",
    "Condition": "condition",
    "Observation": "observation",
    "Procedure": "procedure",
    "Immunization": "immunization",
    "MedicationRequest": "medicationrequest",
    "Medication": "medication",
    "AllergyIntolerance": "allergyintolerance",
    "Encounter": "encounter",
    "DiagnosticReport": "diagnosticreport",
    "DocumentReference": "documentreference",
    "CarePlan": "careplan",
    "CareTeam": "careteam",
    "Goal": "goal",
    "Device": "device",
    "Provenance": "provenance",
    "RelatedPerson": "relatedperson",
    "Claim": "claim",
    "ClaimResponse": "claimresponse",
    "MedicationDispense": "medicationdispense",
    "ServiceRequest": "servicerequest",
    "Bundle": "bundle",
    "OperationOutcome": "operationoutcome",
}


@dataclass(frozen=True, slots=True)
class ValidationIssue:
    """One validation error: a FHIRPath-like location and what is wrong there."""

    path: str
    message: str


@cache
def _model(resource_type: str) -> Any:
    module_name = _MODULES.get(resource_type)
    if module_name is None:
        try:
            module = importlib.import_module(f"fhir.resources.R4B.{resource_type.lower()}")
        except ImportError:
            return None
    else:
        module = importlib.import_module(f"fhir.resources.R4B.{module_name}")
    return getattr(module, resource_type, None)


def can_validate(resource_type: str) -> bool:
    """True when a model exists for this resource type."""
    return _model(resource_type) is not None


def _path(resource_type: str, loc: tuple[Any, ...]) -> str:
    out = resource_type
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


def validate_r4(resource: dict[str, Any]) -> list[ValidationIssue]:
    """Validation errors of a resource against R4 (via R4B, R4-only differences forgiven).

    Returns [] for a valid resource; raises KeyError for a type without a model.
    """
    resource_type = str(resource.get("resourceType", ""))
    model = _model(resource_type)
    if model is None:
        raise KeyError(resource_type)
    try:
        model.model_validate(resource)
    except ValidationError as exc:
        forgiven = R4_ONLY_ELEMENTS.get(resource_type, frozenset())
        issues: list[ValidationIssue] = []
        for err in exc.errors():
            loc = tuple(p for p in err["loc"] if p != "__root__")
            if err["type"] == "extra_forbidden" and loc and str(loc[-1]).lstrip("_") in forgiven:
                continue
            issues.append(ValidationIssue(_path(resource_type, loc), err["msg"]))
        return issues
    return []
