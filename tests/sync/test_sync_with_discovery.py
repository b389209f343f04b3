"""`probe sync` fetches the server documents while `$everything` is on its way
(`sync_with_discovery`): the same sync requests and the same result as reading them first, the
CapabilityStatement still deciding the POST and per-resource fallbacks and the SMART
configuration the token endpoint; `$everything` does not wait for discovery's answers."""

from __future__ import annotations

import json
from typing import Any

import anyio
import httpx
import pytest

from probe.directory import credentials as plain
from probe.directory import schema
from probe.directory.secrets import SecretSource
from probe.http.fetch import Fetcher
from probe.http.limits import Limits
from probe.sync.limits import SyncLimits
from probe.sync.result import SyncResult
from probe.sync.session import fetch_documents, sync_patient, sync_with_discovery
from tests.discovery_docs import capability_statement
from tests.sync.fhir_mock import BASE, TOKEN_URL, MockPayer

ENV = {"RT": "refresh-1", "SECRET": "client-secret-xyz", "TOKEN": "static-token"}
SMART = {"token_endpoint": TOKEN_URL, "capabilities": ["client-confidential-symmetric"]}
TIMING = ("created_at", "completed_at", "duration_ms", "timing")


class DiscoveringPayer:
    """A MockPayer that also serves its CapabilityStatement and SMART configuration; with
    `hold`, neither is answered before `$everything` has been asked for."""

    def __init__(
        self, payer: MockPayer, capability: dict[str, Any] | None, *, hold: bool = False
    ) -> None:
        self.payer = payer
        self.capability = capability
        self.hold = hold
        self.everything_asked: anyio.Event | None = None
        self.order: list[str] = []

    async def handler(self, request: httpx.Request) -> httpx.Response:
        if self.everything_asked is None:
            self.everything_asked = anyio.Event()
        path = request.url.path
        if path in ("/r4/metadata", "/r4/.well-known/smart-configuration"):
            if self.hold:
                await self.everything_asked.wait()
            self.order.append(path.rsplit("/", 1)[-1])
            if path == "/r4/metadata":
                if self.capability is None:
                    return httpx.Response(500)
                return httpx.Response(
                    200,
                    content=json.dumps(self.capability).encode(),
                    headers={"Content-Type": "application/fhir+json"},
                )
            return httpx.Response(200, json=SMART)
        if path.endswith("/$everything"):
            self.order.append("$everything")
            self.everything_asked.set()
        return self.payer.handler(request)


def _run(server: DiscoveringPayer, credentials: Any, *, together: bool) -> SyncResult:
    async def nap(_: float) -> None:
        return None

    async def go() -> SyncResult:
        with anyio.fail_after(60):  # a regression that deadlocks fails instead of hanging
            return await sync()

    async def sync() -> SyncResult:
        transport = httpx.MockTransport(server.handler)
        async with httpx.AsyncClient(transport=transport) as client:
            fetcher = Fetcher(client, Limits(), sleep=nap)
            secrets = SecretSource(env=ENV)
            limits = SyncLimits(page_size=4)
            if together:
                return await sync_with_discovery(
                    fetcher, BASE + "/", "p1", credentials, secrets, limits=limits
                )
            documents = await fetch_documents(fetcher, BASE + "/")
            return await sync_patient(
                fetcher,
                documents.base_url,
                "p1",
                credentials,
                secrets,
                capability=documents.capability,
                smart_configuration=documents.smart_configuration,
                limits=limits,
            )

    return anyio.run(go)


def _seen(result: SyncResult) -> tuple[dict[str, Any], list[tuple[str, str, int | None]]]:
    """The result without its clock readings, and its requests in order."""
    figures = {k: v for k, v in result.to_json().items() if k not in TIMING}
    return figures, [(str(e.step), e.url, e.status) for e in result.exchanges]


def _bearer_plain() -> Any:
    return plain.BearerCredentials(token=plain.SecretRef(env="TOKEN"))


def _bearer_directory() -> Any:
    return schema.BearerCredentials(kind="bearer", token=schema.SecretRef(env="TOKEN"))


def _refresh_plain() -> Any:  # no token_url: the SMART configuration's is used
    return plain.RefreshTokenCredentials(
        client_id="probe-app",
        client_secret=plain.SecretRef(env="SECRET"),
        refresh_token=plain.SecretRef(env="RT"),
    )


def _refresh_directory() -> Any:
    return schema.RefreshTokenCredentials(
        kind="refresh_token",
        client_id="probe-app",
        client_secret=schema.SecretRef(env="SECRET"),
        refresh_token=schema.SecretRef(env="RT"),
    )


def _payer(everything: str, credentials: str) -> MockPayer:
    payer = MockPayer(everything=everything)
    payer.token = "static-token" if credentials.startswith("bearer") else None
    return payer


CASES = [
    # (what $everything does, the CapabilityStatement served, the credentials)
    ("ok", capability_statement(), "bearer"),
    ("405", capability_statement(), "bearer"),  # POST fallback: $everything declared
    ("405", None, "bearer"),  # no CapabilityStatement: no POST, per-resource fallback
    ("404", capability_statement(), "bearer"),  # per-resource, planned from the statement
    ("ok", capability_statement(), "refresh"),  # the token endpoint from SMART configuration
    ("404", None, "refresh"),
]


@pytest.mark.parametrize(("everything", "capability", "kind"), CASES)
@pytest.mark.parametrize("built", ["plain", "directory"])
def test_the_same_sync_as_reading_the_documents_first(
    everything: str, capability: dict[str, Any] | None, kind: str, built: str
) -> None:
    make = {
        ("bearer", "plain"): _bearer_plain,
        ("bearer", "directory"): _bearer_directory,
        ("refresh", "plain"): _refresh_plain,
        ("refresh", "directory"): _refresh_directory,
    }[(kind, built)]
    first = _run(DiscoveringPayer(_payer(everything, kind), capability), make(), together=False)
    together = _run(DiscoveringPayer(_payer(everything, kind), capability), make(), together=True)
    assert _seen(together) == _seen(first)
    assert first.outcome in ("completed", "partial")
    steps = first.requests_by_step
    if everything == "405" and capability is not None:
        assert first.everything.method == "POST"
    if everything != "ok" and not (everything == "405" and capability is not None):
        assert first.everything.fallback_used and "individual" in steps
    if kind == "refresh":
        assert steps["token"] == {"200": 1}


def test_everything_goes_out_before_discovery_answers() -> None:
    server = DiscoveringPayer(_payer("ok", "bearer"), capability_statement(), hold=True)
    result = _run(server, _bearer_plain(), together=True)
    assert result.outcome == "completed"
    assert server.order[0] == "$everything"
    assert {"metadata", "smart-configuration"} <= set(server.order)


def test_a_token_endpoint_it_must_discover_waits_for_discovery() -> None:
    server = DiscoveringPayer(_payer("ok", "refresh"), capability_statement())
    result = _run(server, _refresh_plain(), together=True)
    assert result.outcome == "completed"
    assert server.order.index("$everything") > server.order.index("smart-configuration")
    assert result.requests_by_step["token"] == {"200": 1}


def test_a_405_waits_for_the_capability_statement_it_needs() -> None:
    # The statement is held until $everything was asked: the GET's 405 must wait for it to
    # decide the POST, and does.
    server = DiscoveringPayer(_payer("405", "bearer"), capability_statement(), hold=True)
    result = _run(server, _bearer_plain(), together=True)
    assert result.everything.method == "POST" and result.everything.supported
