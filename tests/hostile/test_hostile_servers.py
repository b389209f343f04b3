"""Each hostile server of the fleet against `probe check` and `probe sync`, on real sockets.

For every hostile archetype (probe/fleet/hostile.py) one payer misbehaves on discovery (what
`probe check` sees) and another on its FHIR data (what `probe sync` sees). For each the test
shows: the probe finishes within its deadline (wall time, generous margin: these are bounds,
not speed targets); this process's memory stays under a stated bound while probing (peak RSS
growth, the fleet included since it runs here too); the finding is recorded under its stable
name; and no Authorization header reached any other origin (the fleet logs every header it
receives, per host).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
import yaml

from probe.checks.discovery import run_discovery
from probe.cli import options_bounds as bounds
from probe.directory.schema import Endpoint
from probe.directory.secrets import SecretSource
from probe.fleet.app import Fleet
from probe.fleet.config import parse_fleet_config
from probe.fleet.serve import running_fleet
from probe.http.breaker import CircuitBreaker
from probe.http.fetch import Fetcher
from probe.models import Report
from probe.sync.limits import SyncLimits
from probe.sync.result import SyncResult
from probe.sync.session import sync_patient
from tests.hostile.conftest import assert_credentials_stayed_home, peak_memory

pytestmark = [pytest.mark.slow]

TIMEOUT = 2.0  # --timeout: connect/read timeouts and the total deadline of one request
RETRIES = 1  # --max-retries
SYNC_DEADLINE = 30.0  # --deadline of `probe sync`
# A check makes two requests at once, each (RETRIES + 1) attempts of at most TIMEOUT plus backoff.
CHECK_BOUND_S = (RETRIES + 1) * (TIMEOUT + 1.0) + 3.0
SYNC_BOUND_S = SYNC_DEADLINE + 3.0
# Bodies are capped at 20 MiB (the default) while a server sends 100 MiB, 10 GiB of gzip or
# an endless stream: the process may hold the capped body (and its copy) but never the rest.
MEMORY_BOUND_MB = 100.0


@dataclass(frozen=True)
class Case:
    """A hostile archetype and the finding each probe must record."""

    id: str
    archetype: str
    params: dict[str, Any]
    check: tuple[str, str, str] | None  # (check id, evidence key, name)
    sync: str | None  # sync finding code


CASES = [
    Case("trickle", "trickle", {}, ("metadata.reachable", "error_class", "timeout"), "timeout"),
    Case(
        "endless_body",
        "endless_body",
        {},
        ("metadata.reachable", "error_class", "body_too_large"),
        "body_too_large",
    ),
    Case(
        "huge_body",
        "huge_body",
        {"mb": 100},
        ("metadata.reachable", "error_class", "body_too_large"),
        "body_too_large",
    ),
    Case(
        "huge_body_chunked",  # no Content-Length: the cap must bite while streaming
        "huge_body",
        {"mb": 100, "chunked": True},
        ("metadata.reachable", "error_class", "body_too_large"),
        "body_too_large",
    ),
    Case(
        "gzip_bomb",
        "gzip_bomb",
        {"decompressed_mb": 10_240},
        ("metadata.reachable", "error_class", "body_too_large"),
        "body_too_large",
    ),
    Case(
        "deep_json",
        "deep_json",
        {"depth": 100_000},
        ("metadata.is_capability_statement", "body_problem", "too_deep"),
        "too_deep",
    ),
    Case(
        "redirect_loop",
        "redirect_loop",
        {},
        ("metadata.reachable", "error_class", "too_many_redirects"),
        "too_many_redirects",
    ),
    Case(
        "redirect_cross_origin",
        "redirect_cross_origin",
        {},
        ("metadata.reachable", "error_class", "redirect_cross_origin"),
        "redirect_cross_origin",
    ),
    Case("next_link_link_local", "next_link_elsewhere", {"to": "link_local"}, None, "ssrf_refused"),
    Case(
        "next_link_other_loopback",
        "next_link_elsewhere",
        {"to": "other_loopback"},
        None,
        "next_link_cross_origin",
    ),
    Case(
        "invalid_utf8",
        "invalid_utf8",
        {},
        ("metadata.is_capability_statement", "body_problem", "invalid_utf8"),
        "invalid_utf8",
    ),
    Case(
        "lying_length_longer",
        "lying_length",
        {"declared": "longer"},
        ("metadata.reachable", "error_class", "content_length_mismatch"),
        "content_length_mismatch",
    ),
    Case(
        "lying_length_shorter",
        "lying_length",
        {"declared": "shorter"},
        ("metadata.is_capability_statement", "body_problem", "invalid_json"),
        "invalid_json",
    ),
    Case(
        "never_answers",
        "never_answers",
        {},
        ("metadata.reachable", "error_class", "no_response"),
        "no_response",
    ),
]


def fleet_config(case: Case) -> dict[str, Any]:
    """Three payers: hostile on discovery, hostile on data only, and a healthy neighbour."""
    check_params = {**case.params, "scope": "discovery"}
    sync_params = {**case.params, "scope": "data"}
    return {
        "seed": 5,
        "hosts": 2,
        "payers": [
            {"slug": "on-discovery", "archetypes": [{case.archetype: check_params}], "patients": 1},
            {"slug": "on-data", "archetypes": [{case.archetype: sync_params}], "patients": 1},
            {"slug": "neighbour", "patients": 1},
        ],
    }


def new_fetcher(client: httpx.AsyncClient) -> Fetcher:
    """A fetcher bounded like `probe check/sync --timeout 2 --max-retries 1` (defaults else)."""
    limits = bounds.fetch_limits(TIMEOUT, max_retries=RETRIES)
    return Fetcher(client, limits, breaker=CircuitBreaker(bounds.DEFAULT_BREAKER_THRESHOLD))


async def check(base_url: str) -> Report:
    async with httpx.AsyncClient() as client:
        return await run_discovery(new_fetcher(client), base_url)


async def sync(endpoint: Endpoint, secrets: Path) -> SyncResult:
    async with httpx.AsyncClient() as client:
        fetcher = new_fetcher(client)
        report = await run_discovery(fetcher, endpoint.base_url)
        return await sync_patient(
            fetcher,
            report.base_url,
            endpoint.test_patients[0].id,
            endpoint.credentials,
            SecretSource(secrets),
            capability=report.documents.get("capability"),
            smart_configuration=report.documents.get("smart_configuration"),
            limits=SyncLimits(page_size=20, deadline_s=SYNC_DEADLINE),
        )


def endpoints(fleet: Fleet, secrets: Path) -> dict[str, Endpoint]:
    secrets.write_text(yaml.safe_dump(fleet.secrets()))
    return {
        p.endpoints[0].base_url.split("/payers/")[1].split("/")[0]: p.endpoints[0]
        for p in fleet.directory(str(secrets)).payers
    }


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_hostile_server(case: Case, tmp_path: Path) -> None:
    config = parse_fleet_config(fleet_config(case))
    out: dict[str, Any] = {}

    async def go() -> None:
        async with running_fleet(config) as fleet:
            eps = endpoints(fleet, tmp_path / "secrets.yaml")
            if case.check is not None:
                with peak_memory() as memory:
                    t0 = time.monotonic()
                    out["report"] = await check(fleet.base_url("on-discovery"))
                    out["check_s"] = time.monotonic() - t0
                out["check_mb"] = memory.growth_mb
            if case.sync is not None:
                with peak_memory() as memory:
                    t0 = time.monotonic()
                    out["sync"] = await sync(eps["on-data"], tmp_path / "secrets.yaml")
                    out["sync_s"] = time.monotonic() - t0
                out["sync_mb"] = memory.growth_mb
            # The healthy neighbour on an ordinary host is unaffected.
            out["neighbour"] = await check(fleet.base_url("neighbour"))
            out["fleet"] = fleet
            assert_credentials_stayed_home(fleet)
            out["alt_hosts"] = {
                fleet.site(s).alt_host: [
                    r for r in fleet.stats.records(host=fleet.site(s).alt_host)
                ]
                for s in ("on-discovery", "on-data")
            }

    anyio.run(go)
    figures = {k: round(v, 2) for k, v in out.items() if k.endswith(("_s", "_mb"))}
    print(f"{case.id}: {figures}")  # shown with -s; the bounds are asserted below

    if case.check is not None:
        check_id, key, name = case.check
        result = out["report"].result(check_id)
        assert result.status.value == "fail", result
        assert result.evidence.get(key) == name, result.evidence
        assert out["check_s"] < CHECK_BOUND_S, figures
        assert out["check_mb"] < MEMORY_BOUND_MB, figures
    if case.sync is not None:
        result = out["sync"]
        codes = [f.code for f in result.findings]
        assert case.sync in codes, (codes, result.outcome)
        assert result.outcome != "running"
        assert out["sync_s"] < SYNC_BOUND_S, figures
        assert out["sync_mb"] < MEMORY_BOUND_MB, figures
        assert not any("169.254." in ex.url for ex in result.exchanges)
    assert out["neighbour"].result("metadata.reachable").status.value == "pass"
    if case.archetype == "redirect_cross_origin":
        # Discovery followed the moved base to the other origin, without credentials; the
        # sync's requests (with the token) did not follow at all.
        followed = [r for records in out["alt_hosts"].values() for r in records]
        assert followed and all(r.authorization is None for r in followed)
        assert all("$everything" not in r.path for r in followed)


def test_the_breaker_stops_hammering_a_host_that_never_answers(tmp_path: Path) -> None:
    """A sync against a server that never answers: five failures, then nothing more is sent."""
    case = next(c for c in CASES if c.id == "never_answers")
    config = parse_fleet_config(fleet_config(case))
    out: dict[str, Any] = {}

    async def go() -> None:
        async with running_fleet(config) as fleet:
            eps = endpoints(fleet, tmp_path / "secrets.yaml")
            host = fleet.site("on-data").host
            out["result"] = await sync(eps["on-data"], tmp_path / "secrets.yaml")
            # Discovery's anonymous search (and its retry) also goes unanswered; answered
            # discovery requests then reset the breaker's count, so the sync's own count is 5.
            out["unanswered"] = [
                r
                for r in fleet.stats.records(host=host)
                if r.status is None
                and (r.path, r.query) != ("/payers/on-data/fhir/Patient", "_count=1")
            ]

    anyio.run(go)
    result: SyncResult = out["result"]
    assert len(out["unanswered"]) == bounds.DEFAULT_BREAKER_THRESHOLD
    steps = result.requests_by_step
    refused = sum(counts.get("circuit_open", 0) for counts in steps.values())
    assert refused > 0, steps
    finding = next(f for f in result.findings if f.code == "circuit_open")
    assert "5 consecutive failures (no_response x5)" in finding.message
