"""Checks on `GET {base}/metadata`: reachability, the CapabilityStatement, and what it declares.

One request is made; every check here asserts on the same :class:`MetadataObservation`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from probe.checks.observation import DocumentObservation, skipped, verdict
from probe.checks.r4_validation import validate_r4
from probe.checks.transport import bound_failure, transport_failure
from probe.http.body import (
    MAX_JSON_DEPTH,
    excerpt,
    is_login_page,
    operation_outcome_text,
)
from probe.http.urls import origin_of
from probe.models import CheckResult, CheckSpec, Exchange, Severity, Status

R4 = "FHIR R4 (4.0.1)"
_CPS = "https://hl7.org/fhir/R4/capabilitystatement.html"

REACHABLE = CheckSpec(
    "metadata.reachable",
    "CapabilityStatement endpoint answers",
    Severity.REQUIRED,
    f"{R4} RESTful API §3.1.0.8 capabilities: GET [base]/metadata "
    "(https://hl7.org/fhir/R4/http.html#capabilities); CMS-9115-F 42 CFR 422.119(c)",
)
IS_CAPABILITY_STATEMENT = CheckSpec(
    "metadata.is_capability_statement",
    "Body is a CapabilityStatement",
    Severity.REQUIRED,
    f"{R4} http.html#capabilities: the response is a CapabilityStatement ({_CPS})",
)
VALID_R4 = CheckSpec(
    "metadata.valid_r4",
    "CapabilityStatement validates as FHIR R4",
    Severity.REQUIRED,
    f"{R4} CapabilityStatement structure and invariants cpb-1, cpb-2 ({_CPS}#invs)",
)
FHIR_VERSION = CheckSpec(
    "metadata.fhir_version",
    "fhirVersion is R4 (4.0.x)",
    Severity.REQUIRED,
    f"{R4} CapabilityStatement.fhirVersion; CMS-9115-F adopts FHIR R4 (45 CFR 170.215(a)(1))",
)
JSON_FORMAT = CheckSpec(
    "metadata.json_format",
    "JSON format declared and served",
    Severity.REQUIRED,
    f"{R4} CapabilityStatement.format; http.html#mime-type (application/fhir+json)",
)
REST_SERVER = CheckSpec(
    "metadata.rest_server",
    "Declares a RESTful server",
    Severity.REQUIRED,
    f"{R4} CapabilityStatement.rest.mode = server ({_CPS}#resource)",
)
SMART_SECURITY = CheckSpec(
    "metadata.smart_security",
    "Security declares SMART-on-FHIR with OAuth URIs",
    Severity.RECOMMENDED,
    "SMART App Launch 1.0 §Conformance (oauth-uris extension), kept for compatibility by "
    "SMART 2.x §2.0.4; CARIN BB 2.x CapabilityStatement c4bb rest.security",
)
CARIN_BB_RESOURCES = CheckSpec(
    "metadata.carin_bb_resources",
    "CARIN Blue Button resource types declared",
    Severity.REQUIRED,
    "CARIN BB 2.x CapabilityStatement c4bb: SHALL ExplanationOfBenefit, Coverage, Patient "
    "(http://hl7.org/fhir/us/carin-bb/CapabilityStatement/c4bb)",
)
CARIN_BB_PROFILES = CheckSpec(
    "metadata.carin_bb_profiles",
    "CARIN Blue Button profiles claimed for its resource types",
    Severity.RECOMMENDED,
    "CARIN BB 2.x CapabilityStatement c4bb: ExplanationOfBenefit, Coverage and Patient list "
    "the C4BB profiles in supportedProfile (FHIR R4 CapabilityStatement.rest.resource."
    "supportedProfile)",
)
CARIN_BB_INSTANTIATES = CheckSpec(
    "metadata.carin_bb_instantiates",
    "The statement claims conformance to CARIN Blue Button",
    Severity.RECOMMENDED,
    "FHIR R4 CapabilityStatement.instantiates names "
    "http://hl7.org/fhir/us/carin-bb/CapabilityStatement/c4bb (CARIN BB 2.x conformance)",
)
CLINICAL_RESOURCES = CheckSpec(
    "metadata.clinical_resources",
    "Clinical (USCDI) resource types declared",
    Severity.INFORMATIONAL,
    "CMS-9115-F 42 CFR 422.119(b)(1)(iii): clinical data (USCDI) via US Core 3.1.1 profiles",
)
CARIN_BB_SEARCH = CheckSpec(
    "metadata.carin_bb_search",
    "ExplanationOfBenefit search parameters CARIN BB requires",
    Severity.RECOMMENDED,
    "CARIN BB Search Parameters (searchparameters.html) and CapabilityStatement c4bb: "
    "ExplanationOfBenefit SHALL support _id, _lastUpdated, identifier, patient, type, "
    "service-date (STU 1 and 2); STU 2 adds billable-period-start, 2.1 service-start-date",
)
PATIENT_EVERYTHING = CheckSpec(
    "metadata.patient_everything",
    "Patient/$everything declared",
    Severity.RECOMMENDED,
    f"{R4} OperationDefinition Patient-everything; Da Vinci PDex 2.x SHALL support $everything",
)

SPECS = (
    REACHABLE,
    IS_CAPABILITY_STATEMENT,
    VALID_R4,
    FHIR_VERSION,
    JSON_FORMAT,
    REST_SERVER,
    SMART_SECURITY,
    CARIN_BB_RESOURCES,
    CARIN_BB_PROFILES,
    CARIN_BB_INSTANTIATES,
    CARIN_BB_SEARCH,
    CLINICAL_RESOURCES,
    PATIENT_EVERYTHING,
)

CLINICAL_TYPES = (
    "AllergyIntolerance",
    "CarePlan",
    "CareTeam",
    "Condition",
    "Device",
    "DiagnosticReport",
    "DocumentReference",
    "Encounter",
    "Goal",
    "Immunization",
    "MedicationRequest",
    "Observation",
    "Procedure",
)
CARIN_BB_REQUIRED = ("ExplanationOfBenefit", "Coverage", "Patient")
EOB_SEARCH_CORE = ("_id", "_lastUpdated", "identifier", "patient", "type", "service-date")
EOB_SEARCH_STU2 = ("billable-period-start", "service-start-date")
CARIN_BB_CAPABILITY = "http://hl7.org/fhir/us/carin-bb/CapabilityStatement/c4bb"
CARIN_BB_PROFILE_PREFIX = "http://hl7.org/fhir/us/carin-bb/StructureDefinition/"
SMART_SERVICE_SYSTEMS = (
    "http://terminology.hl7.org/CodeSystem/restful-security-service",
    "http://hl7.org/fhir/restful-security-service",
)
OAUTH_URIS = "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris"
EVERYTHING_DEFINITION = "http://hl7.org/fhir/OperationDefinition/Patient-everything"


@dataclass(frozen=True, slots=True)
class MetadataObservation(DocumentObservation):
    """What `GET {base}/metadata` returned (every attempt) and how its body parsed."""

    @property
    def document(self) -> dict[str, Any] | None:
        """The CapabilityStatement, when the body was one."""
        data = self.parsed.data
        if data is not None and data.get("resourceType") == "CapabilityStatement":
            return data
        return None


def observe(
    base_url: str, attempts: list[Exchange], *, max_depth: int = MAX_JSON_DEPTH
) -> MetadataObservation:
    """Bundle the attempts at /metadata with the parsed final body (nesting capped)."""
    return MetadataObservation.of(base_url, attempts, max_depth=max_depth)


def check_reachable(obs: MetadataObservation) -> CheckResult:
    """metadata.reachable: a 2xx answer from the public /metadata, with failures named."""
    ex = obs.exchange
    tries = f" after {len(obs.attempts)} attempts" if len(obs.attempts) > 1 else ""
    if ex.status is None:
        return verdict(REACHABLE, Status.FAIL, f"{transport_failure(ex)}{tries}", obs)
    bound = bound_failure(ex)
    if bound is not None:
        return verdict(REACHABLE, Status.FAIL, bound, obs)
    final_url = ex.final_url or ex.url
    moved_origin = origin_of(final_url) != origin_of(obs.base_url)
    if ex.redirects and ex.ok and is_login_page(ex.body):
        title = obs.parsed.html_title
        where = "another origin" if moved_origin else "the same origin"
        return verdict(
            REACHABLE,
            Status.FAIL,
            f"redirected to an HTML login page on {where} ({final_url}"
            f"{f', title {title!r}' if title else ''}); metadata must be public",
            obs,
            title=title,
        )
    if ex.redirects and moved_origin:
        return verdict(
            REACHABLE,
            Status.FAIL,
            f"redirected to another origin ({final_url}); clients must not follow a base URL "
            "to a different server",
            obs,
            error_class="redirect_cross_origin",  # followed (no credentials), but named
        )
    if ex.status in (401, 403):
        oo = operation_outcome_text(obs.parsed.data)
        return verdict(
            REACHABLE,
            Status.FAIL,
            f"HTTP {ex.status}: metadata is behind authentication, but the CapabilityStatement "
            f"must be public{f' ({oo})' if oo else ''}",
            obs,
            excerpt=excerpt(ex.body) if ex.body else None,
        )
    if ex.status == 404:
        return verdict(
            REACHABLE,
            Status.FAIL,
            "HTTP 404: no CapabilityStatement at this base URL (wrong or moved base URL?)",
            obs,
        )
    if ex.status >= 500:
        oo = operation_outcome_text(obs.parsed.data)
        return verdict(
            REACHABLE,
            Status.FAIL,
            f"HTTP {ex.status}: server error{tries}{f' ({oo})' if oo else ''}",
            obs,
        )
    if not ex.ok:
        oo = operation_outcome_text(obs.parsed.data)
        return verdict(
            REACHABLE, Status.FAIL, f"HTTP {ex.status}{f': {oo}' if oo else ''}{tries}", obs
        )
    if ex.redirects:
        return verdict(
            REACHABLE,
            Status.WARN,
            f"answers only after redirect to {final_url}: the base URL has moved; update the "
            "directory",
            obs,
        )
    return verdict(REACHABLE, Status.PASS, f"HTTP {ex.status} in {ex.latency_ms:.0f} ms", obs)


def check_is_capability_statement(obs: MetadataObservation) -> CheckResult:
    """metadata.is_capability_statement: JSON with resourceType CapabilityStatement."""
    spec = IS_CAPABILITY_STATEMENT
    if obs.exchange.status is None:
        return skipped(spec, obs, "no response")
    parsed = obs.parsed
    if not obs.exchange.ok and parsed.data is None:
        return skipped(spec, obs, f"HTTP {obs.exchange.status}")
    if parsed.problem == "html":
        title = parsed.html_title
        return verdict(
            spec,
            Status.FAIL,
            f"HTML page served instead of a CapabilityStatement"
            f"{f': title {title!r}' if title else ''}",
            obs,
            title=title,
            excerpt=excerpt(obs.exchange.body),
        )
    if parsed.data is None:
        return verdict(
            spec,
            Status.FAIL,
            f"not a JSON object: {parsed.detail}",
            obs,
            excerpt=excerpt(obs.exchange.body) or None,
            body_problem=parsed.problem,
        )
    resource_type = parsed.data.get("resourceType")
    if resource_type == "CapabilityStatement":
        if not obs.exchange.ok:
            return verdict(
                spec, Status.FAIL, f"CapabilityStatement with HTTP {obs.exchange.status}", obs
            )
        return verdict(
            spec, Status.PASS, "resourceType is CapabilityStatement", obs, pointer="/resourceType"
        )
    if resource_type == "Conformance":
        version = parsed.data.get("fhirVersion", "unknown")
        return verdict(
            spec,
            Status.FAIL,
            f"DSTU2 'Conformance' resource (fhirVersion {version}); R4 servers answer "
            "CapabilityStatement",
            obs,
            pointer="/resourceType",
            actual=resource_type,
        )
    if resource_type == "OperationOutcome":
        return verdict(
            spec,
            Status.FAIL,
            f"OperationOutcome instead of a CapabilityStatement: "
            f"{operation_outcome_text(parsed.data)}",
            obs,
            pointer="/resourceType",
        )
    return verdict(
        spec,
        Status.FAIL,
        f"resourceType is {resource_type!r}, expected 'CapabilityStatement'",
        obs,
        pointer="/resourceType",
        actual=resource_type,
    )


def _invariant_issues(doc: dict[str, Any]) -> list[str]:
    issues: list[str] = []
    if not any(doc.get(k) for k in ("rest", "messaging", "document")):
        issues.append(
            "cpb-1: a CapabilityStatement SHALL have at least one of rest, messaging or document"
        )
    if not any(doc.get(k) for k in ("description", "software", "implementation")):
        issues.append(
            "cpb-2: a CapabilityStatement SHALL have a description, software or implementation"
        )
    if doc.get("kind") == "instance" and not doc.get("implementation"):
        issues.append("cpb-14: kind 'instance' requires implementation")
    for i, rest in enumerate(doc.get("rest") or []):
        if not isinstance(rest, dict):
            continue
        seen: set[str] = set()
        for resource in rest.get("resource") or []:
            rtype = resource.get("type") if isinstance(resource, dict) else None
            if rtype in seen:
                issues.append(f"cpb-12: rest[{i}] declares resource {rtype} more than once")
            if rtype:
                seen.add(rtype)
    return issues


def check_valid_r4(obs: MetadataObservation) -> CheckResult:
    """metadata.valid_r4: structural validation (R4 via R4B) plus key R4 invariants."""
    doc = obs.document
    if doc is None:
        return skipped(VALID_R4, obs, "no CapabilityStatement to validate")
    errors = [f"{i.path}: {i.message}" for i in validate_r4(doc)]
    errors += _invariant_issues(doc)
    if errors:
        shown = "; ".join(errors[:5])
        more = f" (+{len(errors) - 5} more)" if len(errors) > 5 else ""
        return verdict(
            VALID_R4,
            Status.FAIL,
            f"{len(errors)} R4 validation error(s): {shown}{more}",
            obs,
            errors=errors[:50],
        )
    return verdict(VALID_R4, Status.PASS, "valid FHIR R4 CapabilityStatement", obs)


_VERSION_NAMES = {"1.0": "DSTU2", "3.0": "STU3", "4.3": "R4B", "5.0": "R5", "4.1": "R4B ballot"}


def check_fhir_version(obs: MetadataObservation) -> CheckResult:
    """metadata.fhir_version: 4.0.1 passes, 4.0.0 warns, anything else fails."""
    data = obs.parsed.data
    if data is None or data.get("resourceType") not in ("CapabilityStatement", "Conformance"):
        return skipped(FHIR_VERSION, obs, "no CapabilityStatement")
    version = data.get("fhirVersion")
    if not isinstance(version, str) or not version:
        return verdict(
            FHIR_VERSION, Status.FAIL, "fhirVersion is missing", obs, pointer="/fhirVersion"
        )
    ptr = {"pointer": "/fhirVersion", "actual": version, "expected": "4.0.1"}
    if version == "4.0.1":
        return verdict(FHIR_VERSION, Status.PASS, "fhirVersion 4.0.1 (R4)", obs, **ptr)
    if version.startswith("4.0."):
        return verdict(
            FHIR_VERSION,
            Status.WARN,
            f"fhirVersion {version}: R4, but not the 4.0.1 technical correction that "
            "CMS-9115-F adopts; clients treat it as R4",
            obs,
            **ptr,
        )
    name = _VERSION_NAMES.get(version[:3], "not R4")
    return verdict(
        FHIR_VERSION,
        Status.FAIL,
        f"fhirVersion {version} ({name}); Patient Access APIs must serve FHIR R4 (4.0.1)",
        obs,
        **ptr,
    )


_JSON_FORMATS = {"json", "application/json", "application/fhir+json"}


def check_json_format(obs: MetadataObservation) -> CheckResult:
    """metadata.json_format: format lists JSON, and the response is served as FHIR JSON."""
    doc = obs.document
    if doc is None:
        return skipped(JSON_FORMAT, obs, "no CapabilityStatement")
    formats = [f for f in doc.get("format") or [] if isinstance(f, str)]
    declared = [f for f in formats if f.split(";")[0].strip().lower() in _JSON_FORMATS]
    content_type = (obs.exchange.content_type or "").split(";")[0].strip().lower()
    if not declared:
        return verdict(
            JSON_FORMAT,
            Status.FAIL,
            f"format {formats or '(missing)'} does not include json",
            obs,
            pointer="/format",
            actual=formats,
        )
    if content_type != "application/fhir+json":
        return verdict(
            JSON_FORMAT,
            Status.WARN,
            f"JSON declared ({', '.join(declared)}) but served as "
            f"{content_type or 'no content type'}, not application/fhir+json",
            obs,
            pointer="/format",
        )
    return verdict(
        JSON_FORMAT, Status.PASS, f"format includes {', '.join(declared)}", obs, pointer="/format"
    )


def _server_rest(doc: dict[str, Any]) -> tuple[int, dict[str, Any]] | None:
    for i, rest in enumerate(doc.get("rest") or []):
        if isinstance(rest, dict) and rest.get("mode") == "server":
            return i, rest
    return None


def check_rest_server(obs: MetadataObservation) -> CheckResult:
    """metadata.rest_server: a rest entry with mode 'server' that declares resources."""
    doc = obs.document
    if doc is None:
        return skipped(REST_SERVER, obs, "no CapabilityStatement")
    found = _server_rest(doc)
    if found is None:
        modes = [r.get("mode") for r in doc.get("rest") or [] if isinstance(r, dict)]
        return verdict(
            REST_SERVER,
            Status.FAIL,
            f"no rest entry with mode 'server' (modes: {modes})",
            obs,
            pointer="/rest",
        )
    i, rest = found
    count = len(rest.get("resource") or [])
    if count == 0:
        return verdict(
            REST_SERVER,
            Status.FAIL,
            "rest mode 'server' declares no resources",
            obs,
            pointer=f"/rest/{i}/resource",
        )
    return verdict(
        REST_SERVER,
        Status.PASS,
        f"server mode declares {count} resource types",
        obs,
        pointer=f"/rest/{i}",
    )


def oauth_uris(doc: dict[str, Any] | None) -> dict[str, str]:
    """The oauth-uris extension's URLs (authorize, token, ...) from a CapabilityStatement."""
    if not doc:
        return {}
    found = _server_rest(doc)
    if found is None:
        return {}
    security = found[1].get("security") or {}
    for ext in security.get("extension") or [] if isinstance(security, dict) else []:
        if isinstance(ext, dict) and ext.get("url") == OAUTH_URIS:
            return {
                str(sub.get("url")): str(sub.get("valueUri") or sub.get("valueUrl") or "")
                for sub in ext.get("extension") or []
                if isinstance(sub, dict) and sub.get("url")
            }
    return {}


def check_smart_security(obs: MetadataObservation) -> CheckResult:
    """metadata.smart_security: security.service SMART-on-FHIR and oauth-uris authorize+token."""
    doc = obs.document
    if doc is None:
        return skipped(SMART_SECURITY, obs, "no CapabilityStatement")
    found = _server_rest(doc)
    security = (found[1].get("security") if found else None) or {}
    pointer = f"/rest/{found[0]}/security" if found else "/rest"
    codings = [
        c
        for svc in security.get("service") or []
        if isinstance(svc, dict)
        for c in svc.get("coding") or []
        if isinstance(c, dict)
    ]
    smart = [c for c in codings if c.get("code") == "SMART-on-FHIR"]
    uris = oauth_uris(doc)
    missing_uris = [k for k in ("authorize", "token") if not uris.get(k)]
    problems: list[str] = []
    if not security:
        problems.append("no rest.security element")
    elif not smart:
        problems.append(
            "security.service is not coded SMART-on-FHIR"
            + (f" (found {[c.get('code') for c in codings]})" if codings else "")
        )
    elif smart[0].get("system") not in SMART_SERVICE_SYSTEMS:
        problems.append(f"SMART-on-FHIR coded with unexpected system {smart[0].get('system')!r}")
    if missing_uris:
        problems.append(f"oauth-uris extension lacks {', '.join(missing_uris)}")
    if problems:
        status = Status.FAIL if not smart else Status.WARN
        return verdict(
            SMART_SECURITY,
            status,
            "; ".join(problems),
            obs,
            pointer=pointer,
            oauth_uris=uris or None,
        )
    return verdict(
        SMART_SECURITY,
        Status.PASS,
        f"SMART-on-FHIR with authorize {uris['authorize']} and token {uris['token']}",
        obs,
        pointer=pointer,
        oauth_uris=uris,
    )


def _resources(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found = _server_rest(doc)
    if found is None:
        return {}
    return {
        str(r.get("type")): r
        for r in found[1].get("resource") or []
        if isinstance(r, dict) and r.get("type")
    }


def _profiles(resource: dict[str, Any]) -> list[str]:
    profiles = [str(p) for p in resource.get("supportedProfile") or [] if isinstance(p, str)]
    if isinstance(resource.get("profile"), str):
        profiles.append(resource["profile"])
    return profiles


def check_carin_bb_resources(obs: MetadataObservation) -> CheckResult:
    """metadata.carin_bb_resources: ExplanationOfBenefit, Coverage and Patient declared."""
    doc = obs.document
    if doc is None:
        return skipped(CARIN_BB_RESOURCES, obs, "no CapabilityStatement")
    resources = _resources(doc)
    missing = [t for t in CARIN_BB_REQUIRED if t not in resources]
    if missing:
        return verdict(
            CARIN_BB_RESOURCES,
            Status.FAIL,
            f"missing CARIN BB resource type(s): {', '.join(missing)}",
            obs,
            pointer="/rest/resource",
            expected=list(CARIN_BB_REQUIRED),
            actual=sorted(resources),
        )
    return verdict(
        CARIN_BB_RESOURCES,
        Status.PASS,
        "ExplanationOfBenefit, Coverage and Patient declared",
        obs,
        pointer="/rest/resource",
    )


def check_carin_bb_profiles(obs: MetadataObservation) -> CheckResult:
    """metadata.carin_bb_profiles: each CARIN BB type declared claims a C4BB profile."""
    doc = obs.document
    if doc is None:
        return skipped(CARIN_BB_PROFILES, obs, "no CapabilityStatement")
    resources = _resources(doc)
    claimed = {
        t: [p for p in _profiles(resources[t]) if p.startswith(CARIN_BB_PROFILE_PREFIX)]
        for t in CARIN_BB_REQUIRED
        if t in resources
    }
    if not claimed:
        return skipped(CARIN_BB_PROFILES, obs, "no CARIN BB resource type declared")
    without = [t for t, p in claimed.items() if not p]
    if without:
        return verdict(
            CARIN_BB_PROFILES,
            Status.WARN,
            f"no CARIN BB profile claimed for {', '.join(without)}",
            obs,
            pointer="/rest/resource",
            carin_bb_profiles=claimed,
        )
    return verdict(
        CARIN_BB_PROFILES,
        Status.PASS,
        f"CARIN BB profiles claimed for {', '.join(claimed)}",
        obs,
        pointer="/rest/resource",
        carin_bb_profiles=claimed,
    )


def check_carin_bb_instantiates(obs: MetadataObservation) -> CheckResult:
    """metadata.carin_bb_instantiates: the statement instantiates the c4bb statement."""
    doc = obs.document
    if doc is None:
        return skipped(CARIN_BB_INSTANTIATES, obs, "no CapabilityStatement")
    raw = doc.get("instantiates")
    instantiates = [str(u) for u in raw] if isinstance(raw, list) else []
    ptr = {"pointer": "/instantiates", "actual": instantiates or None}
    if any(u.split("|")[0] == CARIN_BB_CAPABILITY for u in instantiates):
        return verdict(
            CARIN_BB_INSTANTIATES, Status.PASS, f"instantiates {CARIN_BB_CAPABILITY}", obs, **ptr
        )
    return verdict(
        CARIN_BB_INSTANTIATES,
        Status.WARN,
        f"does not instantiate {CARIN_BB_CAPABILITY}",
        obs,
        expected=CARIN_BB_CAPABILITY,
        **ptr,
    )


def check_clinical_resources(obs: MetadataObservation) -> CheckResult:
    """metadata.clinical_resources: which US Core clinical resource types are declared."""
    doc = obs.document
    if doc is None:
        return skipped(CLINICAL_RESOURCES, obs, "no CapabilityStatement")
    resources = _resources(doc)
    present = [t for t in CLINICAL_TYPES if t in resources]
    absent = [t for t in CLINICAL_TYPES if t not in resources]
    evidence = {"supported": present, "not_declared": absent, "pointer": "/rest/resource"}
    if not present:
        return CheckResult(
            CLINICAL_RESOURCES,
            Status.WARN,
            "no clinical resource types declared (claims data only)",
            obs.exchange.evidence(**evidence),
        )
    return CheckResult(
        CLINICAL_RESOURCES,
        Status.PASS,
        f"{len(present)} of {len(CLINICAL_TYPES)} clinical types: {', '.join(present)}",
        obs.exchange.evidence(**evidence),
    )


def everything_declared(doc: dict[str, Any] | None) -> str | None:
    """Where $everything is declared ('Patient' or 'system'), or None."""
    if not doc:
        return None
    found = _server_rest(doc)
    if found is None:
        return None

    def is_everything(op: Any) -> bool:
        return isinstance(op, dict) and (
            op.get("name") in ("everything", "$everything", "patient-everything")
            or str(op.get("definition", "")).split("|")[0] == EVERYTHING_DEFINITION
        )

    patient = _resources(doc).get("Patient") or {}
    if any(is_everything(op) for op in patient.get("operation") or []):
        return "Patient"
    if any(is_everything(op) for op in found[1].get("operation") or []):
        return "system"
    return None


def _search_params(doc: dict[str, Any], resource: dict[str, Any]) -> list[str]:
    """Search parameter names declared for `resource`, plus those declared for all resources."""
    found = _server_rest(doc)
    everywhere = found[1].get("searchParam") if found is not None else None
    names: list[str] = []
    for param in [*(resource.get("searchParam") or []), *(everywhere or [])]:
        name = param.get("name") if isinstance(param, dict) else None
        if isinstance(name, str) and name not in names:
            names.append(name)
    return names


def check_carin_bb_search(obs: MetadataObservation) -> CheckResult:
    """metadata.carin_bb_search: the EOB search parameters CARIN BB requires are declared."""
    doc = obs.document
    if doc is None:
        return skipped(CARIN_BB_SEARCH, obs, "no CapabilityStatement")
    eob = _resources(doc).get("ExplanationOfBenefit")
    if eob is None:
        return skipped(
            CARIN_BB_SEARCH, obs, "ExplanationOfBenefit not declared (metadata.carin_bb_resources)"
        )
    declared = _search_params(doc, eob)
    missing = [p for p in EOB_SEARCH_CORE if p not in declared]
    missing_stu2 = [p for p in EOB_SEARCH_STU2 if p not in declared]
    pointer = "/rest/resource[type=ExplanationOfBenefit]/searchParam"
    evidence = {
        "expected": [*EOB_SEARCH_CORE, *EOB_SEARCH_STU2],
        "actual": declared,
        "missing": [*missing, *missing_stu2] or None,
    }
    if missing:
        consequence = (
            "; without patient, a client's per-resource fallback cannot ask for one member's EOBs"
            if "patient" in missing
            else ""
        )
        return verdict(
            CARIN_BB_SEARCH,
            Status.FAIL,
            f"ExplanationOfBenefit does not declare {', '.join(missing)}{consequence}",
            obs,
            pointer=pointer,
            **evidence,
        )
    if missing_stu2:
        return verdict(
            CARIN_BB_SEARCH,
            Status.WARN,
            "ExplanationOfBenefit declares the STU 1 search parameters but not "
            f"{', '.join(missing_stu2)} (CARIN BB STU 2)",
            obs,
            pointer=pointer,
            **evidence,
        )
    return verdict(
        CARIN_BB_SEARCH,
        Status.PASS,
        "ExplanationOfBenefit declares every search parameter CARIN BB requires",
        obs,
        pointer=pointer,
        **evidence,
    )


def check_patient_everything(obs: MetadataObservation) -> CheckResult:
    """metadata.patient_everything: Patient declares operation `everything`."""
    doc = obs.document
    if doc is None:
        return skipped(PATIENT_EVERYTHING, obs, "no CapabilityStatement")
    where = everything_declared(doc)
    if where == "Patient":
        return verdict(PATIENT_EVERYTHING, Status.PASS, "Patient declares $everything", obs)
    if where == "system":
        return verdict(
            PATIENT_EVERYTHING,
            Status.WARN,
            "$everything declared at system level, not on the Patient resource",
            obs,
            pointer="/rest/operation",
        )
    return verdict(
        PATIENT_EVERYTHING,
        Status.FAIL,
        "Patient/$everything not declared: clients must fall back to per-resource searches",
        obs,
        pointer="/rest/resource[type=Patient]/operation",
    )


CHECKS = (
    check_reachable,
    check_is_capability_statement,
    check_valid_r4,
    check_fhir_version,
    check_json_format,
    check_rest_server,
    check_smart_security,
    check_carin_bb_resources,
    check_carin_bb_profiles,
    check_carin_bb_instantiates,
    check_carin_bb_search,
    check_clinical_resources,
    check_patient_everything,
)


def run_metadata_checks(obs: MetadataObservation) -> list[CheckResult]:
    """Every /metadata check, in catalog order, over one observation."""
    return [check(obs) for check in CHECKS]
