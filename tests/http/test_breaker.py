"""The per-host circuit breaker: what counts, when it opens, and the fetcher failing fast."""

from __future__ import annotations

import anyio
import httpx
import pytest

from probe.http.breaker import CircuitBreaker, failure_name
from probe.http.fetch import Fetcher
from probe.http.limits import Limits
from probe.models import ExtractStep

OO = b'{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"processing"}]}'


def test_what_counts_as_a_failure() -> None:
    assert failure_name(None, "connection_refused") == "connection_refused"
    assert failure_name(None, "no_response") == "no_response"
    assert failure_name(503, None, "text/html", b"<html>down</html>") == "HTTP 503"
    # The application answered (HAPI's 500 for an unknown id): the host is up.
    assert failure_name(500, None, "application/fhir+json", OO) is None
    for ok in (200, 301, 404, 429):
        assert failure_name(ok) is None
    assert failure_name(None, "ssrf_refused") is None
    assert failure_name(None, "circuit_open") is None


def test_opens_after_threshold_consecutive_failures_and_success_resets() -> None:
    breaker = CircuitBreaker(threshold=3)
    assert breaker.record("a", None, "timeout") is None
    assert breaker.record("a", None, "timeout") is None
    assert breaker.record("a", 200) is None  # an answer resets the streak
    assert breaker.record("a", 503) is None
    assert breaker.record("b", None, "connection_refused") is None  # per host
    assert breaker.record("a", None, "connection_reset") is None
    opened = breaker.record("a", None, "timeout")
    assert opened is not None and opened.host == "a"
    assert opened.reason == "3 consecutive failures (HTTP 503 x1, connection_reset x1, timeout x1)"
    assert breaker.refusal("a") is opened and breaker.refusal("b") is None
    assert breaker.refused("a") == 1
    assert [c.host for c in breaker.open_circuits()] == ["a"]
    # It stays open for the rest of the run, whatever happens next.
    assert breaker.record("a", 200) is None and breaker.refusal("a") is opened


def test_threshold_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        CircuitBreaker(threshold=0)


def test_fetcher_stops_hitting_a_failing_host() -> None:
    hits: list[str] = []

    def handle(request: httpx.Request) -> httpx.Response:
        hits.append(request.url.host)
        if request.url.host == "down.example":
            return httpx.Response(503, html="<html>Service Unavailable</html>")
        return httpx.Response(200, json={})

    async def nap(_: float) -> None:
        return None

    async def go() -> list[list[str | None]]:
        breaker = CircuitBreaker(threshold=5)
        async with httpx.AsyncClient(transport=httpx.MockTransport(handle)) as client:
            fetcher = Fetcher(client, Limits(max_retries=2), sleep=nap, breaker=breaker)
            seen = []
            for _ in range(3):
                attempts = await fetcher.get(
                    "https://down.example/metadata", step=ExtractStep.DISCOVERY
                )
                seen.append([a.error_class or str(a.status) for a in attempts])
            other = await fetcher.get("https://up.example/metadata", step=ExtractStep.DISCOVERY)
            seen.append([a.error_class or str(a.status) for a in other])
            final = attempts[-1]
            assert (
                final.error_detail is not None
                and "5 consecutive failures (HTTP 503 x5)" in final.error_detail
            )
            assert breaker.refused("down.example") == 2
            return seen

    seen = anyio.run(go)
    # 3 attempts, then 2 more and the circuit opens mid-retry; then nothing reaches the host.
    assert seen == [
        ["503", "503", "503"],
        ["503", "503", "circuit_open"],
        ["circuit_open"],
        ["200"],
    ]
    assert hits.count("down.example") == 5
