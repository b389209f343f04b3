"""The fetch layer: classification, retries, Retry-After, caps, redirects and credentials."""

from __future__ import annotations

import gzip
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import anyio
import httpx
import pytest

from probe.http.fetch import Fetcher, retry_after_seconds
from probe.http.limits import Limits
from probe.models import Exchange, ExtractStep


def fetch(
    handler: object,
    url: str = "https://fhir.payer.example/r4/metadata",
    limits: Limits | None = None,
    **kw: object,
) -> tuple[list[Exchange], list[float]]:
    slept: list[float] = []

    async def nap(seconds: float) -> None:
        slept.append(seconds)

    async def go() -> list[Exchange]:
        async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:  # type: ignore[arg-type]
            return await Fetcher(client, limits or Limits(), sleep=nap).get(
                url, step=ExtractStep.DISCOVERY, **kw
            )  # type: ignore[arg-type]

    return anyio.run(go), slept


def test_retry_after_seconds_and_http_date() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert retry_after_seconds("7") == 7.0
    assert (
        retry_after_seconds(format_datetime(now + timedelta(seconds=30), usegmt=True), now=now)
        == 30.0
    )
    assert (
        retry_after_seconds(format_datetime(now - timedelta(seconds=30), usegmt=True), now=now)
        == 0.0
    )
    assert retry_after_seconds("soon") is None
    assert retry_after_seconds(None) is None


def test_429_honours_retry_after_then_succeeds() -> None:
    answers = iter(
        [httpx.Response(429, headers={"Retry-After": "3"}), httpx.Response(200, json={})]
    )
    attempts, slept = fetch(lambda r: next(answers))
    assert [a.status for a in attempts] == [429, 200]
    assert [str(a.step) for a in attempts] == ["discovery", "retry"]
    assert slept == [3.0]


def test_retry_after_is_capped() -> None:
    answers = iter([httpx.Response(503, headers={"Retry-After": "86400"}), httpx.Response(200)])
    _, slept = fetch(lambda r: next(answers), limits=Limits(max_retry_after=60))
    assert slept == [60.0]


@pytest.mark.parametrize("status", [400, 401, 403, 404, 422])
def test_no_retry_on_client_errors(status: int) -> None:
    attempts, slept = fetch(lambda r: httpx.Response(status))
    assert len(attempts) == 1 and slept == []


def test_retries_are_bounded_with_backoff() -> None:
    attempts, slept = fetch(
        lambda r: httpx.Response(502), limits=Limits(max_retries=3, backoff_base=1.0)
    )
    assert len(attempts) == 4
    assert len(slept) == 3
    assert 0.5 <= slept[0] <= 1.0 and 1.0 <= slept[1] <= 2.0 and 2.0 <= slept[2] <= 4.0


def test_body_cap_is_enforced_while_streaming() -> None:
    sent = {"chunks": 0}

    async def endless() -> object:
        while True:
            sent["chunks"] += 1
            yield b"x" * 65536

    attempts, _ = fetch(
        lambda r: httpx.Response(200, content=endless()), limits=Limits(max_body_bytes=1_000_000)
    )
    final = attempts[-1]
    assert final.truncated and final.error_class == "body_too_large"
    assert final.size_bytes == 1_000_000
    assert sent["chunks"] < 20


def test_gzip_bomb_stops_at_cap() -> None:
    bomb = gzip.compress(b"\0" * 50_000_000)
    assert len(bomb) < 100_000
    attempts, _ = fetch(
        lambda r: httpx.Response(200, content=bomb, headers={"Content-Encoding": "gzip"}),
        limits=Limits(max_body_bytes=2_000_000),
    )
    assert attempts[-1].error_class == "body_too_large"
    assert attempts[-1].size_bytes == 2_000_000


def test_credentials_never_follow_a_cross_origin_redirect() -> None:
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.host == "fhir.payer.example":
            return httpx.Response(302, headers={"Location": "https://evil.example/steal"})
        return httpx.Response(200)

    attempts, _ = fetch(handle, headers={"Authorization": "Bearer s3cr3t-token"})
    assert [r.url.host for r in seen] == ["fhir.payer.example"]
    assert attempts[-1].error_class == "redirect_cross_origin"

    seen.clear()
    attempts, _ = fetch(
        handle, headers={"Authorization": "Bearer s3cr3t-token"}, follow_cross_origin=True
    )
    assert [r.url.host for r in seen] == ["fhir.payer.example", "evil.example"]
    assert "authorization" not in seen[1].headers
    assert attempts[-1].status == 200


def test_same_origin_redirect_keeps_credentials_and_is_recorded() -> None:
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.path == "/r4/metadata":
            return httpx.Response(301, headers={"Location": "/v2/metadata"})
        return httpx.Response(200)

    attempts, _ = fetch(handle, headers={"Authorization": "Bearer tok"})
    assert seen[1].headers["authorization"] == "Bearer tok"
    assert attempts[-1].redirects == ("https://fhir.payer.example/v2/metadata",)
    assert attempts[-1].final_url == "https://fhir.payer.example/v2/metadata"


def test_query_secrets_are_redacted_in_exchanges() -> None:
    attempts, _ = fetch(
        lambda r: httpx.Response(200),
        url="https://fhir.payer.example/r4/Patient?access_token=abcd1234&_count=5",
    )
    assert "abcd1234" not in attempts[-1].url
    assert "_count=5" in attempts[-1].url


def test_total_deadline_bounds_a_trickling_server() -> None:
    async def trickle() -> object:
        while True:
            await anyio.sleep(0.05)
            yield b"x"

    attempts, _ = fetch(
        lambda r: httpx.Response(200, content=trickle()),
        limits=Limits(total_timeout=0.5, max_retries=0),
    )
    assert attempts[-1].error_class == "timeout"
    assert attempts[-1].latency_ms < 2000


def test_a_server_that_never_answers_is_no_response() -> None:
    def silent(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    attempts, _ = fetch(silent, limits=Limits(max_retries=0))
    assert attempts[-1].error_class == "no_response"
    assert "no response began" in (attempts[-1].error_detail or "")


def test_a_body_shorter_than_its_content_length_is_named() -> None:
    def liar(request: httpx.Request) -> httpx.Response:
        raise httpx.RemoteProtocolError(
            "peer closed connection without sending complete message body: "
            "received 100 bytes, expected 1100",
            request=request,
        )

    attempts, _ = fetch(liar, limits=Limits(max_retries=0))
    assert attempts[-1].error_class == "content_length_mismatch"


def test_a_declared_length_over_the_cap_is_not_read() -> None:
    pulled = {"chunks": 0}

    async def body() -> object:
        for _ in range(1000):
            pulled["chunks"] += 1
            yield b"x" * 65536

    attempts, _ = fetch(
        lambda r: httpx.Response(200, content=body(), headers={"Content-Length": str(65536000)}),
        limits=Limits(max_body_bytes=1_000_000),
    )
    final = attempts[-1]
    assert final.error_class == "body_too_large" and final.truncated
    assert "declared 65536000 bytes" in (final.error_detail or "")
    assert pulled["chunks"] == 0


def test_redirect_into_an_internal_network_is_refused() -> None:
    seen: list[str] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        return httpx.Response(302, headers={"Location": "http://169.254.169.254/latest/meta-data/"})

    attempts, _ = fetch(handle, follow_cross_origin=True)
    assert attempts[-1].error_class == "ssrf_refused"
    assert seen == ["https://fhir.payer.example/r4/metadata"]


def test_a_request_body_never_follows_a_redirect_to_another_origin() -> None:
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(307, headers={"Location": "https://elsewhere.example/token"})

    async def go() -> list[Exchange]:
        async with httpx.AsyncClient(transport=httpx.MockTransport(handle)) as client:
            return await Fetcher(client).request(
                "POST",
                "https://fhir.payer.example/oauth/token",
                step=ExtractStep.TOKEN,
                content=b"grant_type=refresh_token&client_secret=s3cr3t",
                follow_cross_origin=True,
            )

    attempts = anyio.run(go)
    assert attempts[-1].error_class == "redirect_cross_origin"
    assert "with the request body" in (attempts[-1].error_detail or "")
    assert [r.url.host for r in seen] == ["fhir.payer.example"]


def test_supplied_urls_are_checked_before_sending() -> None:
    seen: list[str] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        return httpx.Response(200, json={})

    attempts, _ = fetch(
        handle, url="http://10.0.0.7/jwks.json", supplied_by="https://fhir.payer.example/r4"
    )
    assert attempts[-1].error_class == "ssrf_refused" and seen == []
    attempts, _ = fetch(
        handle,
        url="https://keys.payer.example/jwks.json",
        supplied_by="https://fhir.payer.example/r4",
    )
    assert attempts[-1].status == 200
