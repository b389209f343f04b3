"""SARIF of a hand-made report: levels by status and severity, rules, and no secret in the log."""

from __future__ import annotations

from datetime import UTC, datetime

from probe.cli.render import report_json, report_sarif
from probe.contracts.sarif import result_level, spec_url
from probe.http.redact import register_secret
from probe.models import CheckResult, CheckSpec, Report, Severity, Status
from tests.contracts.conftest import contract_validator, sarif_validator, strict_loads

SECRET = "s3cr3t-refresh-token-value-42"


def spec(
    check_id: str, severity: Severity, ref: str = "https://hl7.org/fhir/R4/x.html"
) -> CheckSpec:
    return CheckSpec(check_id, f"title of {check_id}", severity, ref)


def made_report() -> Report:
    results = [
        CheckResult(spec("a.required_fail", Severity.REQUIRED), Status.FAIL, f"echoed {SECRET}"),
        CheckResult(spec("b.recommended_fail", Severity.RECOMMENDED), Status.FAIL, "no"),
        CheckResult(spec("c.info_fail", Severity.INFORMATIONAL), Status.FAIL, "no"),
        CheckResult(spec("d.required_warn", Severity.REQUIRED), Status.WARN, "hm"),
        CheckResult(spec("e.pass", Severity.REQUIRED), Status.PASS, "ok"),
        CheckResult(spec("f.skip", Severity.REQUIRED), Status.SKIP, "not applicable"),
        CheckResult(spec("g.error", Severity.REQUIRED), Status.ERROR, "could not evaluate"),
        CheckResult(
            spec("metadata.fhir_version", Severity.REQUIRED, "FHIR R4 CapabilityStatement"),
            Status.FAIL,
            "3.0.2",
            {"url": f"https://fhir.example/r4/metadata?token={SECRET}", "bearer": SECRET},
        ),
    ]
    return Report(
        f"https://fhir.example/r4?key={SECRET}", datetime(2026, 1, 2, tzinfo=UTC), 12.5, results
    )


def test_levels_rules_and_no_secret() -> None:
    register_secret(SECRET)
    report = made_report()
    text = report_sarif(report)
    assert SECRET not in text
    log = strict_loads(text)
    sarif_validator().validate(log)
    run = log["runs"][0]
    levels = {r["ruleId"]: r["level"] for r in run["results"]}
    assert levels == {
        "a.required_fail": "error",
        "b.recommended_fail": "warning",
        "c.info_fail": "note",
        "d.required_warn": "warning",
        "metadata.fhir_version": "error",
    }
    assert {r.id: result_level(r) for r in report.results if result_level(r)} == levels
    rules = run["tool"]["driver"]["rules"]
    assert [r["id"] for r in rules] == [r.id for r in report.results]  # one rule per check
    fhir_version = next(r for r in rules if r["id"] == "metadata.fhir_version")
    assert fhir_version["helpUri"].startswith("https://hl7.org/fhir/R4/capabilitystatement")
    assert fhir_version["properties"]["requirement"] == "required"
    assert run["properties"]["summary"] == {"pass": 1, "fail": 4, "warn": 1, "skip": 1, "error": 1}

    json_text = report_json(report)
    assert SECRET not in json_text
    contract_validator("check").validate(strict_loads(json_text))


def test_spec_url_prefers_the_reference_then_the_table() -> None:
    assert spec_url("x", "see (https://a.example/p.html#s), then") == "https://a.example/p.html#s"
    assert spec_url("metadata.patient_everything", "no URL").endswith(
        "patient-operation-everything.html"
    )
    assert spec_url("x.new", "CMS-9115-F 42 CFR 422.119(c)") is not None
    assert spec_url("x.new", "nothing") is None


def test_non_finite_numbers_become_null_in_json() -> None:
    report = made_report()
    report.results[4] = CheckResult(
        spec("e.pass", Severity.REQUIRED), Status.PASS, "ok", {"months": float("inf")}
    )
    doc = strict_loads(report_json(report))
    assert doc["checks"][4]["evidence"] == {"months": None}


def test_fingerprints_are_stable_per_finding_and_endpoint() -> None:
    first = strict_loads(report_sarif(made_report()))["runs"][0]["results"]
    again = strict_loads(report_sarif(made_report()))["runs"][0]["results"]
    elsewhere = made_report()
    elsewhere.base_url = "https://other.example/r4"
    other = strict_loads(report_sarif(elsewhere))["runs"][0]["results"]
    prints = [r["partialFingerprints"]["probeFinding/v1"] for r in first]
    assert prints == [r["partialFingerprints"]["probeFinding/v1"] for r in again]
    assert len(set(prints)) == len(prints)  # one per finding
    assert not set(prints) & {r["partialFingerprints"]["probeFinding/v1"] for r in other}
