"""The discovery documents and error bodies a simulated payer serves, per archetype.

Pure functions from a payer's URLs and Behaviour to JSON-able dicts (or HTML text): the
CapabilityStatement (R4 4.0.1, or the 4.0.0 / STU3 / DSTU2 variants; with the types of
`extra_types` and the search-parameter combinations of `category_required`), the SMART
configuration (complete, two-field, or an OpenID document at the SMART path), OperationOutcomes
(some without `issue.code`, as real servers send them) and gateway HTML pages.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from probe.fleet.archetypes import Behaviour
from probe.fleet.extras import EXTRA_TYPES

C4BB_CS = "http://hl7.org/fhir/us/carin-bb/CapabilityStatement/c4bb"
US_CORE_CS = "http://hl7.org/fhir/us/core/CapabilityStatement/us-core-server"
OAUTH_URIS = "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris"
SECURITY_SYSTEM = "http://terminology.hl7.org/CodeSystem/restful-security-service"
OLD_SECURITY_SYSTEM = "http://hl7.org/fhir/restful-security-service"
C4BB = "http://hl7.org/fhir/us/carin-bb/StructureDefinition/"
EVERYTHING_DEF = "http://hl7.org/fhir/OperationDefinition/Patient-everything"
FLEET_DATE = "2025-06-01T00:00:00Z"
COMBINATION_URL = (
    "http://hl7.org/fhir/StructureDefinition/capabilitystatement-search-parameter-combination"
)


@dataclass(frozen=True, slots=True)
class PayerUrls:
    """The absolute URLs one payer's documents name (as seen from the requesting origin)."""

    base: str
    authorize: str
    token: str
    revoke: str
    jwks: str
    name: str


_RESOURCES: list[tuple[str, list[str], list[tuple[str, str]]]] = [
    ("Patient", [C4BB + "C4BB-Patient"], [("_id", "token"), ("identifier", "token")]),
    (
        "Coverage",
        [C4BB + "C4BB-Coverage"],
        [("_id", "token"), ("patient", "reference"), ("beneficiary", "reference")],
    ),
    (
        "ExplanationOfBenefit",
        [
            C4BB + "C4BB-ExplanationOfBenefit-Inpatient-Institutional",
            C4BB + "C4BB-ExplanationOfBenefit-Outpatient-Institutional",
            C4BB + "C4BB-ExplanationOfBenefit-Professional-NonClinician",
            C4BB + "C4BB-ExplanationOfBenefit-Pharmacy",
        ],
        [
            ("_id", "token"),
            ("patient", "reference"),
            ("type", "token"),
            ("_lastUpdated", "date"),
            ("identifier", "token"),
            ("service-date", "date"),
            ("billable-period-start", "date"),
            ("service-start-date", "date"),
        ],
    ),
    ("Practitioner", [C4BB + "C4BB-Practitioner"], [("_id", "token")]),
    ("Organization", [C4BB + "C4BB-Organization"], [("_id", "token")]),
    ("Location", [], [("_id", "token")]),
    ("Condition", [], [("patient", "reference")]),
    ("Observation", [], [("patient", "reference")]),
    ("Procedure", [], [("patient", "reference")]),
    ("Immunization", [], [("patient", "reference")]),
    ("MedicationRequest", [], [("patient", "reference")]),
    ("AllergyIntolerance", [], [("patient", "reference")]),
]


def _security(urls: PayerUrls, system: str) -> dict[str, Any]:
    return {
        "extension": [
            {
                "url": OAUTH_URIS,
                "extension": [
                    {"url": "authorize", "valueUri": urls.authorize},
                    {"url": "token", "valueUri": urls.token},
                    {"url": "revoke", "valueUri": urls.revoke},
                ],
            }
        ],
        "cors": True,
        "service": [
            {
                "coding": [{"system": system, "code": "SMART-on-FHIR", "display": "SMART-on-FHIR"}],
                "text": "OAuth2 using SMART-on-FHIR profile (see http://docs.smarthealthit.org)",
            }
        ],
    }


def _combination(*required: str) -> dict[str, Any]:
    """A US Core search-parameter-combination extension requiring these parameters together."""
    return {
        "url": COMBINATION_URL,
        "extension": [{"url": "required", "valueString": name} for name in required],
    }


def _rest_resources(everything: bool, behaviour: Behaviour | None = None) -> list[dict[str, Any]]:
    resources = list(_RESOURCES)
    if behaviour is not None and behaviour.extra_types is not None:
        resources += [(rtype, [], [(param, "reference")]) for rtype, param in EXTRA_TYPES.items()]
    category = behaviour.category_required if behaviour is not None else None
    out: list[dict[str, Any]] = []
    for rtype, profiles, params in resources:
        entry: dict[str, Any] = {"type": rtype}
        if rtype == "Observation" and category is not None:
            params = [*params, ("category", "token"), ("code", "token")]
            if category.declare_combination:
                entry["extension"] = [
                    _combination("patient", "category"),
                    _combination("patient", "code"),
                ]
        if profiles:
            entry["supportedProfile"] = profiles
        entry["interaction"] = [{"code": "read"}, {"code": "search-type"}]
        entry["searchParam"] = [{"name": n, "type": t} for n, t in params]
        if rtype == "Patient" and everything:
            entry["operation"] = [{"name": "everything", "definition": EVERYTHING_DEF}]
        out.append(entry)
    return out


def capability_statement(urls: PayerUrls, behaviour: Behaviour) -> dict[str, Any]:
    """The document `/metadata` answers with (the variant the payer's archetypes call for)."""
    everything = behaviour.everything_unsupported is None
    if behaviour.dstu2_conformance:
        return {
            "resourceType": "Conformance",
            "id": "conformance",
            "name": f"{urls.name} FHIR DSTU2 Conformance",
            "status": "active",
            "publisher": urls.name,
            "date": "2017-03-01",
            "kind": "instance",
            "software": {"name": "Fleet Legacy Server", "version": "0.9"},
            "implementation": {"description": urls.name, "url": urls.base},
            "fhirVersion": "1.0.2",
            "acceptUnknown": "both",
            "format": ["application/json+fhir", "application/xml+fhir"],
            "rest": [
                {
                    "mode": "server",
                    "security": _security(urls, OLD_SECURITY_SYSTEM),
                    "resource": [
                        {"type": r["type"], "interaction": r["interaction"]}
                        for r in _rest_resources(False)
                    ],
                }
            ],
        }
    stu3 = behaviour.legacy_stu3
    version = "3.0.2" if stu3 else "4.0.0" if behaviour.r4_400 else "4.0.1"
    resources = _rest_resources(everything, behaviour)
    if stu3:
        for r in resources:
            profiles = r.pop("supportedProfile", None)
            if profiles:
                r["profile"] = {"reference": profiles[0]}
    statement: dict[str, Any] = {
        "resourceType": "CapabilityStatement",
        "id": "fleet-capability",
        "url": urls.base + "/metadata",
        "version": "1.0.0",
        "name": "FleetPatientAccessCapabilityStatement",
        "title": f"{urls.name} Patient Access API",
        "status": "active",
        "date": "2025-06-01",
        "publisher": urls.name,
        "description": f"Patient Access API of {urls.name} (simulated by probe fleet)",
        "kind": "instance",
        "software": {"name": "probe fleet", "version": "1.0"},
        "implementation": {"description": f"{urls.name} FHIR R4 server", "url": urls.base},
        "fhirVersion": version,
        "format": ["json", "application/fhir+json"],
        "rest": [
            {
                "mode": "server",
                "security": _security(urls, OLD_SECURITY_SYSTEM if stu3 else SECURITY_SYSTEM),
                "resource": resources,
            }
        ],
    }
    if not stu3:
        statement["instantiates"] = [C4BB_CS, US_CORE_CS]
        statement["implementationGuide"] = [
            "http://hl7.org/fhir/us/carin-bb/ImplementationGuide/hl7.fhir.us.carin-bb"
        ]
    else:
        statement["acceptUnknown"] = "both"
    return statement


SMART_CAPABILITIES = [
    "launch-standalone",
    "client-public",
    "client-confidential-symmetric",
    "client-confidential-asymmetric",
    "context-standalone-patient",
    "permission-offline",
    "permission-patient",
    "permission-v1",
    "permission-v2",
    "sso-openid-connect",
]


def smart_configuration(urls: PayerUrls, behaviour: Behaviour) -> dict[str, Any]:
    """The `.well-known/smart-configuration` document (complete, minimal, or OIDC)."""
    if behaviour.smart_minimal:
        return {"authorization_endpoint": urls.authorize, "token_endpoint": urls.token}
    if behaviour.oidc_at_smart_path:
        return {
            "issuer": urls.base + "/.well-known/openid-configuration",
            "authorization_endpoint": urls.authorize,
            "token_endpoint": urls.token,
            "jwks_uri": urls.jwks,
            "response_types_supported": ["code", "token"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["ES384"],
            "scopes_supported": ["openid", "email", "phone", "profile"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            "revocation_endpoint": urls.revoke,
        }
    return {
        "issuer": urls.base,
        "jwks_uri": urls.jwks,
        "authorization_endpoint": urls.authorize,
        "token_endpoint": urls.token,
        "revocation_endpoint": urls.revoke,
        "token_endpoint_auth_methods_supported": [
            "client_secret_basic",
            "client_secret_post",
            "private_key_jwt",
            "none",
        ],
        "token_endpoint_auth_signing_alg_values_supported": ["RS384", "ES384"],
        "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
        "scopes_supported": [
            "openid",
            "fhirUser",
            "launch/patient",
            "offline_access",
            "patient/*.read",
            "patient/*.rs",
            "system/*.read",
        ],
        "response_types_supported": ["code"],
        "capabilities": list(SMART_CAPABILITIES),
        "code_challenge_methods_supported": ["S256"],
    }


def operation_outcome(
    diagnostics: str, code: str | None = "processing", severity: str = "error"
) -> dict[str, Any]:
    """An OperationOutcome; `code=None` leaves out `issue.code` like several real servers."""
    issue: dict[str, Any] = {"severity": severity}
    if code is not None:
        issue["code"] = code
    issue["diagnostics"] = diagnostics
    return {"resourceType": "OperationOutcome", "issue": [issue]}


def hapi_not_known(rtype: str, rid: str) -> dict[str, Any]:
    """The HAPI-2001 body some servers answer with status 500 for an unknown id."""
    message = f"HAPI-2001: Resource {rtype}/{rid} is not known"
    return {
        "resourceType": "OperationOutcome",
        "text": {
            "status": "generated",
            "div": '<div xmlns="http://www.w3.org/1999/xhtml"><h1>Operation Outcome</h1>'
            f"<pre>{message}</pre></div>",
        },
        "issue": [{"severity": "error", "code": "processing", "diagnostics": message}],
    }


def tomcat_page(status: int, message: str) -> str:
    """An application-server error page like real gateways send instead of OperationOutcome."""
    reason = {401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 503: "Service Unavailable"}
    title = f"HTTP Status {status} \u2013 {reason.get(status, 'Error')}"
    return (
        f'<!doctype html><html lang="en"><head><title>{title}</title></head><body>'
        f"<h1>{title}</h1><hr/><p><b>Type</b> Status Report</p><p><b>Message</b> {message}</p>"
        "<hr/><h3>Apache Tomcat/9.0.94</h3></body></html>"
    )


def login_page(name: str, action: str, hidden: dict[str, str]) -> str:
    """The member sign-in page a gateway shows at /metadata (`html_login`); see journeys.py."""
    fields = "".join(
        f'<input type="hidden" name="{k}" value="{_escape(v)}"/>' for k, v in hidden.items()
    )
    return (
        f"<!DOCTYPE html><html><head><title>Sign in - {_escape(name)}</title></head><body>"
        f"<h1>{_escape(name)} member sign in</h1>"
        f'<form method="post" action="{_escape(action)}">{fields}'
        '<label>Username <input name="username"/></label>'
        '<label>Password <input name="password" type="password"/></label>'
        '<button type="submit">Sign in</button></form></body></html>'
    )


def _escape(text: str) -> str:
    return (
        text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")
    )
