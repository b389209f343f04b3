"""A refused token or an unreachable host says nothing about `$everything` support.

Regression: a 401 or a TLS failure on the first `$everything` request used to be recorded as
`everything.supported = false` ("unsupported", which the scorecard counts against the payer)
and was followed by ~15 fallback searches doomed to fail the same way.
"""

from __future__ import annotations

from typing import Any

import anyio
import httpx

from probe.directory.schema import BearerCredentials, SecretRef
from probe.directory.secrets import SecretSource
from probe.http.fetch import Fetcher
from probe.http.limits import Limits
from probe.sync.auth import Authorizer
from probe.sync.limits import SyncLimits
from probe.sync.result import SyncResult
from probe.sync.runner import PatientSync
from tests.sync.fhir_mock import BASE, MockPayer

TOKEN = "wrong-token-value-123"


def _sync(handler: Any) -> SyncResult:
    async def nap(_: float) -> None:
        return None

    async def go() -> SyncResult:
        async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
            fetcher = Fetcher(client, Limits(), sleep=nap)
            creds = BearerCredentials(kind="bearer", token=SecretRef(env="TOKEN"))
            auth = Authorizer(
                fetcher, BASE, creds, SecretSource(env={"TOKEN": TOKEN}), record=lambda _: None
            )
            return await PatientSync(
                fetcher, BASE, "p1", auth, limits=SyncLimits(page_size=4)
            ).run()

    return anyio.run(go)


def test_refused_token_is_auth_failed_and_everything_support_unknown() -> None:
    payer = MockPayer(token="the-right-token")
    result = _sync(payer.handler)
    assert result.outcome == "auth_failed"
    assert result.everything.supported is None
    assert result.everything.support_level == "unknown"
    assert not result.everything.fallback_used
    assert result.requests_by_step == {"everything": {"401": 1}}
    assert [f.code for f in result.findings] == ["token_rejected"]
    assert "HTTP 401" in (result.everything.reason or "")
    assert TOKEN not in str(result.to_json())


def test_tls_failure_is_a_finding_not_unsupported_everything() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError(
            "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: self-signed certificate",
            request=request,
        )

    result = _sync(handler)
    assert result.outcome == "failed"
    assert result.everything.supported is None and not result.everything.fallback_used
    assert result.requests_by_step == {"everything": {"tls": 1}}
    (finding,) = result.findings
    assert finding.code == "unreachable" and "CERTIFICATE_VERIFY_FAILED" in finding.message


def test_a_timeout_still_counts_against_everything_and_falls_back() -> None:
    """A timeout may be `$everything`-specific (a huge record), so searches are still tried."""

    payer = MockPayer()

    def handler(request: httpx.Request) -> httpx.Response:
        if "$everything" in request.url.path:
            raise httpx.ReadTimeout("timed out", request=request)
        return payer.handler(request)

    result = _sync(handler)
    assert result.everything.supported is False and result.everything.fallback_used
    assert result.resources_by_type["ExplanationOfBenefit"] == 5
