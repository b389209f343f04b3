"""auth.anonymous_refused: one search without a token, and what each answer means."""

from __future__ import annotations

import json

import httpx
import pytest

from probe.models import Report, Status
from tests.discovery_docs import BASE, LOGIN_PAGE, capability_statement, smart_configuration
from tests.mock_payer import discover, fhir_json

BUNDLE_WITH_DATA = {
    "resourceType": "Bundle",
    "type": "searchset",
    "entry": [
        {"resource": {"resourceType": "Patient", "id": "p1", "name": [{"family": "Doe"}]}},
        {"resource": {"resourceType": "Patient", "id": "p2", "name": [{"family": "Roe"}]}},
    ],
}


def payer_answering(anonymous: httpx.Response) -> tuple[list[httpx.Request], object]:
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path.endswith("/metadata"):
            return fhir_json(capability_statement())
        if path.endswith("/.well-known/smart-configuration"):
            return fhir_json(smart_configuration(), content_type="application/json")
        seen.append(request)
        return anonymous

    return seen, handle


def anonymous_result(anonymous: httpx.Response) -> tuple[Report, list[httpx.Request]]:
    seen, handle = payer_answering(anonymous)
    return discover(handle), seen  # type: ignore[arg-type]


@pytest.mark.parametrize("status", [401, 403, 404])
def test_a_refusal_passes(status: int) -> None:
    headers = {"WWW-Authenticate": 'Bearer realm="fhir"'} if status == 401 else {}
    report, seen = anonymous_result(httpx.Response(status, headers=headers))
    result = report.result("auth.anonymous_refused")
    assert result.status is Status.PASS and f"HTTP {status}" in result.message
    assert (result.evidence.get("www_authenticate") is not None) == (status == 401)
    # One request, to the base URL's Patient search, with no credentials at all.
    assert [str(r.url) for r in seen] == [f"{BASE}/Patient?_count=1"]
    assert "authorization" not in seen[0].headers
    assert seen[0].headers["accept"] == "application/fhir+json"


def test_member_data_without_a_token_fails_and_is_only_counted() -> None:
    report, _ = anonymous_result(fhir_json(BUNDLE_WITH_DATA))
    result = report.result("auth.anonymous_refused")
    assert result.status is Status.FAIL and result.spec.severity.value == "required"
    assert "2 entries (2 Patient): member data is served to anyone" in result.message
    assert result.evidence["entries"] == 2 and result.evidence["entry_types"] == {"Patient": 2}
    assert "Doe" not in json.dumps(result.evidence)  # counted, never kept
    assert "auth.anonymous_refused" in [r.spec.id for r in report.failed_required]


def test_an_empty_bundle_without_a_token_still_fails() -> None:
    empty = {"resourceType": "Bundle", "type": "searchset", "total": 0}
    report, _ = anonymous_result(fhir_json(empty))
    result = report.result("auth.anonymous_refused")
    assert result.status is Status.FAIL and "an empty Bundle" in result.message


def test_a_200_that_is_not_a_bundle_fails() -> None:
    report, _ = anonymous_result(httpx.Response(200, content=b"ok"))
    result = report.result("auth.anonymous_refused")
    assert result.status is Status.FAIL and result.evidence["actual"] == 200


@pytest.mark.parametrize(
    ("answer", "words"),
    [
        (httpx.Response(400, json={"resourceType": "OperationOutcome"}), "HTTP 400 without"),
        (httpx.Response(500), "HTTP 500 without"),
        (
            httpx.Response(200, content=LOGIN_PAGE, headers={"Content-Type": "text/html"}),
            "with an HTML page",
        ),
    ],
)
def test_answers_that_do_not_say_a_token_is_needed_warn(answer: httpx.Response, words: str) -> None:
    report, _ = anonymous_result(answer)
    result = report.result("auth.anonymous_refused")
    assert result.status is Status.WARN and words in result.message, result.message


def test_no_answer_is_skipped_not_failed() -> None:
    def handle(request: httpx.Request) -> httpx.Response:
        if "Patient" in request.url.path:
            raise httpx.ConnectError("[Errno 111] Connection refused")
        if request.url.path.endswith("/metadata"):
            return fhir_json(capability_statement())
        return fhir_json(smart_configuration(), content_type="application/json")

    result = discover(handle).result("auth.anonymous_refused")
    assert result.status is Status.SKIP and "connection refused" in result.message.lower()


def test_a_redirect_elsewhere_is_not_followed() -> None:
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.path.endswith("/metadata"):
            return fhir_json(capability_statement())
        if request.url.path.endswith("smart-configuration"):
            return fhir_json(smart_configuration(), content_type="application/json")
        return httpx.Response(302, headers={"Location": "https://login.other.example/sso"})

    result = discover(handle).result("auth.anonymous_refused")
    assert result.status is Status.WARN
    assert "https://login.other.example/sso" in result.message
    assert not any(r.url.host == "login.other.example" for r in seen)
