"""Realistic discovery documents written for these tests (modelled on real payer servers).

Each function returns a fresh dict so a test can break one field at a time.
"""

from __future__ import annotations

from typing import Any

BASE = "https://fhir.payer.example/r4"
AUTHORIZE = "https://auth.payer.example/oauth2/authorize"
TOKEN = "https://auth.payer.example/oauth2/token"
C4BB = "http://hl7.org/fhir/us/carin-bb/StructureDefinition/"


def capability_statement() -> dict[str, Any]:
    """A complete CARIN BB + US Core payer CapabilityStatement (R4 4.0.1)."""

    def resource(
        rtype: str,
        profiles: list[str],
        ops: list[dict[str, str]] | None = None,
        params: tuple[str, ...] = (),
    ) -> dict[str, Any]:
        r: dict[str, Any] = {
            "type": rtype,
            "supportedProfile": profiles,
            "interaction": [{"code": "read"}, {"code": "search-type"}],
            "searchParam": [{"name": name, "type": "token"} for name in ("patient", *params)],
        }
        if ops:
            r["operation"] = ops
        return r

    return {
        "resourceType": "CapabilityStatement",
        "id": "payer-patient-access",
        "status": "active",
        "date": "2025-03-01T00:00:00Z",
        "publisher": "Example Health Plan",
        "kind": "instance",
        "instantiates": ["http://hl7.org/fhir/us/carin-bb/CapabilityStatement/c4bb|2.0.0"],
        "software": {"name": "Example FHIR Gateway", "version": "5.2"},
        "implementation": {"description": "Patient Access API", "url": BASE},
        "fhirVersion": "4.0.1",
        "format": ["json", "application/fhir+json"],
        "rest": [
            {
                "mode": "server",
                "security": {
                    "extension": [
                        {
                            "url": "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris",
                            "extension": [
                                {"url": "authorize", "valueUri": AUTHORIZE},
                                {"url": "token", "valueUri": TOKEN},
                            ],
                        }
                    ],
                    "service": [
                        {
                            "coding": [
                                {
                                    "system": "http://terminology.hl7.org/CodeSystem/restful-security-service",
                                    "code": "SMART-on-FHIR",
                                }
                            ]
                        }
                    ],
                },
                # _id and _lastUpdated declared once, for every resource type
                "searchParam": [
                    {"name": "_id", "type": "token"},
                    {"name": "_lastUpdated", "type": "date"},
                ],
                "resource": [
                    resource(
                        "ExplanationOfBenefit",
                        [
                            C4BB + "C4BB-ExplanationOfBenefit-Inpatient-Institutional",
                            C4BB + "C4BB-ExplanationOfBenefit-Professional-NonClinician",
                            C4BB + "C4BB-ExplanationOfBenefit-Pharmacy",
                        ],
                        params=(
                            "identifier",
                            "type",
                            "service-date",
                            "billable-period-start",
                            "service-start-date",
                        ),
                    ),
                    resource("Coverage", [C4BB + "C4BB-Coverage"]),
                    resource(
                        "Patient",
                        [
                            C4BB + "C4BB-Patient",
                            "http://hl7.org/fhir/us/core/StructureDefinition/us-core-patient",
                        ],
                        [
                            {
                                "name": "everything",
                                "definition": "http://hl7.org/fhir/OperationDefinition/Patient-everything",
                            }
                        ],
                    ),
                    resource("Organization", [C4BB + "C4BB-Organization"]),
                    resource("Practitioner", [C4BB + "C4BB-Practitioner"]),
                    resource(
                        "Condition",
                        ["http://hl7.org/fhir/us/core/StructureDefinition/us-core-condition"],
                    ),
                    resource(
                        "Observation",
                        ["http://hl7.org/fhir/us/core/StructureDefinition/us-core-observation-lab"],
                    ),
                    resource(
                        "Immunization",
                        ["http://hl7.org/fhir/us/core/StructureDefinition/us-core-immunization"],
                    ),
                ],
            }
        ],
    }


def smart_configuration() -> dict[str, Any]:
    """A complete SMART App Launch 2.x configuration for a payer's patient-access server."""
    return {
        "issuer": "https://auth.payer.example",
        "jwks_uri": "https://auth.payer.example/.well-known/jwks.json",
        "authorization_endpoint": AUTHORIZE,
        "token_endpoint": TOKEN,
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "private_key_jwt"],
        "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
        "registration_endpoint": "https://auth.payer.example/register",
        "scopes_supported": [
            "openid",
            "fhirUser",
            "launch/patient",
            "patient/*.rs",
            "offline_access",
        ],
        "response_types_supported": ["code"],
        "management_endpoint": "https://auth.payer.example/manage",
        "introspection_endpoint": "https://auth.payer.example/oauth2/introspect",
        "revocation_endpoint": "https://auth.payer.example/oauth2/revoke",
        "capabilities": [
            "launch-standalone",
            "client-public",
            "client-confidential-symmetric",
            "sso-openid-connect",
            "context-standalone-patient",
            "permission-offline",
            "permission-patient",
            "permission-v2",
        ],
        "code_challenge_methods_supported": ["S256"],
    }


def oidc_configuration() -> dict[str, Any]:
    """An OpenID Connect discovery document, as some payers serve at the SMART path."""
    return {
        "issuer": "https://login.payer.example/.well-known/openid-configuration",
        "authorization_endpoint": AUTHORIZE,
        "token_endpoint": TOKEN,
        "jwks_uri": "https://login.payer.example/jwks",
        "response_types_supported": ["code", "id_token"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "response_modes_supported": ["query", "form_post"],
    }


LOGIN_PAGE = b"""<!DOCTYPE html>
<html><head><title>Member Login | Example Health Plan</title></head>
<body><form method="post" action="/login"><input name="user"><input type="password" name="pw">
</form></body></html>"""
