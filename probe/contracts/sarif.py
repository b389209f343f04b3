"""SARIF 2.1.0 logs of ``probe check`` and ``probe prerelease`` (``--format sarif``).

One run, tool ``probe``. Every check that ran is a rule (``shortDescription`` its title,
``helpUri`` its spec page: see :func:`spec_url`, ``properties.requirement`` its severity). One
result per check that failed or warned, located at the endpoint's base URL
(``artifactLocation.uri``), with ``partialFingerprints["probeFinding/v1"]`` (a hash of rule and
base URL) so a dashboard tracks one alert across runs:

========================  ==========
check outcome             level
========================  ==========
fail, required            error
fail, recommended         warning
fail, informational       note
warn (any severity)       warning
========================  ==========

Checks that passed, were skipped or could not be evaluated (``error``) are not results; their
counts are in the run's ``properties.summary``. A prerelease adds one result per breaking
(``error``) or notable (``warning``) change against the baseline (rule ``drift.<change>``),
and names what it did not test (a metric with no data, the baseline comparison, the sync) in
``invocations[0].toolExecutionNotifications`` and ``properties.notTested``; the gate's verdict
and reasons are in ``invocations[0].properties``.

The log holds no secret: the CLI makes every string safe before writing it.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from probe.models import CheckResult, Report, Severity, Status

if TYPE_CHECKING:
    from probe.drift.classify import Change
    from probe.prerelease.run import PrereleaseResult

SARIF_VERSION = "2.1.0"
SARIF_SCHEMA = (
    "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
)
_URL = re.compile(r"https?://[^\s)\]>,;\"']+")


_CFR_422_119 = (
    "https://www.ecfr.gov/current/title-42/chapter-IV/subchapter-B/part-422/subpart-K/"
    "section-422.119"
)
_C4BB = "http://hl7.org/fhir/us/carin-bb/CapabilityStatement/c4bb"
_CPS_DEFS = "https://hl7.org/fhir/R4/capabilitystatement-definitions.html"
#: The spec page of each check whose spec reference names no URL itself.
SPEC_URLS: dict[str, str] = {
    "auth.anonymous_refused": (
        "https://hl7.org/fhir/us/core/STU3.1.1/CapabilityStatement-us-core-server.html"
    ),
    "metadata.fhir_version": f"{_CPS_DEFS}#CapabilityStatement.fhirVersion",
    "metadata.json_format": f"{_CPS_DEFS}#CapabilityStatement.format",
    "metadata.smart_security": "http://hl7.org/fhir/smart-app-launch/1.0.0/conformance/index.html",
    "metadata.carin_bb_profiles": _C4BB,
    "metadata.carin_bb_search": _C4BB,
    "metadata.clinical_resources": _CFR_422_119,
    "metadata.patient_everything": "https://hl7.org/fhir/R4/patient-operation-everything.html",
    "portal.reachable": _CFR_422_119,
    "portal.tls_valid": _CFR_422_119,
    "portal.not_parked": _CFR_422_119,
    "portal.mentions_api": _CFR_422_119,
}


def spec_url(check_id: str, spec: str) -> str | None:
    """The spec page of a check: the first http(s) URL of its spec reference, else the page
    :data:`SPEC_URLS` names for it, else the rule CMS-9115-F codifies; None when unknown."""
    found = _URL.search(spec)
    if found:
        return found.group(0).rstrip(".")
    if check_id in SPEC_URLS:
        return SPEC_URLS[check_id]
    return _CFR_422_119 if "422.119" in spec else None


def result_level(result: CheckResult) -> str | None:
    """The SARIF level of a check result, or None when the result is not reported."""
    if result.status is Status.WARN:
        return "warning"
    if result.status is not Status.FAIL:
        return None
    return {
        Severity.REQUIRED: "error",
        Severity.RECOMMENDED: "warning",
        Severity.INFORMATIONAL: "note",
    }[result.spec.severity]


def _check_rule(result: CheckResult) -> dict[str, Any]:
    spec = result.spec
    rule: dict[str, Any] = {
        "id": spec.id,
        "shortDescription": {"text": spec.title},
        "fullDescription": {"text": f"{spec.title}. Spec: {spec.spec}"},
        "defaultConfiguration": {
            "level": "error" if spec.severity is Severity.REQUIRED else "warning"
        },
        "properties": {"requirement": str(spec.severity), "spec": spec.spec},
    }
    url = spec_url(spec.id, spec.spec)
    if url:
        rule["helpUri"] = url
    return rule


def _location(base_url: str) -> list[dict[str, Any]]:
    return [{"physicalLocation": {"artifactLocation": {"uri": base_url}}}]


def _fingerprint(rule_id: str, base_url: str, detail: str = "") -> dict[str, str]:
    """A stable identity of a result across runs (the same finding at the same endpoint), so
    dashboards such as GitHub code scanning track one alert instead of a new one per run."""
    digest = hashlib.sha256(f"{rule_id}\n{base_url}\n{detail}".encode()).hexdigest()
    return {"probeFinding/v1": digest[:32]}


def _check_results(report: Report, rule_index: dict[str, int]) -> list[dict[str, Any]]:
    out = []
    for r in report.results:
        level = result_level(r)
        if level is None:
            continue
        out.append(
            {
                "ruleId": r.id,
                "ruleIndex": rule_index[r.id],
                "level": level,
                "message": {"text": r.message or r.spec.title},
                "locations": _location(report.base_url),
                "partialFingerprints": _fingerprint(r.id, report.base_url),
                "properties": {
                    "status": str(r.status),
                    "requirement": str(r.spec.severity),
                    "evidence": r.evidence,
                },
            }
        )
    return out


def _driver(rules: list[dict[str, Any]], version: str) -> dict[str, Any]:
    return {
        "name": "probe",
        "version": version,
        "rules": rules,
    }


def _log(run: dict[str, Any]) -> dict[str, Any]:
    return {"$schema": SARIF_SCHEMA, "version": SARIF_VERSION, "runs": [run]}


def _rules_for(results: Iterable[CheckResult]) -> tuple[list[dict[str, Any]], dict[str, int]]:
    rules: list[dict[str, Any]] = []
    index: dict[str, int] = {}
    for r in results:
        if r.id not in index:
            index[r.id] = len(rules)
            rules.append(_check_rule(r))
    return rules, index


def check_sarif(report: Report, *, version: str) -> dict[str, Any]:
    """The SARIF log of one ``probe check`` (see the module docstring)."""
    rules, index = _rules_for(report.results)
    run = {
        "tool": {"driver": _driver(rules, version)},
        "invocations": [
            {
                "executionSuccessful": True,
                "startTimeUtc": report.started_at.isoformat(),
                "properties": {"failedRequired": [r.id for r in report.failed_required]},
            }
        ],
        "results": _check_results(report, index),
        "properties": {"baseUrl": report.base_url, "summary": report.summary},
    }
    return _log(run)


def _change_rule_id(change: Change) -> str:
    return "drift." + change.id.split(":", 1)[0]


def _change_results(
    changes: Sequence[Change], base_url: str, rules: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    index = {rule["id"]: i for i, rule in enumerate(rules)}
    out = []
    for c in changes:
        if str(c.kind) == "cosmetic":
            continue
        rule_id = _change_rule_id(c)
        if rule_id not in index:
            index[rule_id] = len(rules)
            rules.append(
                {
                    "id": rule_id,
                    "shortDescription": {"text": f"Change against the baseline: {rule_id[6:]}"},
                    "defaultConfiguration": {"level": "warning"},
                    "help": {"text": "probe's change classifier: docs/drift.md"},
                    "properties": {"requirement": "baseline"},
                }
            )
        out.append(
            {
                "ruleId": rule_id,
                "ruleIndex": index[rule_id],
                "level": "error" if str(c.kind) == "breaking" else "warning",
                "message": {"text": f"{c.kind} change {c.id}: {c.reason}"},
                "locations": _location(base_url),
                "partialFingerprints": _fingerprint(rule_id, base_url, c.id),
                "properties": {
                    "kind": str(c.kind),
                    "path": c.path,
                    "before": c.before,
                    "after": c.after,
                },
            }
        )
    return out


def prerelease_sarif(result: PrereleaseResult, *, version: str) -> dict[str, Any]:
    """The SARIF log of one ``probe prerelease`` (see the module docstring)."""
    report = result.candidate.report
    rules, index = _rules_for(report.results)
    results = _check_results(report, index)
    results += _change_results(result.changes, report.base_url, rules)
    not_tested = [n.to_json() for n in result.not_tested]
    notifications = [
        {
            "level": "warning",
            "message": {"text": f"not tested: {n['title']} ({n['reason']})"},
            "descriptor": {"id": n["item"]},
        }
        for n in not_tested
    ]
    run = {
        "tool": {"driver": _driver(rules, version)},
        "invocations": [
            {
                "executionSuccessful": True,
                "startTimeUtc": result.started_at.isoformat(),
                "toolExecutionNotifications": notifications,
                "properties": {
                    "gatePassed": result.gate.passed,
                    "gateReasons": list(result.gate.reasons),
                    "gateScope": result.gate.scope,
                },
            }
        ],
        "results": results,
        "properties": {
            "baseUrl": report.base_url,
            "summary": report.summary,
            "score": {
                k: v
                for k, v in result.score.to_json().items()
                if k in ("scope", "score") or k.startswith("points")
            },
            "notTested": not_tested,
            "baseline": None if result.baseline is None else result.baseline.description,
        },
    }
    return _log(run)
