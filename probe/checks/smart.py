"""Checks on `GET {base}/.well-known/smart-configuration` (SMART App Launch 2.x discovery)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from probe.checks.observation import DocumentObservation, skipped, verdict
from probe.checks.transport import bound_failure, transport_failure
from probe.http.body import excerpt, parse_json
from probe.models import CheckResult, CheckSpec, Exchange, Severity, Status

_SMART = "SMART App Launch 2.2.0 (https://hl7.org/fhir/smart-app-launch/STU2.2/conformance.html"

REACHABLE = CheckSpec(
    "smart.reachable",
    "SMART configuration is served",
    Severity.REQUIRED,
    f"{_SMART}#using-well-known): servers SHALL serve {{base}}/.well-known/smart-configuration",
)
IS_JSON = CheckSpec(
    "smart.is_json",
    "SMART configuration is a JSON object",
    Severity.REQUIRED,
    f"{_SMART}#response): JSON document, Content-Type application/json",
)
REQUIRED_FIELDS = CheckSpec(
    "smart.required_fields",
    "Required SMART metadata fields present",
    Severity.REQUIRED,
    f"{_SMART}#metadata): REQUIRED token_endpoint, grant_types_supported, capabilities, "
    "code_challenge_methods_supported",
)
CONDITIONAL_FIELDS = CheckSpec(
    "smart.conditional_fields",
    "Conditionally required SMART metadata fields present",
    Severity.REQUIRED,
    f"{_SMART}#metadata): CONDITIONAL authorization_endpoint (with launch-ehr or "
    "launch-standalone), issuer and jwks_uri (with sso-openid-connect)",
)
FIELD_FORMS = CheckSpec(
    "smart.field_forms",
    "SMART metadata fields have their defined forms",
    Severity.REQUIRED,
    f"{_SMART}#metadata): grant_types_supported, capabilities, "
    "code_challenge_methods_supported and scopes_supported are arrays; endpoints are absolute "
    "URLs",
)
AUTHORIZATION_CODE = CheckSpec(
    "smart.authorization_code_grant",
    "The authorization code grant is offered",
    Severity.REQUIRED,
    f"{_SMART}#metadata): grant_types_supported lists authorization_code when SMART App Launch "
    "is supported (patient apps use it); CMS-9115-F Patient Access",
)
RECOMMENDED_FIELDS = CheckSpec(
    "smart.recommended_fields",
    "Recommended SMART metadata fields present",
    Severity.RECOMMENDED,
    f"{_SMART}#metadata): RECOMMENDED scopes_supported, response_types_supported, "
    "management_endpoint, introspection_endpoint, revocation_endpoint",
)
PKCE_S256 = CheckSpec(
    "smart.pkce_s256",
    "PKCE S256 offered, plain not",
    Severity.REQUIRED,
    f"{_SMART}#metadata) code_challenge_methods_supported SHALL include S256 and SHALL NOT "
    "include plain; app-launch.html#considerations-for-pkce-support",
)
MATCHES_CAPABILITY = CheckSpec(
    "smart.matches_capability",
    "Endpoints agree with the CapabilityStatement",
    Severity.REQUIRED,
    f"{_SMART}#declaring-support-for-oauth2-endpoints): oauth-uris in the CapabilityStatement, "
    "when present, SHALL match the .well-known endpoints",
)
PATIENT_ACCESS_CAPABILITIES = CheckSpec(
    "smart.patient_access_capabilities",
    "Capabilities for standalone patient apps",
    Severity.RECOMMENDED,
    f"{_SMART}#capability-sets): Patient Access for Standalone Apps: launch-standalone, "
    "client-public or client-confidential-symmetric, context-standalone-patient, "
    "permission-patient; CARIN BB 2.x adds permission-offline",
)

SPECS = (
    REACHABLE,
    IS_JSON,
    REQUIRED_FIELDS,
    CONDITIONAL_FIELDS,
    FIELD_FORMS,
    AUTHORIZATION_CODE,
    RECOMMENDED_FIELDS,
    PKCE_S256,
    MATCHES_CAPABILITY,
    PATIENT_ACCESS_CAPABILITIES,
)

REQUIRED = (
    "token_endpoint",
    "grant_types_supported",
    "capabilities",
    "code_challenge_methods_supported",
)
RECOMMENDED = (
    "scopes_supported",
    "response_types_supported",
    "management_endpoint",
    "introspection_endpoint",
    "revocation_endpoint",
)
_URL_FIELDS = (
    "authorization_endpoint",
    "token_endpoint",
    "registration_endpoint",
    "management_endpoint",
    "introspection_endpoint",
    "revocation_endpoint",
    "jwks_uri",
)
_OIDC_ONLY = (
    "response_modes_supported",
    "subject_types_supported",
    "id_token_signing_alg_values_supported",
)


@dataclass(frozen=True, slots=True)
class SmartObservation(DocumentObservation):
    """What the SMART well-known URL returned (every attempt) and how its body parsed."""

    @property
    def document(self) -> dict[str, Any] | None:
        """The configuration object when a 2xx answer carried a JSON object."""
        return self.parsed.data if self.exchange.ok else None


def observe(base_url: str, attempts: list[Exchange], *, max_depth: int = 64) -> SmartObservation:
    """Bundle the attempts at the well-known URL with the parsed final body (nesting capped)."""
    depth = min(64, max_depth) if max_depth else 64
    return SmartObservation(base_url, tuple(attempts), parse_json(attempts[-1], max_depth=depth))


def check_reachable(obs: SmartObservation) -> CheckResult:
    """smart.reachable: a 2xx answer at the well-known path (failures named)."""
    ex = obs.exchange
    if ex.status is None:
        return verdict(REACHABLE, Status.FAIL, transport_failure(ex), obs)
    bound = bound_failure(ex)
    if bound is not None:
        return verdict(REACHABLE, Status.FAIL, bound, obs)
    if ex.status == 404:
        return verdict(
            REACHABLE,
            Status.FAIL,
            "HTTP 404: no SMART configuration; apps cannot discover the authorization endpoints",
            obs,
        )
    if ex.status in (401, 403):
        return verdict(
            REACHABLE, Status.FAIL, f"HTTP {ex.status}: the SMART configuration must be public", obs
        )
    if not ex.ok:
        return verdict(REACHABLE, Status.FAIL, f"HTTP {ex.status}", obs)
    if ex.redirects:
        return verdict(REACHABLE, Status.WARN, f"served after redirect to {ex.final_url}", obs)
    return verdict(REACHABLE, Status.PASS, f"HTTP {ex.status} in {ex.latency_ms:.0f} ms", obs)


def check_is_json(obs: SmartObservation) -> CheckResult:
    """smart.is_json: the body is a JSON object served as application/json."""
    ex = obs.exchange
    if not ex.ok:
        return skipped(IS_JSON, obs, "no 2xx response")
    if obs.parsed.data is None:
        return verdict(
            IS_JSON,
            Status.FAIL,
            f"not a JSON object: {obs.parsed.detail}",
            obs,
            excerpt=excerpt(ex.body) or None,
            title=obs.parsed.html_title,
            body_problem=obs.parsed.problem,
        )
    content_type = (ex.content_type or "").split(";")[0].strip().lower()
    if content_type not in (
        "application/json",
        "application/fhir+json",
    ) and not content_type.endswith("+json"):
        return verdict(
            IS_JSON,
            Status.WARN,
            f"JSON object served as {content_type or 'no content type'}, expected application/json",
            obs,
        )
    return verdict(IS_JSON, Status.PASS, f"JSON object ({content_type})", obs)


def _absolute(url: Any) -> bool:
    if not isinstance(url, str):
        return False
    parts = urlsplit(url)
    return parts.scheme in ("https", "http") and bool(parts.netloc)


def check_required_fields(obs: SmartObservation) -> CheckResult:
    """smart.required_fields: the REQUIRED fields are present."""
    doc = obs.document
    if doc is None:
        return skipped(REQUIRED_FIELDS, obs, "no SMART configuration")
    missing = [f for f in REQUIRED if f not in doc or doc[f] in (None, "", [])]
    evidence: dict[str, Any] = {"missing_required": missing or None, "present": sorted(doc)}
    if missing:
        hint = ""
        if "capabilities" in missing and any(k in doc for k in _OIDC_ONLY):
            hint = (
                " (this looks like an OpenID Connect discovery document, not a SMART configuration)"
            )
        return verdict(
            REQUIRED_FIELDS,
            Status.FAIL,
            f"missing required {', '.join(missing)}{hint}",
            obs,
            expected=list(REQUIRED),
            **evidence,
        )
    return verdict(REQUIRED_FIELDS, Status.PASS, "all required fields present", obs, **evidence)


def check_conditional_fields(obs: SmartObservation) -> CheckResult:
    """smart.conditional_fields: fields required by the capabilities the server declares."""
    doc = obs.document
    if doc is None:
        return skipped(CONDITIONAL_FIELDS, obs, "no SMART configuration")
    raw_caps = doc.get("capabilities")
    capabilities: list[Any] = raw_caps if isinstance(raw_caps, list) else []
    conditional: list[str] = []
    if {"launch-standalone", "launch-ehr"} & set(capabilities) and not doc.get(
        "authorization_endpoint"
    ):
        conditional.append("authorization_endpoint (required by launch-standalone/launch-ehr)")
    if "sso-openid-connect" in capabilities:
        conditional += [
            f"{f} (required by sso-openid-connect)"
            for f in ("issuer", "jwks_uri")
            if not doc.get(f)
        ]
    if conditional:
        return verdict(
            CONDITIONAL_FIELDS,
            Status.FAIL,
            "missing " + "; ".join(conditional),
            obs,
            missing_conditional=conditional,
        )
    return verdict(
        CONDITIONAL_FIELDS,
        Status.PASS,
        "every field the declared capabilities require is present",
        obs,
    )


def check_field_forms(obs: SmartObservation) -> CheckResult:
    """smart.field_forms: list fields are arrays and endpoint fields absolute URLs."""
    doc = obs.document
    if doc is None:
        return skipped(FIELD_FORMS, obs, "no SMART configuration")
    wrong_types = [
        f
        for f in (
            "grant_types_supported",
            "capabilities",
            "code_challenge_methods_supported",
            "scopes_supported",
        )
        if f in doc and not isinstance(doc[f], list)
    ]
    relative = [f for f in _URL_FIELDS if f in doc and doc[f] and not _absolute(doc[f])]
    problems: list[str] = []
    if wrong_types:
        problems.append(f"not arrays: {', '.join(wrong_types)}")
    if relative:
        problems.append(f"not absolute URLs: {', '.join(relative)}")
    if problems:
        return verdict(
            FIELD_FORMS,
            Status.FAIL,
            "; ".join(problems),
            obs,
            not_arrays=wrong_types or None,
            not_absolute=relative or None,
        )
    return verdict(FIELD_FORMS, Status.PASS, "arrays are arrays, endpoints absolute URLs", obs)


def check_authorization_code(obs: SmartObservation) -> CheckResult:
    """smart.authorization_code_grant: grant_types_supported lists authorization_code."""
    doc = obs.document
    if doc is None:
        return skipped(AUTHORIZATION_CODE, obs, "no SMART configuration")
    grants = doc.get("grant_types_supported")
    if not isinstance(grants, list):
        return skipped(AUTHORIZATION_CODE, obs, "grant_types_supported is not an array")
    ptr = {"pointer": "/grant_types_supported", "actual": grants}
    if "authorization_code" not in grants:
        return verdict(
            AUTHORIZATION_CODE,
            Status.FAIL,
            f"grant_types_supported {grants} lacks authorization_code",
            obs,
            **ptr,
        )
    return verdict(AUTHORIZATION_CODE, Status.PASS, "authorization_code offered", obs, **ptr)


def check_recommended_fields(obs: SmartObservation) -> CheckResult:
    """smart.recommended_fields: the RECOMMENDED fields are present."""
    doc = obs.document
    if doc is None:
        return skipped(RECOMMENDED_FIELDS, obs, "no SMART configuration")
    missing = [f for f in RECOMMENDED if f not in doc]
    if missing:
        return verdict(
            RECOMMENDED_FIELDS,
            Status.WARN,
            f"recommended missing: {', '.join(missing)}",
            obs,
            missing_recommended=missing,
        )
    return verdict(RECOMMENDED_FIELDS, Status.PASS, "all recommended fields present", obs)


def check_pkce_s256(obs: SmartObservation) -> CheckResult:
    """smart.pkce_s256: code_challenge_methods_supported includes S256 and not plain."""
    doc = obs.document
    if doc is None:
        return skipped(PKCE_S256, obs, "no SMART configuration")
    methods = doc.get("code_challenge_methods_supported")
    ptr = {"pointer": "/code_challenge_methods_supported", "actual": methods}
    if not isinstance(methods, list) or not methods:
        return verdict(
            PKCE_S256, Status.FAIL, "code_challenge_methods_supported is missing", obs, **ptr
        )
    if "S256" not in methods:
        return verdict(PKCE_S256, Status.FAIL, f"S256 not offered (offers {methods})", obs, **ptr)
    if "plain" in methods:
        return verdict(
            PKCE_S256, Status.FAIL, "offers the 'plain' method, which SMART forbids", obs, **ptr
        )
    return verdict(PKCE_S256, Status.PASS, "S256 offered, plain not", obs, **ptr)


def _same_endpoint(a: str, b: str) -> bool:
    return a.strip().rstrip("/") == b.strip().rstrip("/")


def check_matches_capability(obs: SmartObservation, capability_uris: dict[str, str]) -> CheckResult:
    """smart.matches_capability: authorize/token agree with the CapabilityStatement's oauth-uris."""
    doc = obs.document
    if doc is None:
        return skipped(MATCHES_CAPABILITY, obs, "no SMART configuration")
    if not capability_uris:
        return skipped(
            MATCHES_CAPABILITY, obs, "the CapabilityStatement has no oauth-uris extension"
        )
    pairs = (("authorize", "authorization_endpoint"), ("token", "token_endpoint"))
    mismatches = []
    compared = {}
    for cap_key, smart_key in pairs:
        cap_value, smart_value = capability_uris.get(cap_key), doc.get(smart_key)
        if cap_value and isinstance(smart_value, str):
            compared[smart_key] = {
                "capability_statement": cap_value,
                "smart_configuration": smart_value,
            }
            if not _same_endpoint(cap_value, smart_value):
                mismatches.append(f"{smart_key} {smart_value} != oauth-uris {cap_key} {cap_value}")
    if not compared:
        return skipped(MATCHES_CAPABILITY, obs, "no endpoint present in both documents")
    if mismatches:
        return verdict(
            MATCHES_CAPABILITY, Status.FAIL, "; ".join(mismatches), obs, compared=compared
        )
    return verdict(
        MATCHES_CAPABILITY,
        Status.PASS,
        f"{' and '.join(compared)} agree with the CapabilityStatement",
        obs,
        compared=compared,
    )


def check_patient_access_capabilities(obs: SmartObservation) -> CheckResult:
    """smart.patient_access_capabilities: the standalone patient-app capability set."""
    doc = obs.document
    if doc is None:
        return skipped(PATIENT_ACCESS_CAPABILITIES, obs, "no SMART configuration")
    caps = doc.get("capabilities")
    if not isinstance(caps, list):
        return skipped(PATIENT_ACCESS_CAPABILITIES, obs, "no capabilities array")
    needed = ["launch-standalone", "context-standalone-patient", "permission-patient"]
    missing = [c for c in needed if c not in caps]
    if not {"client-public", "client-confidential-symmetric"} & set(caps):
        missing.append("client-public or client-confidential-symmetric")
    offline = "permission-offline" in caps
    evidence = {"capabilities": caps, "missing": missing or None, "permission_offline": offline}
    if missing:
        return verdict(
            PATIENT_ACCESS_CAPABILITIES,
            Status.FAIL,
            f"missing {', '.join(missing)}",
            obs,
            **evidence,
        )
    if not offline:
        return verdict(
            PATIENT_ACCESS_CAPABILITIES,
            Status.WARN,
            "patient standalone set complete but no permission-offline (no refresh tokens)",
            obs,
            **evidence,
        )
    return verdict(
        PATIENT_ACCESS_CAPABILITIES,
        Status.PASS,
        "standalone patient access set with permission-offline",
        obs,
        **evidence,
    )


def run_smart_checks(obs: SmartObservation, capability_uris: dict[str, str]) -> list[CheckResult]:
    """Every SMART configuration check, in catalog order."""
    return [
        check_reachable(obs),
        check_is_json(obs),
        check_required_fields(obs),
        check_conditional_fields(obs),
        check_field_forms(obs),
        check_authorization_code(obs),
        check_recommended_fields(obs),
        check_pkce_s256(obs),
        check_matches_capability(obs, capability_uris),
        check_patient_access_capabilities(obs),
    ]
