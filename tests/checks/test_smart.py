"""Every smart.* check id: the pass case and each way it fails."""

from __future__ import annotations

import httpx
import pytest

from probe.models import Status
from tests.discovery_docs import (
    LOGIN_PAGE,
    capability_statement,
    oidc_configuration,
    smart_configuration,
)
from tests.mock_payer import discover, fhir_json, payer


def with_smart(smart: httpx.Response, capability: dict[str, object] | None = None) -> object:
    return payer(fhir_json(capability or capability_statement()), smart)


def smart_json(doc: dict[str, object], content_type: str = "application/json") -> httpx.Response:
    return fhir_json(doc, content_type=content_type)  # type: ignore[arg-type]


def test_smart_request_path_keeps_base_path_and_accepts_json() -> None:
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return with_smart(smart_json(smart_configuration()))(request)  # type: ignore[operator]

    discover(handle)
    smart_request = next(r for r in seen if "well-known" in r.url.path)
    assert str(smart_request.url) == "https://fhir.payer.example/r4/.well-known/smart-configuration"
    assert smart_request.headers["accept"] == "application/json"


@pytest.mark.parametrize(
    ("status", "fragment"),
    [(404, "no SMART configuration"), (401, "must be public"), (500, "HTTP 500")],
)
def test_reachable_failures(status: int, fragment: str) -> None:
    report = discover(with_smart(httpx.Response(status)))  # type: ignore[arg-type]
    result = report.result("smart.reachable")
    assert result.status is Status.FAIL and fragment in result.message
    for dependent in (
        "smart.is_json",
        "smart.required_fields",
        "smart.pkce_s256",
        "smart.matches_capability",
    ):
        assert report.result(dependent).status is Status.SKIP


def test_reachable_connection_refused() -> None:
    def handle(request: httpx.Request) -> httpx.Response:
        if "well-known" in request.url.path:
            raise httpx.ConnectError("[Errno 111] Connection refused")
        return fhir_json(capability_statement())

    result = discover(handle).result("smart.reachable")  # type: ignore[arg-type]
    assert result.status is Status.FAIL and result.message.startswith("connection refused")


def test_is_json_fails_on_html() -> None:
    result = discover(
        with_smart(httpx.Response(200, content=LOGIN_PAGE, headers={"Content-Type": "text/html"}))
    ).result("smart.is_json")  # type: ignore[arg-type]
    assert result.status is Status.FAIL
    assert "Member Login" in result.message
    assert result.evidence["title"] == "Member Login | Example Health Plan"


def test_is_json_warns_on_wrong_content_type() -> None:
    result = discover(with_smart(smart_json(smart_configuration(), "text/plain"))).result(
        "smart.is_json"
    )  # type: ignore[arg-type]
    assert result.status is Status.WARN and "text/plain" in result.message


def test_is_json_accepts_fhir_json() -> None:
    result = discover(
        with_smart(smart_json(smart_configuration(), "application/fhir+json"))
    ).result("smart.is_json")  # type: ignore[arg-type]
    assert result.status is Status.PASS


def test_required_fields_two_field_configuration() -> None:
    doc = {
        "authorization_endpoint": "https://a.example/auth",
        "token_endpoint": "https://a.example/token",
    }
    result = discover(with_smart(smart_json(doc))).result("smart.required_fields")  # type: ignore[arg-type]
    assert result.status is Status.FAIL
    assert result.evidence["missing_required"] == [
        "grant_types_supported",
        "capabilities",
        "code_challenge_methods_supported",
    ]


def test_required_fields_names_oidc_document() -> None:
    result = discover(with_smart(smart_json(oidc_configuration()))).result("smart.required_fields")  # type: ignore[arg-type]
    assert result.status is Status.FAIL
    assert "OpenID Connect discovery document" in result.message


def test_required_fields_conditional() -> None:
    doc = smart_configuration()
    del doc["authorization_endpoint"]
    del doc["jwks_uri"]
    report = discover(with_smart(smart_json(doc)))
    result = report.result("smart.conditional_fields")  # type: ignore[attr-defined]
    assert result.status is Status.FAIL
    assert "authorization_endpoint (required by launch-standalone/launch-ehr)" in result.message
    assert "jwks_uri (required by sso-openid-connect)" in result.message
    # One requirement per check: the required fields themselves are all there.
    assert report.result("smart.required_fields").status is Status.PASS  # type: ignore[attr-defined]


def test_required_fields_type_and_url_and_grant_problems() -> None:
    doc = smart_configuration()
    doc["capabilities"] = "launch-standalone"
    doc["token_endpoint"] = "/oauth2/token"
    doc["grant_types_supported"] = ["client_credentials"]
    report = discover(with_smart(smart_json(doc)))
    forms = report.result("smart.field_forms")  # type: ignore[attr-defined]
    assert forms.status is Status.FAIL
    assert "not arrays: capabilities" in forms.message
    assert "not absolute URLs: token_endpoint" in forms.message
    grant = report.result("smart.authorization_code_grant")  # type: ignore[attr-defined]
    assert grant.status is Status.FAIL and "lacks authorization_code" in grant.message
    assert report.result("smart.required_fields").status is Status.PASS  # type: ignore[attr-defined]


def test_required_fields_recommended_missing_warns() -> None:
    doc = smart_configuration()
    for key in ("management_endpoint", "introspection_endpoint", "revocation_endpoint"):
        del doc[key]
    report = discover(with_smart(smart_json(doc)))
    assert report.result("smart.required_fields").status is Status.PASS  # type: ignore[attr-defined]
    result = report.result("smart.recommended_fields")  # type: ignore[attr-defined]
    assert result.status is Status.WARN and result.spec.severity == "recommended"
    assert result.evidence["missing_recommended"] == [
        "management_endpoint",
        "introspection_endpoint",
        "revocation_endpoint",
    ]


@pytest.mark.parametrize(
    ("methods", "status", "fragment"),
    [
        (["S256"], Status.PASS, "S256 offered"),
        (["S256", "plain"], Status.FAIL, "'plain'"),
        (["plain"], Status.FAIL, "S256 not offered"),
        (None, Status.FAIL, "missing"),
    ],
)
def test_pkce(methods: list[str] | None, status: Status, fragment: str) -> None:
    doc = smart_configuration()
    if methods is None:
        del doc["code_challenge_methods_supported"]
    else:
        doc["code_challenge_methods_supported"] = methods
    result = discover(with_smart(smart_json(doc))).result("smart.pkce_s256")  # type: ignore[arg-type]
    assert result.status is status and fragment in result.message


def test_matches_capability_mismatch() -> None:
    doc = smart_configuration()
    doc["token_endpoint"] = "https://auth.payer.example/oauth2/v2/token"
    result = discover(with_smart(smart_json(doc))).result("smart.matches_capability")  # type: ignore[arg-type]
    assert result.status is Status.FAIL
    assert (
        "token_endpoint https://auth.payer.example/oauth2/v2/token != oauth-uris token"
        in result.message
    )


def test_matches_capability_ignores_trailing_slash() -> None:
    doc = smart_configuration()
    doc["token_endpoint"] += "/"
    result = discover(with_smart(smart_json(doc))).result("smart.matches_capability")  # type: ignore[arg-type]
    assert result.status is Status.PASS


def test_matches_capability_skips_without_oauth_uris() -> None:
    cap = capability_statement()
    del cap["rest"][0]["security"]["extension"]
    result = discover(with_smart(smart_json(smart_configuration()), cap)).result(
        "smart.matches_capability"
    )  # type: ignore[arg-type]
    assert result.status is Status.SKIP and "no oauth-uris" in result.message


def test_patient_access_capabilities() -> None:
    doc = smart_configuration()
    doc["capabilities"] = ["launch-ehr", "client-confidential-asymmetric"]
    result = discover(with_smart(smart_json(doc))).result("smart.patient_access_capabilities")  # type: ignore[arg-type]
    assert result.status is Status.FAIL
    assert (
        "launch-standalone" in result.message
        and "client-public or client-confidential-symmetric" in result.message
    )
    doc["capabilities"] = [
        "launch-standalone",
        "client-public",
        "context-standalone-patient",
        "permission-patient",
    ]
    result = discover(with_smart(smart_json(doc))).result("smart.patient_access_capabilities")  # type: ignore[arg-type]
    assert result.status is Status.WARN and "permission-offline" in result.message
