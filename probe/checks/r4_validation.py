"""Validating FHIR R4 (4.0.1) resources: the public API the checks and the sync use.

The validation itself is :mod:`probe.checks.fhir_schema`: the official HL7 FHIR R4 JSON Schema
run by jsonschema-rs, completed with the R4 cardinality rules the schema cannot express. It
replaced typed parsing with fhir.resources' R4B models (fhir.resources ships no R4), which cost
about 100-126 µs per resource, missed what R4B changed from R4 (ids over 64 characters, codes
outside required value sets) and raised on resource types R4 does not define (the STU3
``ReferralRequest`` contained in Blue Button v1 EOBs). The comparison is in bench/RESULTS.md
("Validation", ``bench/validate.py``).

Validation never raises: a resource type R4 does not define is an issue, and so is an
exception inside the validator (a finding about the resource, never a crash of the sync).
"""

from __future__ import annotations

from typing import Any

from probe.checks.fhir_schema import ValidationIssue, is_valid_resource, validate_resource

__all__ = ["ValidationIssue", "can_validate", "is_valid_r4", "validate_r4"]


def can_validate(resource_type: str) -> bool:
    """True when a resource of this type can be judged: any non-empty type (one R4 does not
    define is judged invalid, with an issue naming it)."""
    return isinstance(resource_type, str) and bool(resource_type)


def is_valid_r4(resource: dict[str, Any]) -> bool:
    """True when the resource is valid FHIR R4; False when not, or when the validator fails on
    it (``validate_r4`` then says why, with at least one issue).

    A microsecond or a few per resource, valid or not: naming the problems of an invalid one
    (``validate_r4``) costs from tens of µs to milliseconds for a large resource with many, so a
    caller that only counts invalid resources asks this and names the problems of a sample.
    """
    try:
        return is_valid_resource(resource)
    except Exception:  # validate_r4 reports it as an issue
        return False


def validate_r4(resource: dict[str, Any]) -> list[ValidationIssue]:
    """Validation errors of a resource against FHIR R4; [] for a valid resource.

    Never raises: an unknown resourceType or a failure inside the validator is returned as an
    issue at the resource's root.
    """
    try:
        return validate_resource(resource)
    except Exception as exc:  # a finding about this resource, never a crash of the caller
        where = resource.get("resourceType") if isinstance(resource, dict) else None
        text = str(exc).splitlines()[0][:200] if str(exc) else ""
        return [
            ValidationIssue(
                where if isinstance(where, str) and where else "resource",
                f"the validator failed on this resource ({type(exc).__name__}: {text})",
            )
        ]
