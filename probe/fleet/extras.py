"""Test data some archetypes add to a payer's patients: extra compartment types, Observations in
every category a category-requiring server is searched by, and over-long ids.

Pure, seeded functions: the same seed, payer and patient always give the same resources.
`extra_types` adds MedicationAdministration, MedicationStatement, ServiceRequest, Provenance and
RelatedPerson (types a fixed fallback list misses); `category_required` adds laboratory,
vital-signs, social-history and survey Observations; `long_ids` gives Practitioners and
Organizations ids longer than the 64 characters R4 allows.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import date, timedelta
from typing import Any

from probe.fleet.config import derive, derive_int

Resource = dict[str, Any]
NewId = Callable[[str], str]

#: The types `extra_types` adds, and the search parameter the payer declares for each.
EXTRA_TYPES: dict[str, str] = {
    "MedicationAdministration": "patient",
    "MedicationStatement": "patient",
    "ServiceRequest": "subject",
    "Provenance": "patient",
    "RelatedPerson": "patient",
}
#: Types whose ids `long_ids` lengthens.
LONG_ID_TYPES = ("Practitioner", "Organization")
OBSERVATION_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
_LOINC = "http://loinc.org"
_SNOMED = "http://snomed.info/sct"
_RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
_UCUM = "http://unitsofmeasure.org"
_AMLODIPINE = "Amlodipine 5 MG Oral Tablet"
_ID_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-."

_SERVICES = (
    ("73761001", "Colonoscopy"),
    ("168731009", "Chest X-ray"),
    ("268556000", "Screening for malignant neoplasm of breast"),
    ("430193006", "Medication reconciliation"),
)
_RELATIONS = (("SPS", "spouse"), ("MTH", "mother"), ("CHILD", "child"), ("FRND", "friend"))
_FAMILIES = ("Rivera", "Okafor", "Lindqvist", "Tanaka", "Moreau", "Haddad")
_GIVEN = ("Alex", "Sam", "Jordan", "Priya", "Mateo", "Noor")


def _day(seed: int, *parts: object) -> str:
    """A seeded date-time in 2023-2024 (UTC)."""
    day = date(2023, 1, 1) + timedelta(days=derive_int(seed, *parts, "day") % 700)
    return f"{day.isoformat()}T09:30:00+00:00"


def _refs_of(resources: Iterable[Resource], rtype: str) -> list[str]:
    """`rtype/id` references the patient's resources make, in first-seen order."""
    seen: list[str] = []
    stack: list[Any] = list(resources)
    while stack:
        node = stack.pop(0)
        if isinstance(node, dict):
            ref = node.get("reference")
            if isinstance(ref, str) and ref.startswith(rtype + "/") and ref not in seen:
                seen.append(ref)
            stack.extend(v for k, v in node.items() if k != "reference")
        elif isinstance(node, list):
            stack.extend(node)
    return seen


def extra_type_resources(
    seed: int, slug: str, patient_no: int, patient_id: str, resources: list[Resource], new_id: NewId
) -> list[Resource]:
    """2-3 resources of each of :data:`EXTRA_TYPES` for one patient, referencing the patient
    (and the patient's MedicationRequests, Practitioners, Organizations and claims)."""
    patient_ref = {"reference": f"Patient/{patient_id}"}
    med_requests = [r for r in resources if r["resourceType"] == "MedicationRequest"]
    practitioners = _refs_of(resources, "Practitioner")
    organizations = _refs_of(resources, "Organization")
    eobs = [r["id"] for r in resources if r["resourceType"] == "ExplanationOfBenefit"]
    out: list[Resource] = []
    for rtype in EXTRA_TYPES:
        count = 2 + derive_int(seed, slug, patient_no, rtype, "count") % 2
        for n in range(count):
            label = f"{rtype}-{n}"
            rid = new_id(label)
            when = _day(seed, slug, patient_no, label)
            pick = derive_int(seed, slug, patient_no, label, "pick")
            res: Resource = {"resourceType": rtype, "id": rid}
            if rtype in ("MedicationAdministration", "MedicationStatement"):
                request = med_requests[pick % len(med_requests)] if med_requests else None
                medication = (
                    request["medicationCodeableConcept"]
                    if request is not None and "medicationCodeableConcept" in request
                    else {"coding": [{"system": _RXNORM, "code": "197361", "display": _AMLODIPINE}]}
                )
                res["status"] = "completed"
                res["medicationCodeableConcept"] = medication
                res["subject"] = dict(patient_ref)
                if rtype == "MedicationAdministration":
                    res["effectiveDateTime"] = when
                    if request is not None:
                        res["request"] = {"reference": f"MedicationRequest/{request['id']}"}
                else:
                    res["effectiveDateTime"] = when
                    res["dateAsserted"] = when
                    if request is not None:
                        res["basedOn"] = [{"reference": f"MedicationRequest/{request['id']}"}]
            elif rtype == "ServiceRequest":
                code, display = _SERVICES[pick % len(_SERVICES)]
                res["status"] = "completed"
                res["intent"] = "order"
                res["code"] = {"coding": [{"system": _SNOMED, "code": code, "display": display}]}
                res["subject"] = dict(patient_ref)
                res["authoredOn"] = when
                if practitioners:
                    res["requester"] = {"reference": practitioners[pick % len(practitioners)]}
            elif rtype == "Provenance":
                targets = [dict(patient_ref)]
                if eobs:
                    targets.append({"reference": f"ExplanationOfBenefit/{eobs[pick % len(eobs)]}"})
                res["target"] = targets
                res["recorded"] = when
                agent: Resource = {
                    "type": {
                        "coding": [
                            {
                                "system": "http://terminology.hl7.org/CodeSystem/"
                                "provenance-participant-type",
                                "code": "author",
                            }
                        ]
                    }
                }
                if organizations:
                    agent["who"] = {"reference": organizations[pick % len(organizations)]}
                else:
                    agent["who"] = dict(patient_ref)
                res["agent"] = [agent]
            else:  # RelatedPerson
                code, display = _RELATIONS[pick % len(_RELATIONS)]
                res["active"] = True
                res["patient"] = dict(patient_ref)
                res["relationship"] = [
                    {
                        "coding": [
                            {
                                "system": "http://terminology.hl7.org/CodeSystem/v3-RoleCode",
                                "code": code,
                                "display": display,
                            }
                        ]
                    }
                ]
                res["name"] = [
                    {
                        "family": _FAMILIES[pick % len(_FAMILIES)],
                        "given": [_GIVEN[(pick // 7) % len(_GIVEN)]],
                    }
                ]
            out.append(res)
    return out


def _observation(
    rid: str, patient_id: str, when: str, category: str, code: str, display: str
) -> Resource:
    return {
        "resourceType": "Observation",
        "id": rid,
        "status": "final",
        "category": [
            {"coding": [{"system": OBSERVATION_CATEGORY, "code": category, "display": category}]}
        ],
        "code": {"coding": [{"system": _LOINC, "code": code, "display": display}]},
        "subject": {"reference": f"Patient/{patient_id}"},
        "effectiveDateTime": when,
    }


def category_observations(
    seed: int, slug: str, patient_no: int, patient_id: str, new_id: NewId
) -> list[Resource]:
    """One Observation in each of the laboratory, vital-signs, social-history and survey
    categories, so a category-by-category search has something to find in each."""
    out: list[Resource] = []
    specs = (
        ("laboratory", "4548-4", "Hemoglobin A1c/Hemoglobin.total in Blood"),
        ("vital-signs", "29463-7", "Body weight"),
        ("social-history", "72166-2", "Tobacco smoking status"),
        ("survey", "55757-9", "Patient Health Questionnaire 2 item (PHQ-2) [Reported]"),
    )
    for category, code, display in specs:
        when = _day(seed, slug, patient_no, "obs", category)
        obs = _observation(new_id(f"obs-{category}"), patient_id, when, category, code, display)
        if category == "laboratory":
            obs["valueQuantity"] = {"value": 5.6, "unit": "%", "system": _UCUM, "code": "%"}
        elif category == "vital-signs":
            obs["valueQuantity"] = {"value": 71.2, "unit": "kg", "system": _UCUM, "code": "kg"}
        elif category == "social-history":
            obs["valueCodeableConcept"] = {
                "coding": [{"system": _SNOMED, "code": "266919005", "display": "Never smoker"}]
            }
        else:
            obs["valueInteger"] = derive_int(seed, slug, patient_no, "phq2") % 7
        out.append(obs)
    return out


def long_id(seed: int, slug: str, original: str, min_length: int, max_length: int) -> str:
    """A seeded id of `min_length`..`max_length` characters from R4's id alphabet."""
    length = min_length + derive_int(seed, slug, original, "long-length") % (
        max_length - min_length + 1
    )
    chars: list[str] = []
    block = 0
    while len(chars) < length:
        for byte in derive(seed, slug, original, "long-id", block):
            chars.append(_ID_CHARS[byte % len(_ID_CHARS)])
        block += 1
    text = "".join(chars[:length])
    # Readable start, and neither end a '.' or '-' (some servers trim those).
    return "ext." + text[4 : length - 1] + "0"


def codings(value: Any) -> frozenset[tuple[str, str]]:
    """The (system, code) pairs of a CodeableConcept or a list of them."""
    concepts = value if isinstance(value, list) else [value]
    found: set[tuple[str, str]] = set()
    for concept in concepts:
        if not isinstance(concept, dict):
            continue
        for coding in concept.get("coding") or []:
            if isinstance(coding, dict) and isinstance(coding.get("code"), str):
                found.add((str(coding.get("system") or ""), coding["code"]))
    return frozenset(found)


def token_matches(value: str, found: frozenset[tuple[str, str]]) -> bool:
    """Whether a FHIR token search value (``code``, ``system|code``, ``|code``, ``system|``;
    comma-separated alternatives) matches any of the (system, code) pairs."""
    for alternative in value.split(","):
        if "|" in alternative:
            system, _, code = alternative.partition("|")
            if any(s == system and (not code or c == code) for s, c in found):
                return True
        elif any(c == alternative for _, c in found):
            return True
    return False
