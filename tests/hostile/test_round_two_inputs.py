"""Hostile input, round two (issue 18, item 3): what ended `probe check` or `probe sync` in a
traceback becomes a named finding or a clear usage error, and the other checks still run.

Servers and files are made here: mock payers (httpx.MockTransport) for next links, references
and token responses; a real loopback server for numbers and portal redirects; the CLI in a
subprocess for bad arguments.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from probe.checks.discovery import run_discovery
from probe.checks.portal import PortalObservation, run_portal_checks
from probe.http.fetch import Fetcher, new_client
from probe.http.guard import AddressGuard
from probe.http.limits import Limits
from probe.models import ExtractStep, Status
from probe.sync.result import SyncResult
from tests.discovery_docs import capability_statement, smart_configuration
from tests.servers import Route, serve
from tests.sync.fhir_mock import BASE, MockPayer
from tests.sync.test_sync_mock import refresh_creds, sync

HUGE = "9" * 5000  # past Python's 4,300-digit limit for int()


class BadLinks(MockPayer):
    """A payer whose first $everything page links to `next_href` and whose records carry
    `reference` (both hostile)."""

    def __init__(self, next_href: str | None = None, reference: str | None = None) -> None:
        super().__init__()
        self.next_href = next_href
        if reference is not None:
            self.resources[-1]["subject"] = {"reference": reference}

    def _page(
        self, items: list[dict[str, Any]], query: dict[str, list[str]], key: str
    ) -> httpx.Response:
        response = super()._page(items, query, key)
        if self.next_href is None or key != "everything":
            return response
        bundle = json.loads(response.content)
        bundle["link"] = [{"relation": "next", "url": self.next_href}]
        return self._json(bundle)


@pytest.mark.parametrize(
    "href",
    ["http://[::1", "https://fhir.payer.example/r4/Patient?x=\x01", BASE + "/x?" + "a" * 70_000],
    ids=["unclosed-ipv6", "control-char", "70k-chars"],
)
def test_a_hostile_next_link_is_a_finding(href: str) -> None:
    result = sync(BadLinks(next_href=href))
    names = [f.code for f in result.findings]
    assert "next_link_invalid" in names, names
    assert result.outcome in ("partial", "completed")
    assert sum(result.resources_by_type.values()) > 0  # the first page's data is kept
    finding = next(f for f in result.findings if f.code == "next_link_invalid")
    assert "\x01" not in json.dumps(result.to_json())
    assert len(finding.url or "") < 400


def test_a_hostile_reference_is_unresolvable_not_a_crash() -> None:
    result = sync(BadLinks(reference="http://[::1"))
    assert result.outcome in ("partial", "completed")
    assert len(result.references.unresolved) >= 1


@pytest.mark.parametrize(
    ("token_body", "says"),
    [
        (
            {"access_token": "tök\u00e9n", "token_type": "Bearer", "expires_in": 60},
            "cannot be sent",
        ),
        ({"access_token": "ok\r\nX-Injected: 1", "token_type": "Bearer"}, "cannot be sent"),
    ],
    ids=["non-ascii-token", "crlf-token"],
)
def test_an_unusable_access_token_is_auth_failed(token_body: dict[str, Any], says: str) -> None:
    payer = MockPayer()

    def token(_: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=token_body)

    payer._token = token  # type: ignore[method-assign]
    result = sync(payer, refresh_creds())
    assert result.outcome == "auth_failed"
    assert any(says in f.message for f in result.findings)


def test_a_huge_number_in_the_token_response_is_a_finding() -> None:
    payer = MockPayer()

    def token(_: httpx.Request) -> httpx.Response:
        body = '{"access_token": "abc", "token_type": "Bearer", "expires_in": ' + HUGE + "}"
        return httpx.Response(
            200, content=body.encode(), headers={"Content-Type": "application/json"}
        )

    payer._token = token  # type: ignore[method-assign]
    result: SyncResult = sync(payer, refresh_creds())
    assert result.outcome == "auth_failed"
    assert not any(f.code == "deadline" for f in result.findings)


def test_a_huge_integer_in_metadata_is_named_and_the_other_checks_run() -> None:
    statement = json.dumps(capability_statement()).replace('"4.0.1"', '"4.0.1", "x": ' + HUGE, 1)
    routes = {
        "/r4/metadata": Route(200, statement.encode(), {"Content-Type": "application/fhir+json"}),
        "/r4/.well-known/smart-configuration": Route(
            200, json.dumps(smart_configuration()).encode(), {"Content-Type": "application/json"}
        ),
    }
    with serve(routes) as (root, _):

        async def go() -> Any:
            guard = AddressGuard()
            guard.admit(root)
            async with new_client(guard=guard) as client:
                return await run_discovery(Fetcher(client, Limits(), guard=guard), root + "/r4")

        report = anyio.run(go)
    parsed = report.result("metadata.is_capability_statement")
    assert parsed.status is Status.FAIL
    assert "digits" in parsed.message
    assert report.result("smart.reachable").status is Status.PASS
    json.dumps(report.to_json(), allow_nan=False)


def test_a_portal_redirect_to_port_99999_is_a_named_finding() -> None:
    routes = {"/portal": Route(302, b"", {"Location": "https://developer.example:99999/docs"})}
    with serve(routes) as (root, _):

        async def go() -> Any:
            guard = AddressGuard()
            guard.admit(root)
            async with new_client(guard=guard) as client:
                fetcher = Fetcher(client, Limits(cross_origin_redirects=True), guard=guard)
                return await fetcher.get(
                    root + "/portal", step=ExtractStep.PORTAL, accept="text/html",
                    follow_cross_origin=True,
                )  # fmt: skip

        attempts = anyio.run(go)
    final = attempts[-1]
    assert final.error_class == "redirect_invalid"
    assert "Port out of range" in (final.error_detail or "")
    results = run_portal_checks(PortalObservation(root + "/portal", final))
    assert results and all(r.status is not Status.ERROR for r in results)


def _probe(
    *args: str | bytes, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "probe.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=env or dict(os.environ),
    )


@pytest.mark.parametrize(
    "args",
    [
        ["check", "http://[::1"],
        ["check", "https://fhir.example/r4", "--ca-bundle", "/nonexistent/ca.pem"],
        ["check", "https://fhir.example/r4", "--ca-bundle", "NOT_PEM"],
        ["sync", "https://fhir.example/r4", "--patient", "p1", "--ca-bundle", "NOT_PEM"],
    ],
    ids=["unclosed-ipv6", "missing-ca-bundle", "ca-bundle-not-pem", "sync-ca-bundle"],
)
def test_bad_arguments_are_usage_errors(args: list[str], tmp_path: Path) -> None:
    not_pem = tmp_path / "not.pem"
    not_pem.write_text("this is not a certificate\n")
    done = _probe(*[str(not_pem) if a == "NOT_PEM" else a for a in args])
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert done.stderr.strip()


def test_a_token_store_path_that_is_not_utf8_is_a_usage_error(tmp_path: Path) -> None:
    bad = os.fsencode(tmp_path) + b"/tokens-\xff.yaml"
    done = subprocess.run(
        [sys.executable, "-m", "probe.cli", "sync", "https://fhir.example/r4", "--patient", "p1",
         "--token-store", bad],
        capture_output=True,
        timeout=60,
        check=False,
    )  # fmt: skip
    stderr = done.stderr.decode("utf-8", "replace")
    assert done.returncode == 2, stderr
    assert "not valid UTF-8" in stderr and "Traceback" not in stderr
