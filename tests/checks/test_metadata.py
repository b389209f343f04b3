"""Every /metadata check id: the pass case and each way it fails."""

from __future__ import annotations

import json
import socket
import ssl
from typing import Any

import httpx
import pytest

from probe.http.limits import Limits
from probe.models import Status
from tests.discovery_docs import BASE, LOGIN_PAGE, capability_statement, smart_configuration
from tests.mock_payer import discover, fhir_json, payer


def good_payer() -> object:
    return payer(
        fhir_json(capability_statement()),
        fhir_json(smart_configuration(), content_type="application/json"),
    )


def with_capability(doc: dict[str, object], **kw: object) -> object:
    return payer(
        fhir_json(doc, **kw), fhir_json(smart_configuration(), content_type="application/json")
    )  # type: ignore[arg-type]


def test_exemplary_payer_passes_every_check() -> None:
    report = discover(good_payer())  # type: ignore[arg-type]
    assert {r.id: str(r.status) for r in report.results if r.status is not Status.PASS} == {}
    assert not report.failed_required
    assert report.summary["pass"] == len(report.results)


def test_metadata_request_asks_for_fhir_json() -> None:
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return good_payer()(request)  # type: ignore[operator]

    discover(handle)
    metadata_request = next(r for r in seen if r.url.path.endswith("/metadata"))
    assert metadata_request.headers["accept"] == "application/fhir+json"
    assert str(metadata_request.url) == f"{BASE}/metadata"


# --- metadata.reachable -------------------------------------------------------------------


def _raising(exc: Exception) -> object:
    def handle(request: httpx.Request) -> httpx.Response:
        raise exc

    return handle


def _connect_error(cause: BaseException, text: str) -> httpx.ConnectError:
    err = httpx.ConnectError(text)
    err.__cause__ = cause
    return err


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (
            _connect_error(
                socket.gaierror(-2, "Name or service not known"),
                "[Errno -2] Name or service not known",
            ),
            "DNS failure",
        ),
        (
            _connect_error(
                ConnectionRefusedError(111, "Connection refused"), "[Errno 111] Connection refused"
            ),
            "connection refused",
        ),
        (
            _connect_error(
                ssl.SSLCertVerificationError("certificate verify failed: self-signed certificate"),
                "[SSL: CERTIFICATE_VERIFY_FAILED]",
            ),
            "TLS failure",
        ),
        (httpx.ConnectTimeout("timed out"), "timeout"),
        # A read timeout before any response head: the server accepted and never answered.
        (httpx.ReadTimeout("timed out"), "no response"),
        (
            httpx.RemoteProtocolError("Server disconnected without sending a response."),
            "HTTP protocol error",
        ),
    ],
)
def test_reachable_names_transport_failures(exc: Exception, expected: str) -> None:
    report = discover(_raising(exc))  # type: ignore[arg-type]
    result = report.result("metadata.reachable")
    assert result.status is Status.FAIL
    assert result.message.startswith(expected), result.message
    assert result.evidence["http_status"] is None
    assert result.evidence["error_class"]
    # Everything that needs the document is skipped, not failed twice.
    assert report.result("metadata.valid_r4").status is Status.SKIP
    assert report.failed_required


@pytest.mark.parametrize(
    ("status", "body", "fragment"),
    [
        (401, b"<html><head><title>401 Unauthorized</title></head></html>", "must be public"),
        (403, b"", "must be public"),
        (404, b"", "wrong or moved base URL"),
        (
            500,
            b'{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"exception","diagnostics":"HAPI-0389: boom"}]}',
            "HAPI-0389: boom",
        ),
        (503, b"", "server error after 3 attempts"),
        (410, b"", "HTTP 410"),
    ],
)
def test_reachable_names_http_failures(status: int, body: bytes, fragment: str) -> None:
    meta = httpx.Response(
        status,
        content=body,
        headers={"Content-Type": "text/html" if body.startswith(b"<") else "application/fhir+json"},
    )
    report = discover(payer(meta, fhir_json(smart_configuration())))
    result = report.result("metadata.reachable")
    assert result.status is Status.FAIL
    assert fragment in result.message
    assert result.evidence["http_status"] == status


def test_reachable_retries_5xx_then_passes_and_records_each_attempt() -> None:
    calls = {"n": 0}

    def meta(request: httpx.Request) -> httpx.Response:
        calls["n"] += 1
        if calls["n"] == 1:
            return httpx.Response(503, headers={"Retry-After": "0"})
        return fhir_json(capability_statement())

    report = discover(payer(meta, fhir_json(smart_configuration())))
    assert report.result("metadata.reachable").status is Status.PASS
    steps = [str(e.step) for e in report.exchanges if e.url.endswith("/metadata")]
    assert steps == ["discovery", "retry"]


def test_reachable_fails_on_redirect_to_login_page_on_another_origin() -> None:
    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.host == "login.payer.example":
            return httpx.Response(200, content=LOGIN_PAGE, headers={"Content-Type": "text/html"})
        if request.url.path.endswith("/metadata"):
            return httpx.Response(
                302, headers={"Location": "https://login.payer.example/signin?next=/metadata"}
            )
        return fhir_json(smart_configuration())

    # By default a redirect to another origin is reported, not followed.
    default = discover(handle).result("metadata.reachable")
    assert default.status is Status.FAIL
    assert (
        default.message
        == "redirect to another origin: https://login.payer.example/signin?next=/metadata"
    )
    assert default.evidence["error_class"] == "redirect_cross_origin"
    # Configured to follow (without credentials), the login page is named with its title.
    report = discover(handle, limits=Limits(cross_origin_redirects=True))
    result = report.result("metadata.reachable")
    assert result.status is Status.FAIL
    assert "HTML login page on another origin" in result.message
    assert "Member Login" in result.message
    assert result.evidence["redirects"] == ["https://login.payer.example/signin?next=/metadata"]


def test_reachable_fails_on_redirect_to_another_origin() -> None:
    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.host == "fhir.elsewhere.example":
            return fhir_json(capability_statement())
        if request.url.path.endswith("/metadata"):
            return httpx.Response(
                301, headers={"Location": "https://fhir.elsewhere.example/r4/metadata"}
            )
        return fhir_json(smart_configuration())

    result = discover(handle).result("metadata.reachable")
    assert result.status is Status.FAIL
    assert "another origin" in result.message
    assert result.evidence["location"] == "https://fhir.elsewhere.example/r4/metadata"
    followed = discover(handle, limits=Limits(cross_origin_redirects=True)).result(
        "metadata.reachable"
    )
    assert followed.status is Status.FAIL
    assert followed.evidence["final_url"] == "https://fhir.elsewhere.example/r4/metadata"


def test_reachable_warns_when_base_moved_within_origin() -> None:
    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/r4/metadata":
            return httpx.Response(301, headers={"Location": "/v2/r4/metadata"})
        if request.url.path == "/v2/r4/metadata":
            return fhir_json(capability_statement())
        return fhir_json(smart_configuration())

    result = discover(handle).result("metadata.reachable")
    assert result.status is Status.WARN
    assert "base URL has moved" in result.message


def test_reachable_fails_on_redirect_loop() -> None:
    def handle(request: httpx.Request) -> httpx.Response:
        if "metadata" in request.url.path:
            nxt = "/r4/metadata2" if request.url.path.endswith("metadata") else "/r4/metadata"
            return httpx.Response(302, headers={"Location": nxt})
        return fhir_json(smart_configuration())

    result = discover(handle).result("metadata.reachable")
    assert result.status is Status.FAIL
    assert "redirect loop" in result.message


# --- metadata.is_capability_statement -----------------------------------------------------


def test_html_page_with_200_fails_with_title() -> None:
    report = discover(
        payer(
            httpx.Response(
                200, content=LOGIN_PAGE, headers={"Content-Type": "text/html; charset=utf-8"}
            ),
            fhir_json(smart_configuration()),
        )
    )
    assert report.result("metadata.reachable").status is Status.PASS
    result = report.result("metadata.is_capability_statement")
    assert result.status is Status.FAIL
    assert "Member Login | Example Health Plan" in result.message
    assert result.evidence["title"] == "Member Login | Example Health Plan"


def test_html_served_as_json_is_still_recognised() -> None:
    meta = httpx.Response(200, content=LOGIN_PAGE, headers={"Content-Type": "application/json"})
    result = discover(payer(meta, fhir_json(smart_configuration()))).result(
        "metadata.is_capability_statement"
    )
    assert result.status is Status.FAIL and "HTML page" in result.message


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b"", "empty"),
        (b"{not json", "invalid JSON at line 1"),
        (b"[1, 2]", "JSON list, not an object"),
        (b'\xff\xfe{"resourceType":"CapabilityStatement"}', "not UTF-8"),
        (b"[" * 100_000 + b"]" * 100_000, "nested deeper"),
    ],
)
def test_non_json_bodies_fail(body: bytes, fragment: str) -> None:
    meta = httpx.Response(200, content=body, headers={"Content-Type": "application/fhir+json"})
    result = discover(payer(meta, fhir_json(smart_configuration()))).result(
        "metadata.is_capability_statement"
    )
    assert result.status is Status.FAIL
    assert fragment in result.message


def test_deeply_nested_object_is_refused_by_name() -> None:
    body = b'{"a":' * 100_000 + b"1" + b"}" * 100_000
    meta = httpx.Response(200, content=body, headers={"Content-Type": "application/fhir+json"})
    result = discover(payer(meta, fhir_json(smart_configuration()))).result(
        "metadata.is_capability_statement"
    )
    assert result.status is Status.FAIL
    assert "nested deeper" in result.message


def test_dstu2_conformance_is_named() -> None:
    doc = {"resourceType": "Conformance", "fhirVersion": "1.0.2", "status": "active"}
    report = discover(with_capability(doc))  # type: ignore[arg-type]
    result = report.result("metadata.is_capability_statement")
    assert result.status is Status.FAIL
    assert "DSTU2 'Conformance'" in result.message and "1.0.2" in result.message
    assert report.result("metadata.fhir_version").status is Status.FAIL
    assert "DSTU2" in report.result("metadata.fhir_version").message


def test_operation_outcome_with_200_fails() -> None:
    doc = {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "diagnostics": "gateway misconfigured"}],
    }
    result = discover(with_capability(doc)).result("metadata.is_capability_statement")  # type: ignore[arg-type]
    assert result.status is Status.FAIL and "gateway misconfigured" in result.message


# --- metadata.valid_r4 --------------------------------------------------------------------


def test_valid_r4_reports_each_error_with_its_path() -> None:
    doc = capability_statement()
    doc["date"] = "IGNORED_FIELD"
    doc["id"] = "has spaces!"
    doc["rest"][0]["resource"][0]["interaction"][0] = {"documentation": "no code"}
    result = discover(with_capability(doc)).result("metadata.valid_r4")  # type: ignore[arg-type]
    assert result.status is Status.FAIL
    errors = result.evidence["errors"]
    assert any(e.startswith("CapabilityStatement.date") for e in errors)
    assert any(e.startswith("CapabilityStatement.id") for e in errors)
    assert any(
        e.startswith("CapabilityStatement.rest[0].resource[0].interaction[0].code") for e in errors
    ), errors


def test_valid_r4_checks_invariants() -> None:
    doc = capability_statement()
    for key in ("software", "implementation"):
        doc.pop(key)
    doc["kind"] = "capability"
    doc["rest"][0]["resource"].append({"type": "Coverage"})
    result = discover(with_capability(doc)).result("metadata.valid_r4")  # type: ignore[arg-type]
    assert result.status is Status.FAIL
    assert any("cpb-2" in e for e in result.evidence["errors"])
    assert any("cpb-12" in e and "Coverage" in e for e in result.evidence["errors"])


def test_valid_r4_accepts_r4_version_4_0_0() -> None:
    doc = capability_statement()
    doc["fhirVersion"] = "4.0.0"
    report = discover(with_capability(doc))  # type: ignore[arg-type]
    assert report.result("metadata.valid_r4").status is Status.PASS
    version = report.result("metadata.fhir_version")
    assert version.status is Status.WARN
    assert "4.0.0" in version.message and "treat it as R4" in version.message


# --- metadata.fhir_version ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("version", "status", "name"),
    [
        ("4.0.1", Status.PASS, "R4"),
        ("3.0.2", Status.FAIL, "STU3"),
        ("4.3.0", Status.FAIL, "R4B"),
        ("5.0.0", Status.FAIL, "R5"),
    ],
)
def test_fhir_version(version: str, status: Status, name: str) -> None:
    doc = capability_statement()
    doc["fhirVersion"] = version
    result = discover(with_capability(doc)).result("metadata.fhir_version")  # type: ignore[arg-type]
    assert result.status is status
    assert name in result.message
    assert result.evidence["pointer"] == "/fhirVersion"


def test_fhir_version_missing() -> None:
    doc = capability_statement()
    del doc["fhirVersion"]
    result = discover(with_capability(doc)).result("metadata.fhir_version")  # type: ignore[arg-type]
    assert result.status is Status.FAIL and "missing" in result.message


# --- metadata.json_format -----------------------------------------------------------------


def test_json_format_missing_fails() -> None:
    doc = capability_statement()
    doc["format"] = ["xml"]
    result = discover(with_capability(doc)).result("metadata.json_format")  # type: ignore[arg-type]
    assert result.status is Status.FAIL and "does not include json" in result.message


def test_json_format_served_as_plain_json_warns() -> None:
    result = discover(
        with_capability(capability_statement(), content_type="application/json")
    ).result("metadata.json_format")  # type: ignore[arg-type]
    assert result.status is Status.WARN and "application/json" in result.message


# --- metadata.rest_server -----------------------------------------------------------------


def test_rest_server_missing() -> None:
    doc = capability_statement()
    doc["rest"][0]["mode"] = "client"
    result = discover(with_capability(doc)).result("metadata.rest_server")  # type: ignore[arg-type]
    assert result.status is Status.FAIL and "mode 'server'" in result.message


def test_rest_server_without_resources() -> None:
    doc = capability_statement()
    doc["rest"][0]["resource"] = []
    result = discover(with_capability(doc)).result("metadata.rest_server")  # type: ignore[arg-type]
    assert result.status is Status.FAIL and "declares no resources" in result.message


# --- metadata.smart_security --------------------------------------------------------------


def test_smart_security_absent() -> None:
    doc = capability_statement()
    del doc["rest"][0]["security"]
    result = discover(with_capability(doc)).result("metadata.smart_security")  # type: ignore[arg-type]
    assert result.status is Status.FAIL and "no rest.security" in result.message


def test_smart_security_wrong_service_code() -> None:
    doc = capability_statement()
    doc["rest"][0]["security"]["service"] = [{"coding": [{"code": "OAuth"}]}]
    result = discover(with_capability(doc)).result("metadata.smart_security")  # type: ignore[arg-type]
    assert (
        result.status is Status.FAIL
        and "not coded SMART-on-FHIR" in result.message
        and "OAuth" in result.message
    )


def test_smart_security_legacy_system_and_no_token_uri_warns() -> None:
    doc = capability_statement()
    sec = doc["rest"][0]["security"]
    sec["service"][0]["coding"][0]["system"] = "http://hl7.org/fhir/restful-security-service"
    sec["extension"][0]["extension"] = sec["extension"][0]["extension"][:1]
    result = discover(with_capability(doc)).result("metadata.smart_security")  # type: ignore[arg-type]
    assert result.status is Status.WARN
    assert "lacks token" in result.message


# --- metadata.carin_bb_resources ----------------------------------------------------------


def test_carin_bb_missing_eob_fails() -> None:
    doc = capability_statement()
    doc["rest"][0]["resource"] = [
        r for r in doc["rest"][0]["resource"] if r["type"] != "ExplanationOfBenefit"
    ]
    result = discover(with_capability(doc)).result("metadata.carin_bb_resources")  # type: ignore[arg-type]
    assert result.status is Status.FAIL
    assert "ExplanationOfBenefit" in result.message
    assert result.evidence["expected"] == ["ExplanationOfBenefit", "Coverage", "Patient"]


def test_carin_bb_without_profiles_or_instantiates_warns() -> None:
    doc = capability_statement()
    doc.pop("instantiates")
    for r in doc["rest"][0]["resource"]:
        if r["type"] == "Coverage":
            r["supportedProfile"] = []
    report = discover(with_capability(doc))
    # Two requirements, two checks (both recommended); declaring the types still passes.
    assert report.result("metadata.carin_bb_resources").status is Status.PASS  # type: ignore[attr-defined]
    profiles = report.result("metadata.carin_bb_profiles")  # type: ignore[attr-defined]
    assert profiles.status is Status.WARN
    assert "no CARIN BB profile claimed for Coverage" in profiles.message
    instantiates = report.result("metadata.carin_bb_instantiates")  # type: ignore[attr-defined]
    assert instantiates.status is Status.WARN and "does not instantiate" in instantiates.message
    assert {profiles.spec.severity, instantiates.spec.severity} == {"recommended"}


# --- metadata.carin_bb_search --------------------------------------------------------------


def _eob(doc: dict[str, Any]) -> dict[str, Any]:
    return next(r for r in doc["rest"][0]["resource"] if r["type"] == "ExplanationOfBenefit")


def test_carin_bb_search_counts_parameters_declared_for_every_resource() -> None:
    result = discover(good_payer()).result("metadata.carin_bb_search")  # type: ignore[arg-type]
    assert result.status is Status.PASS, result
    # _id and _lastUpdated come from rest.searchParam, the rest from the EOB entry.
    assert {"_id", "_lastUpdated", "patient", "service-date"} <= set(result.evidence["actual"])


def test_carin_bb_search_without_patient_names_the_fallback_it_breaks() -> None:
    doc = capability_statement()
    _eob(doc)["searchParam"] = [
        p for p in _eob(doc)["searchParam"] if p["name"] not in ("patient", "type")
    ]
    result = discover(with_capability(doc)).result("metadata.carin_bb_search")  # type: ignore[arg-type]
    assert result.status is Status.FAIL
    assert result.message.startswith("ExplanationOfBenefit does not declare patient, type")
    assert "per-resource fallback" in result.message
    assert result.evidence["missing"] == ["patient", "type"]
    assert result.evidence["pointer"] == "/rest/resource[type=ExplanationOfBenefit]/searchParam"


def test_carin_bb_search_stu1_parameters_only_warns() -> None:
    doc = capability_statement()
    _eob(doc)["searchParam"] = [
        p
        for p in _eob(doc)["searchParam"]
        if p["name"] not in ("billable-period-start", "service-start-date")
    ]
    result = discover(with_capability(doc)).result("metadata.carin_bb_search")  # type: ignore[arg-type]
    assert result.status is Status.WARN and "CARIN BB STU 2" in result.message
    assert result.evidence["missing"] == ["billable-period-start", "service-start-date"]


def test_carin_bb_search_is_skipped_without_an_eob_resource() -> None:
    doc = capability_statement()
    doc["rest"][0]["resource"] = [
        r for r in doc["rest"][0]["resource"] if r["type"] != "ExplanationOfBenefit"
    ]
    result = discover(with_capability(doc)).result("metadata.carin_bb_search")  # type: ignore[arg-type]
    assert result.status is Status.SKIP and "carin_bb_resources" in result.message


# --- metadata.clinical_resources / patient_everything -------------------------------------


def test_clinical_resources_lists_supported_types() -> None:
    result = discover(good_payer()).result("metadata.clinical_resources")  # type: ignore[arg-type]
    assert result.status is Status.PASS
    assert result.evidence["supported"] == ["Condition", "Immunization", "Observation"]


def test_claims_only_server_warns_on_clinical() -> None:
    doc = capability_statement()
    doc["rest"][0]["resource"] = [
        r
        for r in doc["rest"][0]["resource"]
        if r["type"] not in ("Condition", "Observation", "Immunization")
    ]
    result = discover(with_capability(doc)).result("metadata.clinical_resources")  # type: ignore[arg-type]
    assert result.status is Status.WARN and "claims data only" in result.message


def test_patient_everything_missing_and_system_level() -> None:
    doc = capability_statement()
    patient = next(r for r in doc["rest"][0]["resource"] if r["type"] == "Patient")
    op = patient.pop("operation")
    assert (
        discover(with_capability(doc)).result("metadata.patient_everything").status is Status.FAIL
    )  # type: ignore[arg-type]
    doc["rest"][0]["operation"] = op
    result = discover(with_capability(doc)).result("metadata.patient_everything")  # type: ignore[arg-type]
    assert result.status is Status.WARN and "system level" in result.message


def test_json_shape_is_stable() -> None:
    report = discover(good_payer())  # type: ignore[arg-type]
    data = json.loads(json.dumps(report.to_json()))
    assert set(data) == {"base_url", "started_at", "duration_ms", "checks", "summary"}
    assert set(data["summary"]) == {"pass", "fail", "warn", "skip", "error"}
    check = data["checks"][0]
    assert set(check) == {"id", "title", "severity", "status", "spec", "message", "evidence"}
    assert {"url", "http_status", "latency_ms", "size_bytes", "content_type"} <= set(
        check["evidence"]
    )
