"""Server-supplied URLs (next links, references, token URLs) against a public base: SSRF refused.

The payer is an in-memory mock on a public-looking base URL; every request it receives is
recorded, so each test can also show that nothing was sent where it must not be.
"""

from __future__ import annotations

import json
from typing import Any

import anyio
import httpx
import pytest

from probe.directory.schema import RefreshTokenCredentials, SecretRef
from probe.directory.secrets import SecretSource
from probe.http.fetch import Fetcher
from probe.http.limits import Limits
from probe.sync.auth import Authorizer
from probe.sync.limits import SyncLimits
from probe.sync.result import SyncResult
from probe.sync.runner import PatientSync
from probe.sync.session import sync_patient
from tests.sync.fhir_mock import BASE, TOKEN_URL, MockPayer, patient_record

ENV = {"RT": "refresh-1", "SECRET": "client-secret-xyz"}


def creds(token_url: str | None = TOKEN_URL) -> RefreshTokenCredentials:
    return RefreshTokenCredentials(
        kind="refresh_token",
        client_id="probe-app",
        client_secret=SecretRef(env="SECRET"),
        refresh_token=SecretRef(env="RT"),
        auth_method="client_secret_basic",
        token_url=token_url,
    )


def rewriting(payer: MockPayer, next_to: str) -> Any:
    """The payer's handler with every Bundle's next link pointed at `next_to`."""

    def handle(request: httpx.Request) -> httpx.Response:
        response = payer.handler(request)
        if "json" not in response.headers.get("content-type", ""):
            return response
        data = json.loads(response.content)
        for link in data.get("link") or []:
            if link.get("relation") == "next":
                link["url"] = next_to
        return httpx.Response(
            response.status_code, content=json.dumps(data).encode(), headers=response.headers
        )

    return handle


def run_sync(handler: Any) -> SyncResult:
    async def nap(_: float) -> None:
        return None

    async def go() -> SyncResult:
        async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
            fetcher = Fetcher(client, Limits(), sleep=nap)
            auth = Authorizer(fetcher, BASE, creds(), SecretSource(env=ENV), record=lambda _: None)
            job = PatientSync(fetcher, BASE, "p1", auth, limits=SyncLimits(page_size=4))
            return await job.run()

    return anyio.run(go)


@pytest.mark.parametrize(
    "target",
    [
        "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
        "http://10.0.0.12:8080/fhir/Patient/p1/$everything?ct=4",
        "http://127.0.0.1:5432/",
        "http://[::1]/fhir?ct=4",
        "http://[fe80::1]/fhir?ct=4",
    ],
)
def test_next_link_into_an_internal_network_is_refused(target: str) -> None:
    payer = MockPayer(resources=patient_record(n_eobs=10))
    result = run_sync(rewriting(payer, target))
    codes = [f.code for f in result.findings]
    assert "ssrf_refused" in codes
    finding = next(f for f in result.findings if f.code == "ssrf_refused")
    assert finding.url is not None and finding.url.startswith(target.split("?")[0][:20])
    assert "server-side request forgery" in finding.message
    assert "next_link_cross_origin" not in codes
    assert all(r.url.host == "fhir.payer.example" for r in payer.requests)
    assert result.pages >= 1  # the first page was kept


def test_next_link_to_another_public_origin_is_cross_origin_not_ssrf() -> None:
    payer = MockPayer(resources=patient_record(n_eobs=10))
    result = run_sync(rewriting(payer, "https://fhir.attacker.example/r4/x?ct=4"))
    codes = [f.code for f in result.findings]
    assert "next_link_cross_origin" in codes and "ssrf_refused" not in codes
    assert all(r.url.host == "fhir.payer.example" for r in payer.requests)


def test_references_into_internal_networks_are_reported_and_never_fetched() -> None:
    record = patient_record(n_eobs=2)
    record[-1]["provider"] = {"reference": "http://169.254.169.254/fhir/Practitioner/x"}
    record[-2]["provider"] = {"reference": "https://other.payer.example/fhir/Practitioner/y"}
    record[0]["managingOrganization"] = {"reference": "http://192.168.1.20/Organization/z"}
    payer = MockPayer(resources=record)
    result = run_sync(payer.handler)
    refused = sorted(f.url or "" for f in result.findings if f.code == "ssrf_refused")
    assert refused == [
        "http://169.254.169.254/fhir/Practitioner/x",
        "http://192.168.1.20/Organization/z",
    ]
    other = [f.url for f in result.findings if f.code == "reference_other_origin"]
    assert other == ["https://other.payer.example/fhir/Practitioner/y"]
    assert result.references.other_origin == 3
    assert all(r.url.host == "fhir.payer.example" for r in payer.requests)


def test_a_token_url_on_another_origin_from_a_document_gets_no_secret() -> None:
    """auth.py: a discovered token endpoint elsewhere is refused unless configured."""
    payer = MockPayer()
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return payer.handler(request)

    async def go() -> SyncResult:
        async with httpx.AsyncClient(transport=httpx.MockTransport(handle)) as client:
            return await sync_patient(
                Fetcher(client, Limits()),
                BASE,
                "p1",
                creds(token_url=None),
                SecretSource(env=ENV),
                smart_configuration={"token_endpoint": "https://login.attacker.example/token"},
            )

    result = anyio.run(go)
    assert result.outcome == "auth_failed"
    assert any("another origin" in f.message for f in result.findings)
    assert all(r.url.host == "fhir.payer.example" for r in seen)
    assert not any("client-secret-xyz" in r.content.decode() for r in seen)


def test_a_jwks_uri_into_an_internal_network_is_not_fetched() -> None:
    """The SMART configuration's jwks_uri (fetched for drift) is server-supplied too."""
    from datetime import UTC, datetime

    from probe.drift.keys import observe_key_set
    from probe.models import Report

    seen: list[str] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        return httpx.Response(200, json={"keys": []})

    report = Report(base_url=BASE, started_at=datetime.now(UTC))
    report.documents["smart_configuration"] = {"jwks_uri": "http://169.254.169.254/keys"}

    async def go() -> None:
        async with httpx.AsyncClient(transport=httpx.MockTransport(handle)) as client:
            await observe_key_set(Fetcher(client, Limits()), report)

    anyio.run(go)
    assert seen == []
    assert report.exchanges[-1].error_class == "ssrf_refused"
    result = report.result("smart.jwks")
    assert result.evidence.get("error_class") == "ssrf_refused", result
