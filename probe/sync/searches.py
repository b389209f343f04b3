"""Which per-resource searches a sync makes when `$everything` does not deliver, and how.

The CapabilityStatement decides: every type it declares with the ``search-type`` interaction is
searched by the patient search parameter it declares for that type (``_id`` for Patient;
``patient``, else ``subject``, else ``beneficiary``; R4's own when it declares none). A
statement that describes no resource types gets the fixed list (:data:`FALLBACK_TYPES`). Some
servers refuse a patient-only search for a type (Epic and NextGen answer
``Observation?patient=X`` with 400: "must have 'code' or 'category'"); US Core declares such
rules as search-parameter combinations. For those types the sync searches each standard
category (:data:`CATEGORIES`) and unions the results.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from probe.checks.metadata import CLINICAL_TYPES

#: Searched when the CapabilityStatement describes no resource types.
FALLBACK_TYPES = ("Patient", "Coverage", "ExplanationOfBenefit", *CLINICAL_TYPES)

#: Types of FHIR R4's Patient compartment (CompartmentDefinition-patient): the only types the
#: fallback searches, all but these exceptions by ``patient`` when the statement names none.
PATIENT_COMPARTMENT = frozenset(
    {
        "Patient",
        "Account",
        "AdverseEvent",
        "AllergyIntolerance",
        "Appointment",
        "Basic",
        "BodyStructure",
        "CarePlan",
        "CareTeam",
        "Claim",
        "ClaimResponse",
        "ClinicalImpression",
        "Communication",
        "CommunicationRequest",
        "Composition",
        "Condition",
        "Consent",
        "Coverage",
        "CoverageEligibilityRequest",
        "CoverageEligibilityResponse",
        "DetectedIssue",
        "Device",
        "DeviceRequest",
        "DeviceUseStatement",
        "DiagnosticReport",
        "DocumentManifest",
        "DocumentReference",
        "Encounter",
        "EnrollmentRequest",
        "EpisodeOfCare",
        "ExplanationOfBenefit",
        "FamilyMemberHistory",
        "Flag",
        "Goal",
        "ImagingStudy",
        "Immunization",
        "ImmunizationEvaluation",
        "ImmunizationRecommendation",
        "Invoice",
        "List",
        "MeasureReport",
        "Media",
        "MedicationAdministration",
        "MedicationDispense",
        "MedicationRequest",
        "MedicationStatement",
        "NutritionOrder",
        "Observation",
        "Procedure",
        "Provenance",
        "QuestionnaireResponse",
        "RelatedPerson",
        "RequestGroup",
        "RiskAssessment",
        "ServiceRequest",
        "Specimen",
        "SupplyDelivery",
        "VisionPrescription",
    }
)
#: Types whose patient search parameter is not ``patient``.
SPECIAL_PARAMS: Mapping[str, str] = {"Patient": "_id", "AdverseEvent": "subject"}
#: Tried in this order among the parameters a statement declares for a type.
PREFERRED_PARAMS = ("patient", "subject", "beneficiary")

_OBSERVATION = "http://terminology.hl7.org/CodeSystem/observation-category"
_CONDITION = "http://terminology.hl7.org/CodeSystem/condition-category"
_US_CORE_CONDITION = "http://hl7.org/fhir/us/core/CodeSystem/condition-category"
_V2_0074 = "http://terminology.hl7.org/CodeSystem/v2-0074"
_LOINC = "http://loinc.org"
_US_CORE_DOC = "http://hl7.org/fhir/us/core/CodeSystem/us-core-documentreference-category"
_US_CORE_CATEGORY = "http://hl7.org/fhir/us/core/CodeSystem/us-core-category"

#: Standard categories searched (as ``category=system|code``) where a patient-only search is
#: refused: HL7 observation-category, US Core's Observation, Condition, DiagnosticReport (v2-0074
#: LAB and the LOINC note categories) and DocumentReference categories.
CATEGORIES: Mapping[str, tuple[str, ...]] = {
    "Observation": (
        *(
            f"{_OBSERVATION}|{code}"
            for code in (
                "laboratory",
                "vital-signs",
                "social-history",
                "imaging",
                "survey",
                "exam",
                "procedure",
                "therapy",
                "activity",
            )
        ),
        *(
            f"{_US_CORE_CATEGORY}|{code}"
            for code in ("sdoh", "functional-status", "disability-status", "cognitive-status")
        ),
        f"{_US_CORE_CATEGORY}|clinical-test",
    ),
    "Condition": (
        f"{_CONDITION}|problem-list-item",
        f"{_CONDITION}|encounter-diagnosis",
        f"{_US_CORE_CONDITION}|health-concern",
    ),
    "DiagnosticReport": (
        f"{_V2_0074}|LAB",
        f"{_LOINC}|LP29684-5",
        f"{_LOINC}|LP29708-2",
        f"{_LOINC}|LP7839-6",
    ),
    "DocumentReference": (f"{_US_CORE_DOC}|clinical-note",),
}
COMBINATION_URL = (
    "http://hl7.org/fhir/StructureDefinition/capabilitystatement-search-parameter-combination"
)


@dataclass(frozen=True, slots=True)
class SearchPlan:
    """One type's search: the patient parameter, and whether to search by category at once."""

    resource_type: str
    param: str
    category_first: bool = False

    @property
    def categories(self) -> tuple[str, ...]:
        """The categories to search when a patient-only search is refused (or not allowed)."""
        return tuple(CATEGORIES.get(self.resource_type, ()))


def _declared_resources(capability: Mapping[str, Any] | None) -> tuple[dict[str, Any], set[str]]:
    """The server's resource entries by type, and the search parameters declared for all."""
    resources: dict[str, dict[str, Any]] = {}
    shared: set[str] = set()
    for rest in (capability or {}).get("rest") or []:
        if not isinstance(rest, dict) or rest.get("mode") != "server":
            continue
        shared |= _param_names(rest.get("searchParam"))
        for res in rest.get("resource") or []:
            if isinstance(res, dict) and isinstance(res.get("type"), str) and res["type"]:
                resources[res["type"]] = res
    return resources, shared


def _param_names(params: Any) -> set[str]:
    if not isinstance(params, list):
        return set()
    return {str(p["name"]) for p in params if isinstance(p, dict) and p.get("name")}


def _searchable(res: Mapping[str, Any]) -> bool:
    interactions = res.get("interaction")
    if not isinstance(interactions, list):
        return res.get("type") in PATIENT_COMPARTMENT  # no interactions listed: trust the type
    return any(isinstance(i, dict) and i.get("code") == "search-type" for i in interactions)


def _combinations(res: Mapping[str, Any]) -> list[set[str]]:
    """The required parameter sets of the type's search-parameter combinations."""
    out: list[set[str]] = []
    for ext in res.get("extension") or []:
        if not isinstance(ext, dict) or ext.get("url") != COMBINATION_URL:
            continue
        required = {
            str(sub.get("valueString"))
            for sub in ext.get("extension") or []
            if isinstance(sub, dict) and sub.get("url") == "required" and sub.get("valueString")
        }
        if required:
            out.append(required)
    return out


def needs_category(res: Mapping[str, Any], param: str) -> bool:
    """Whether the statement's combinations allow this type's patient search only with a
    category or code (no combination of the patient parameter alone)."""
    combos = _combinations(res)
    if not combos or any(combo <= {param} for combo in combos):
        return False
    return any(param in combo and "category" in combo for combo in combos)


def plan_searches(capability: Mapping[str, Any] | None) -> list[SearchPlan]:
    """The per-resource searches for a sync, in order (Patient first when searched)."""
    resources, shared = _declared_resources(capability)
    if not resources:
        return [SearchPlan(t, SPECIAL_PARAMS.get(t, "patient")) for t in FALLBACK_TYPES]
    plans: list[SearchPlan] = []
    for rtype, res in resources.items():
        if rtype not in PATIENT_COMPARTMENT or not _searchable(res):
            continue  # only a patient's own data (R4's Patient compartment) is searched
        param = _patient_param(rtype, _param_names(res.get("searchParam")) | shared)
        if param is None:
            continue
        plans.append(SearchPlan(rtype, param, needs_category(res, param)))
    order = {t: i for i, t in enumerate(FALLBACK_TYPES)}
    return sorted(plans, key=lambda p: (order.get(p.resource_type, len(order)), p.resource_type))


def _patient_param(rtype: str, declared: set[str]) -> str | None:
    """The parameter that finds the patient's `rtype` resources, or None when there is none."""
    if rtype in SPECIAL_PARAMS:
        return SPECIAL_PARAMS[rtype]
    type_params = declared - {"_id", "_lastUpdated", "_tag", "_profile", "_security", "_text"}
    if not type_params:  # the statement lists no parameters for it: R4's own, if a patient's
        return "patient" if rtype in PATIENT_COMPARTMENT else None
    return next((p for p in PREFERRED_PARAMS if p in type_params), None)
