"""portal.* checks: a developer portal fetched like a browser, each verdict and failure."""

from __future__ import annotations

import anyio
import httpx
import pytest

from probe.checks.portal import PortalObservation, run_portal_checks
from probe.http.fetch import Fetcher
from probe.http.limits import Limits
from probe.models import CheckResult, ExtractStep, Status

GOOD = (
    b"""<!DOCTYPE html><html><head><title>Developer Portal | Example Health Plan</title></head>
<body><h1>Patient Access API</h1><p>Our FHIR R4 APIs implement CARIN Blue Button.</p>
<a href="/register">Register your app</a>"""
    + b"<p>documentation</p>" * 40
    + b"</body></html>"
)


def portal(
    handler: object, url: str = "https://developer.payer.example/"
) -> dict[str, CheckResult]:
    async def go() -> dict[str, CheckResult]:
        async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:  # type: ignore[arg-type]
            attempts = await Fetcher(client, Limits(max_retries=0, max_redirects=10)).get(
                url, step=ExtractStep.PORTAL, accept="text/html", follow_cross_origin=True
            )
        return {r.id: r for r in run_portal_checks(PortalObservation(url, attempts[-1]))}

    return anyio.run(go)


def html(body: bytes, status: int = 200) -> object:
    return lambda r: httpx.Response(status, content=body, headers={"Content-Type": "text/html"})


def test_good_portal_after_redirect_to_sso_host() -> None:
    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.host == "developer.payer.example":
            return httpx.Response(302, headers={"Location": "https://portal.payer-cdn.example/dev"})
        return httpx.Response(200, content=GOOD, headers={"Content-Type": "text/html"})

    results = portal(handle)
    assert {k: str(v.status) for k, v in results.items()} == {
        "portal.reachable": "pass",
        "portal.tls_valid": "pass",
        "portal.not_parked": "pass",
        "portal.mentions_api": "pass",
    }
    assert results["portal.mentions_api"].evidence["terms"] == [
        "FHIR",
        "Patient Access",
        "registration",
        "API",
    ]
    assert (
        results["portal.reachable"].evidence["final_url"] == "https://portal.payer-cdn.example/dev"
    )


def test_404_portal() -> None:
    results = portal(html(b"<html><title>Not Found</title></html>", 404))
    assert (
        results["portal.reachable"].status is Status.FAIL
        and "HTTP 404" in results["portal.reachable"].message
    )
    assert results["portal.not_parked"].status is Status.SKIP


def test_parked_domain() -> None:
    results = portal(
        html(
            b"<html><title>payer.example</title><body>This domain may be for sale. Buy this domain.</body></html>"
        )
    )
    assert (
        results["portal.not_parked"].status is Status.FAIL
        and "parked" in results["portal.not_parked"].message
    )


def test_error_page_with_200() -> None:
    results = portal(
        html(
            b"<html><head><title>Page Not Found</title></head><body>"
            + b"x" * 600
            + b"</body></html>"
        )
    )
    assert results["portal.not_parked"].status is Status.FAIL


def test_plain_http_portal_fails_tls() -> None:
    results = portal(html(GOOD), url="http://developer.payer.example/")
    assert (
        results["portal.tls_valid"].status is Status.FAIL
        and "plain HTTP" in results["portal.tls_valid"].message
    )


def test_tls_failure_is_named() -> None:
    def handle(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError(
            "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: certificate has expired"
        )

    results = portal(handle)
    assert results["portal.reachable"].status is Status.FAIL
    assert results["portal.tls_valid"].status is Status.FAIL and results[
        "portal.tls_valid"
    ].message.startswith("TLS failure")


def test_page_without_api_words_warns() -> None:
    results = portal(
        html(b"<html><title>Members</title><body>" + b"Find a doctor. " * 60 + b"</body></html>")
    )
    assert results["portal.mentions_api"].status is Status.WARN


@pytest.mark.parametrize("hops", [11])
def test_redirect_loop(hops: int) -> None:
    counter = {"n": 0}

    def handle(request: httpx.Request) -> httpx.Response:
        counter["n"] += 1
        return httpx.Response(302, headers={"Location": f"/p{counter['n']}"})

    results = portal(handle)
    assert (
        results["portal.reachable"].status is Status.FAIL
        and "redirect loop" in results["portal.reachable"].message
    )
    assert counter["n"] == hops


@pytest.mark.parametrize(
    "url",
    ["http://127.0.0.2:8791/payers/acme/developers", "http://localhost:8080/dev", "http://[::1]/"],
)
def test_plain_http_on_loopback_is_not_applicable(url: str) -> None:
    """The simulated fleet's portals live on loopback, where TLS says nothing about a payer."""
    results = portal(html(GOOD), url=url)
    tls = results["portal.tls_valid"]
    assert tls.status is Status.SKIP
    assert tls.message.startswith("not applicable: the portal is on a loopback address")
    assert tls.evidence["not_applicable"] == "loopback"
    assert results["portal.reachable"].status is Status.PASS


def test_a_public_host_resolving_to_loopback_is_not_exempt() -> None:
    """Only the address written in the URL counts: a public name still needs HTTPS."""
    results = portal(html(GOOD), url="http://127.example.com/")
    assert results["portal.tls_valid"].status is Status.FAIL


def test_loopback_redirecting_to_a_plain_http_public_host_fails() -> None:
    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.host == "127.0.0.1":
            return httpx.Response(302, headers={"Location": "http://portal.payer.example/dev"})
        return httpx.Response(200, content=GOOD, headers={"Content-Type": "text/html"})

    results = portal(handle, url="http://127.0.0.1/dev")
    assert results["portal.tls_valid"].status is Status.FAIL
    assert "plain HTTP (http://portal.payer.example/dev)" in results["portal.tls_valid"].message
