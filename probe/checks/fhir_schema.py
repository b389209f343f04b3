"""FHIR R4 structural validation on the official HL7 FHIR R4 JSON Schema, with jsonschema-rs.

The schema (``data/fhir.schema.json.gz``, id ``http://hl7.org/fhir/json-schema/4.0``; where it
comes from is in ``data/fhir.schema.json.gz.source.txt``) is run without its descriptions
(``data/fhir.schema.validation.json.gz``, made from it by :func:`validation_schema`: run this
module to remake it; a test keeps the two equal). Descriptions are annotations, never part of a
verdict or an error, and three quarters of the text: without them the one-time load (gunzip and
parse) takes about 10 ms instead of 60, and load and build together about a fifth less CPU
(``bench/validate.py --builds``). It is loaded once, on first use (by one thread, the others
waiting), and completed in memory with what it cannot express (``data/fhir_rules.json``, made by
``probe.checks.fhir_schema_rules``): required primitive elements (present as ``code`` or as
its extension twin ``_code``) and required choice elements (``value[x]``), as ``if``/``then``
``required`` under the definition's ``allOf``, so they are checked in Rust with the rest. The
schema declares draft 6, which has no ``if``; it is run as draft 7 (for this schema the two
differ only in ``if``/``then``/``else`` and in naming the root id ``$id``, unused: every
reference in it is local).

A valid resource costs one call: the root schema's ``oneOf`` over the resource types
(``is_valid``), on a validator holding only the definitions of the types it judges (a payer's
usual types, built once by the warm-up; see :func:`_build_validator`), which judges exactly as
the whole root. Only an invalid one is validated again against its own type's definition to
name each problem; that per-type validator is built once per type, when first needed. Errors
map to :class:`ValidationIssue` with FHIRPath-like paths (``OperationOutcome.issue[0].code``).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import re
import threading
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

DATA = Path(__file__).resolve().parent / "data"
SCHEMA_FILE = DATA / "fhir.schema.json.gz"  # HL7's, as published
VALIDATION_SCHEMA_FILE = DATA / "fhir.schema.validation.json.gz"  # without its descriptions
RULES_FILE = DATA / "fhir_rules.json"
SCHEMA_ID = "http://hl7.org/fhir/json-schema/4.0"
MAX_VALUE_CHARS = 80
MAX_MESSAGE_CHARS = 300
_PLAIN_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")


@dataclass(frozen=True, slots=True)
class ValidationIssue:
    """One validation error: a FHIRPath-like location and what is wrong there."""

    path: str
    message: str


@dataclass(frozen=True, slots=True)
class _Rule:
    """One rule added to a definition's allOf: a required primitive or choice element."""

    element: str  # "code", or "value[x]" for a choice
    members: tuple[str, ...]  # the names that satisfy it (without the "_" twins)


@dataclass(frozen=True, slots=True)
class _Schema:
    document: dict[str, Any]
    resource_types: frozenset[str]
    rules: dict[tuple[str, int], _Rule]  # (definition, allOf index) -> rule


def _required_one_of(names: list[str]) -> dict[str, Any]:
    """Draft 7: unless one of the names (or its "_" twin) is there, the first is required.

    (Not ``anyOf`` of ``required``: a failed ``anyOf`` formats the whole instance into its
    message, about a millisecond for a large resource; a ``required`` error is a short string.)
    """
    present = [{"required": [n]} for n in names] + [{"required": ["_" + n]} for n in names]
    return {"if": {"not": {"anyOf": present}}, "then": {"required": [names[0]]}}


# One load and one build per process, whichever thread asks first (the sync's warm-up thread or
# the first validation): the others wait for it instead of building their own.
_building = threading.RLock()


@cache
def _schema() -> _Schema:
    with _building:
        return _load_schema()


def validation_schema(document: Any) -> Any:
    """The schema `document` without its descriptions (every ``description`` whose value is
    text: an annotation; an element named ``description`` has a schema, kept)."""
    if isinstance(document, dict):
        return {
            key: validation_schema(value)
            for key, value in document.items()
            if not (key == "description" and isinstance(value, str))
        }
    if isinstance(document, list):
        return [validation_schema(value) for value in document]
    return document


def write_validation_schema(source: Path = SCHEMA_FILE, out: Path = VALIDATION_SCHEMA_FILE) -> str:
    """Write the schema the validator runs (:func:`validation_schema` of `source`), compact
    and gzipped reproducibly; its sha256 (of the uncompressed text)."""
    document = json.loads(gzip.decompress(source.read_bytes()))
    text = json.dumps(validation_schema(document), separators=(",", ":"), ensure_ascii=False)
    raw = text.encode("utf-8")
    out.write_bytes(gzip.compress(raw, compresslevel=9, mtime=0))
    return hashlib.sha256(raw).hexdigest()


@cache
def _load_schema() -> _Schema:
    document: dict[str, Any] = json.loads(gzip.decompress(VALIDATION_SCHEMA_FILE.read_bytes()))
    rule_file: dict[str, Any] = json.loads(RULES_FILE.read_text(encoding="utf-8"))
    definitions: dict[str, Any] = document["definitions"]
    rules: dict[tuple[str, int], _Rule] = {}
    for name, spec in rule_file["definitions"].items():
        definition = definitions[name]
        all_of: list[dict[str, Any]] = list(definition.get("allOf", []))
        for element in spec.get("required", []):
            rules[(name, len(all_of))] = _Rule(element, (element,))
            all_of.append(_required_one_of([element]))
        for prefix, members in spec.get("choices", {}).items():
            rules[(name, len(all_of))] = _Rule(f"{prefix}[x]", tuple(members))
            all_of.append(_required_one_of(list(members)))
        definition["allOf"] = all_of
    types = frozenset(document["discriminator"]["mapping"])
    return _Schema(document, types, rules)


#: Resource types a payer's Patient Access API serves (CARIN BB, US Core, PDex, Plan-Net) and
#: their usual companions: the warm-up builds the validator for these, which judges every
#: resource whose types (nested ones included) are among them.
COMMON_TYPES: frozenset[str] = frozenset(
    {
        "AllergyIntolerance", "Binary", "Bundle", "CarePlan", "CareTeam", "Claim",
        "ClaimResponse", "Communication", "Condition", "Consent", "Coverage",
        "CoverageEligibilityResponse", "Device", "DeviceRequest", "DiagnosticReport",
        "DocumentReference", "Encounter", "ExplanationOfBenefit", "FamilyMemberHistory", "Goal",
        "ImagingStudy", "Immunization", "Location", "Medication", "MedicationAdministration",
        "MedicationDispense", "MedicationRequest", "MedicationStatement", "NutritionOrder",
        "Observation", "OperationOutcome", "Organization", "Parameters", "Patient",
        "Practitioner", "PractitionerRole", "Procedure", "Provenance", "Questionnaire",
        "QuestionnaireResponse", "RelatedPerson", "RiskAssessment", "ServiceRequest", "Specimen",
        "SupplyDelivery",
    }
)  # fmt: skip

#: The validators built so far, each with the resource types it judges, newest (widest) first.
_validators: list[tuple[frozenset[str], Any]] = []


def resource_types_in(resource: Any) -> set[str]:
    """The resource types of `resource` and of every resource nested in it where the schema
    takes any resource (``ResourceList``): contained resources, a Bundle's entries (resource,
    response outcome) and a Parameters' (resource, at any depth of parts), at any depth."""
    found: set[str] = set()
    stack: list[Any] = [resource]
    while stack:
        node = stack.pop()
        if not isinstance(node, dict):
            continue
        rtype = node.get("resourceType")
        if isinstance(rtype, str):
            found.add(rtype)
        contained = node.get("contained")
        if isinstance(contained, list):
            stack.extend(contained)
        if rtype == "Bundle" and isinstance(node.get("entry"), list):
            for entry in node["entry"]:
                if isinstance(entry, dict):
                    stack.append(entry.get("resource"))
                    response = entry.get("response")
                    if isinstance(response, dict):
                        stack.append(response.get("outcome"))
        elif rtype == "Parameters" and isinstance(node.get("parameter"), list):
            parameters = list(node["parameter"])
            while parameters:
                parameter = parameters.pop()
                if isinstance(parameter, dict):
                    stack.append(parameter.get("resource"))
                    if isinstance(parameter.get("part"), list):
                        parameters.extend(parameter["part"])
    return found


def _validator_for(types: set[str]) -> Any:
    """A validator judging exactly as the whole schema's root (its ``oneOf`` over every
    resource type) every resource whose types (:func:`resource_types_in`) are `types`.

    It holds only the definitions its resource types reach (:func:`_build_validator`); one
    already built is used when its types include `types` (types R4 does not define need no
    definition: no branch takes them, as in the root). The first one built is for these types
    and the common ones (the warm-up's: one build per process for a payer's usual data); when
    another is needed, it is for every resource type (the whole root, once), so that a server
    sending one unusual type after another costs two builds, not one per type."""
    for covered, validator in _validators:
        if types <= covered:
            return validator
    with _building:
        known = types & _schema().resource_types
        for covered, validator in _validators:
            if known <= covered:
                return validator
        wanted = _schema().resource_types if _validators else frozenset(known | COMMON_TYPES)
        validator = _build_validator(wanted)
        _validators.insert(0, (wanted, validator))
        return validator


def _build_validator(types: frozenset[str]) -> Any:
    """The root schema reduced to `types`: ``{"type": "object", "oneOf": [each type]}`` at the
    root and as ``ResourceList`` (nested resources), with the definitions they reach.

    Judges as the whole root any resource whose types (its own and nested ones) are among
    `types`: every resource definition requires ``resourceType`` as a ``const`` of its name, so
    an object matches at most the branch of its type, present here; an object without a known
    type matches no branch in either; a value that is not an object matches every branch of the
    root (none declares a JSON type), failing its ``oneOf``, and fails ``"type": "object"``
    here. (A branch that is not a resource, to fail non-objects, would cost a third more per
    resource: jsonschema-rs judges a ``oneOf`` of only references fastest.) The build costs
    with the definitions: the warm-up's, for :data:`COMMON_TYPES`, about a third of the whole
    root's (``bench/validate.py --builds``); validation costs the same.
    """
    document = _schema().document
    definitions = document["definitions"]
    listing = {"type": "object", "oneOf": [{"$ref": f"#/definitions/{t}"} for t in sorted(types)]}
    reduced = {
        k: v for k, v in document.items() if k not in ("oneOf", "discriminator", "definitions")
    }
    reduced["definitions"] = {name: definitions[name] for name in _reached_definitions(*types)}
    reduced["definitions"]["ResourceList"] = listing
    reduced |= listing
    import jsonschema_rs  # here, not at import: about 15 ms the sync's start does not wait for

    return jsonschema_rs.Draft7Validator(reduced, offline=True)


@cache
def _type_validator(resource_type: str) -> Any:
    """A validator for one resource type's definition (to name each problem).

    Nested resources (contained, Bundle.entry.resource, Parameters.parameter.resource) are
    ``ResourceList``, a oneOf over every resource type: an error there would carry every
    branch's errors (seconds for one Bundle). Here ``ResourceList`` is the false schema, so each
    nested resource is one cheap error at its path, validated on its own by the caller.

    The resource's own ``required``, R4 rules and ``additionalProperties`` are left out (checked
    by :func:`_top_level_issues`): jsonschema-rs copies an error's instance, the whole resource
    for these, up to a millisecond each.

    Only the definitions the type reaches are kept (ResourceList being false, about 60 of the
    680): jsonschema-rs compiles every definition of a document, so the whole one took about
    60 ms to build per type, the reduced one about 4 ms.
    """
    definitions = _schema().document["definitions"]
    document = {
        k: v
        for k, v in _schema().document.items()
        if k not in ("oneOf", "discriminator", "definitions")
    }
    top = {
        k: v
        for k, v in definitions[resource_type].items()
        if k not in ("required", "allOf", "additionalProperties")
    }
    reached = {name: definitions[name] for name in _reached_definitions(resource_type)}
    document["definitions"] = dict(reached, ResourceList=False, ProbeTop=top)
    document["allOf"] = [{"$ref": "#/definitions/ProbeTop"}]
    import jsonschema_rs

    return jsonschema_rs.Draft7Validator(document, offline=True)


def _references(node: Any, out: set[str]) -> None:
    """Add the definition names `node` refers to (``#/definitions/NAME``) to `out`."""
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/definitions/"):
            out.add(ref.removeprefix("#/definitions/"))
        for value in node.values():
            _references(value, out)
    elif isinstance(node, list):
        for value in node:
            _references(value, out)


def _reached_definitions(*names: str) -> list[str]:
    """The definitions `names` reach through references, themselves included, without going
    through ``ResourceList`` (the nested resources, validated on their own)."""
    definitions = _schema().document["definitions"]
    seen = set(names)
    stack = list(names)
    while stack:
        found: set[str] = set()
        _references(definitions[stack.pop()], found)
        for ref in sorted(found - seen):
            if ref != "ResourceList":
                seen.add(ref)
                stack.append(ref)
    return sorted(seen)


def _top_level_issues(
    resource: dict[str, Any], resource_type: str, where: str
) -> tuple[list[ValidationIssue], list[ValidationIssue]]:
    """The resource's own required elements, R4 rules and unknown elements, checked here:
    (issues to name first, issues to name last)."""
    schema = _schema()
    definition = schema.document["definitions"][resource_type]
    first = [
        ValidationIssue(f"{where}.{name}", "required element is missing")
        for name in definition.get("required", [])
        if name not in resource
    ]
    last: list[ValidationIssue] = []
    for index in range(len(definition.get("allOf", []))):
        rule = schema.rules.get((resource_type, index))
        if rule is None or any(m in resource or "_" + m in resource for m in rule.members):
            continue
        message = "required element is missing"
        if len(rule.members) > 1:
            message += " (one of " + ", ".join(rule.members) + ")"
        last.append(ValidationIssue(f"{where}.{rule.element}", message))
    properties = definition["properties"]
    last.extend(
        ValidationIssue(f"{where}.{_element(name)}", "is not an element of this type in FHIR R4")
        for name in resource
        if name not in properties
    )
    return first, last


def resource_types() -> frozenset[str]:
    """The resource types FHIR R4 defines (the schema's discriminator)."""
    return _schema().resource_types


def warm() -> None:
    """Load the schema and build the validator for the common resource types now rather than
    on the first resource."""
    _validator_for(set(COMMON_TYPES))


def _element(name: str) -> str:
    """An unknown element's name for a path: as sent when it is a plain name, else quoted JSON
    (no control characters or markup from the server reaches a terminal or a report)."""
    return name if _PLAIN_NAME.fullmatch(name) else _show(name)


def _show(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=True, default=str)
    return text if len(text) <= MAX_VALUE_CHARS else text[: MAX_VALUE_CHARS - 1] + "…"


def _join(prefix: str, parts: list[str | int]) -> str:
    out = prefix
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


def _issues_of(error: Any, prefix: str, at: Any) -> list[ValidationIssue]:
    """The issues one jsonschema-rs error stands for (at: the instance it is about)."""
    import jsonschema_rs

    kind = error.kind
    path = _join(prefix, list(error.instance_path))
    schema_path = list(error.schema_path)
    keyword = schema_path[-1] if schema_path else ""
    if isinstance(kind, jsonschema_rs.ValidationErrorKind.Required):
        rule = None
        if len(schema_path) >= 5 and schema_path[-2] == "then" and schema_path[-4] == "allOf":
            rule = _schema().rules.get((str(schema_path[-5]), int(schema_path[-3])))
        if rule is not None and len(rule.members) > 1:
            return [
                ValidationIssue(
                    f"{path}.{rule.element}",
                    "required element is missing (one of " + ", ".join(rule.members) + ")",
                )
            ]
        return [ValidationIssue(f"{path}.{kind.property}", "required element is missing")]
    if isinstance(kind, jsonschema_rs.ValidationErrorKind.AdditionalProperties):
        return [
            ValidationIssue(f"{path}.{_element(name)}", "is not an element of this type in FHIR R4")
            for name in kind.unexpected
        ]
    if isinstance(kind, jsonschema_rs.ValidationErrorKind.FalseSchema):  # a nested resource
        if not isinstance(at, dict):
            return [ValidationIssue(path, f"{_show(at)} is not a resource (a JSON object)")]
        return [] if is_valid_resource(at) else _resource_issues(at, path)
    if isinstance(kind, jsonschema_rs.ValidationErrorKind.Pattern) and len(schema_path) == 3:
        primitive = str(schema_path[1])
        if primitive == "id" and isinstance(at, str) and len(at) > 64:
            return [ValidationIssue(path, f"id is {len(at)} characters long (at most 64)")]
        return [ValidationIssue(path, f"{_show(at)} is not a valid FHIR {primitive}")]
    if isinstance(kind, jsonschema_rs.ValidationErrorKind.Enum):
        options = ", ".join(str(o) for o in kind.options)
        return [ValidationIssue(path, f"{_show(at)} is not one of the codes {options}"[:300])]
    if isinstance(kind, jsonschema_rs.ValidationErrorKind.Type):
        expected = " or ".join(str(t) for t in kind.types)
        return [ValidationIssue(path, f"{_show(at)} is not of JSON type {expected}")]
    message = f"{error.message}"
    if len(message) > MAX_MESSAGE_CHARS:
        message = message[: MAX_MESSAGE_CHARS - 1] + "…"
    return [ValidationIssue(path, f"{message} ({keyword})" if keyword else message)]


def _instance_at(document: Any, parts: list[str | int]) -> Any:
    node = document
    for part in parts:
        node = node[part]
    return node


def _resource_issues(resource: dict[str, Any], prefix: str | None = None) -> list[ValidationIssue]:
    resource_type = resource.get("resourceType")
    if not isinstance(resource_type, str) or not resource_type:
        return [
            ValidationIssue(prefix or "resourceType", "resourceType is missing or not a string")
        ]
    where = prefix if prefix is not None else resource_type
    if resource_type not in _schema().resource_types:
        return [ValidationIssue(where, f"{_show(resource_type)} is not a FHIR R4 resource type")]
    import jsonschema_rs

    errors = list(_type_validator(resource_type).iter_errors(resource))
    # A value of the wrong JSON type also fails its primitive's pattern: name the type only.
    mistyped = {
        tuple(e.instance_path)
        for e in errors
        if isinstance(e.kind, jsonschema_rs.ValidationErrorKind.Type)
    }
    issues, last = _top_level_issues(resource, resource_type, where)
    for error in errors:
        parts = tuple(error.instance_path)
        if parts in mistyped and not isinstance(error.kind, jsonschema_rs.ValidationErrorKind.Type):
            continue
        issues.extend(_issues_of(error, where, _instance_at(resource, list(parts))))
    return issues + last


def is_valid_resource(resource: dict[str, Any]) -> bool:
    """True when the resource is valid FHIR R4 (about a microsecond or a few: no details)."""
    return bool(_validator_for(resource_types_in(resource)).is_valid(resource))


def validate_resource(resource: dict[str, Any]) -> list[ValidationIssue]:
    """Every R4 structural problem of one resource ([] when it is valid)."""
    if is_valid_resource(resource):
        return []
    issues = _resource_issues(resource)
    if not issues:  # the root oneOf and the type's definition disagree: never silent
        issues = [ValidationIssue(str(resource.get("resourceType")), "invalid FHIR R4 resource")]
    return issues


if __name__ == "__main__":  # python -m probe.checks.fhir_schema: remake the validation schema
    print(write_validation_schema())
