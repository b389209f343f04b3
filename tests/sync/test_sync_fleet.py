"""PatientSync against the reference fleet, archetype by archetype, with exact expected counts.

The fleet (in process, through its httpx transport) knows the ground truth: which resources a
patient's `$everything` holds. Every sync must recover exactly that record, whatever the payer
does wrong, and no bearer token may ever reach a host other than the payer's own.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
import yaml

from probe.checks.discovery import run_discovery
from probe.directory.schema import Endpoint
from probe.directory.secrets import SecretSource, TokenStore
from probe.fleet.app import Fleet
from probe.fleet.config import parse_fleet_config
from probe.http.fetch import Fetcher
from probe.http.limits import Limits
from probe.http.urls import origin_of
from probe.sync.limits import SyncLimits
from probe.sync.result import SyncResult
from probe.sync.session import sync_patient

ARCHETYPES = [
    "exemplary",
    "paging_loop",
    "paging_skip",
    "paging_cross_origin",
    "dangling_references",
    "contained_references",
    "rate_limited",
    "flaky",
    "expiring_tokens",
    "everything_unsupported",
    "plain_json",
]


@pytest.fixture(scope="module")
def fleet_env(tmp_path_factory: pytest.TempPathFactory) -> tuple[Fleet, dict[str, Endpoint], Path]:
    """One fleet for the module; rotated refresh tokens live in STORE, as an operator's would."""
    payers: list[dict[str, Any]] = [
        {"slug": a.replace("_", "-"), "archetypes": [a]} for a in ARCHETYPES
    ]
    payers.append(
        {"slug": "jwt", "archetypes": ["exemplary"], "oauth": {"client_auth": "private_key_jwt"}}
    )
    payers.append(
        {
            "slug": "post",
            "archetypes": ["exemplary"],
            "oauth": {"client_auth": "client_secret_post", "rotate_refresh_tokens": True},
        }
    )
    payers.append(
        {"slug": "cross-auth", "archetypes": [{"paging_cross_origin": {"requires_auth": True}}]}
    )
    fleet = Fleet(parse_fleet_config({"seed": 11, "hosts": 3, "payers": payers}))
    secrets = tmp_path_factory.mktemp("fleet") / "secrets.yaml"
    secrets.write_text(yaml.safe_dump(fleet.secrets()))
    endpoints = {
        p.endpoints[0].base_url.split("/payers/")[1].split("/")[0]: p.endpoints[0]
        for p in fleet.directory(str(secrets)).payers
    }
    return fleet, endpoints, secrets


STORE = TokenStore(None)


def run_sync(
    fleet: Fleet,
    endpoint: Endpoint,
    secrets: Path,
    patient: int = 0,
    page_size: int = 25,
    store: TokenStore = STORE,
) -> SyncResult:
    async def nap(_: float) -> None:
        return None

    async def go() -> SyncResult:
        async with httpx.AsyncClient(transport=fleet.transport()) as client:
            fetcher = Fetcher(client, Limits(), sleep=nap)
            report = await run_discovery(fetcher, endpoint.base_url)
            return await sync_patient(
                fetcher,
                report.base_url,
                endpoint.test_patients[patient].id,
                endpoint.credentials,
                SecretSource(secrets),
                capability=report.documents.get("capability"),
                smart_configuration=report.documents.get("smart_configuration"),
                token_store=store,
                limits=SyncLimits(page_size=page_size),
            )

    return anyio.run(go)


def expected(fleet: Fleet, slug: str, patient_id: str) -> dict[str, int]:
    return dict(Counter(rtype for rtype, _ in set(fleet.data(slug).everything[patient_id])))


def assert_no_token_elsewhere(fleet: Fleet, endpoint: Endpoint) -> None:
    own = httpx.URL(endpoint.base_url).host
    for host, values in fleet.stats.authorization_by_host().items():
        bearer = {v for v in values if v.lower().startswith("bearer ")}
        if host != own:
            assert not bearer, f"a bearer token reached {host}"


@pytest.mark.parametrize(
    ("slug", "support", "fallback", "finding"),
    [
        ("exemplary", "paged", False, None),
        ("paging-loop", "limited", True, "paging_loop"),
        ("paging-skip", "limited", True, "paging_incomplete"),
        ("paging-cross-origin", "limited", True, "next_link_cross_origin"),
        ("cross-auth", "limited", True, "next_link_cross_origin"),
        ("contained-references", "paged", False, None),
        ("rate-limited", "paged", False, None),
        ("flaky", "paged", False, None),
        ("expiring-tokens", "paged", False, None),
        ("everything-unsupported", "unsupported", True, "everything_unsupported"),
        ("plain-json", "paged", False, "content_type_json"),
        ("jwt", "paged", False, None),
        ("post", "paged", False, None),
    ],
)
def test_sync_recovers_the_exact_record(
    fleet_env: tuple[Fleet, dict[str, Endpoint], Path],
    slug: str,
    support: str,
    fallback: bool,
    finding: str | None,
) -> None:
    fleet, endpoints, secrets = fleet_env
    endpoint = endpoints[slug]
    fleet.stats.reset()
    result = run_sync(fleet, endpoint, secrets)
    patient_id = endpoint.test_patients[0].id
    assert result.outcome == "completed", result.to_json()["findings"]
    assert result.resources_by_type == expected(fleet, slug, patient_id)
    assert result.everything.support_level == support
    assert result.everything.fallback_used is fallback
    codes = {f.code for f in result.findings}
    if finding:
        assert finding in codes
    assert result.references.rate == 1.0
    assert result.validation_failures == {}
    assert_no_token_elsewhere(fleet, endpoint)
    assert all(origin_of(ex.url) in {origin_of(endpoint.base_url)} for ex in result.exchanges)


def test_dangling_references_are_counted_exactly(
    fleet_env: tuple[Fleet, dict[str, Endpoint], Path],
) -> None:
    fleet, endpoints, secrets = fleet_env
    endpoint = endpoints["dangling-references"]
    result = run_sync(fleet, endpoint, secrets)
    data = fleet.data("dangling-references")
    missing = {f"{t}/{i}" for t, i in data.missing_404 | data.missing_500}
    unresolved = {u.split("/fhir/", 1)[1] for u in result.references.unresolved}
    assert unresolved == missing & unresolved and unresolved, (
        "every unresolved reference is one the fleet broke"
    )
    refs = result.references
    assert refs.found - refs.other_origin == refs.resolved + len(unresolved)
    steps = result.requests_by_step["reference"]
    assert steps.get("404", 0) + steps.get("500", 0) > 0
    # Reference retries stay in the reference step (the request success rate excludes them).
    assert "retry" not in result.requests_by_step or "500" not in result.requests_by_step["retry"]
    assert result.outcome == "completed"
    assert any(f.code == "dangling_references" for f in result.findings)


def test_rate_limited_and_flaky_requests_are_recorded_as_retries(
    fleet_env: tuple[Fleet, dict[str, Endpoint], Path],
) -> None:
    fleet, endpoints, secrets = fleet_env
    result = run_sync(fleet, endpoints["rate-limited"], secrets, page_size=10)
    steps = result.requests_by_step
    throttled = sum(codes.get("429", 0) for codes in steps.values())
    assert throttled >= 1
    assert steps["retry"].get("200", 0) >= throttled - steps["retry"].get("429", 0)


def test_expiring_tokens_are_refreshed(fleet_env: tuple[Fleet, dict[str, Endpoint], Path]) -> None:
    fleet, endpoints, secrets = fleet_env
    result = run_sync(fleet, endpoints["expiring-tokens"], secrets, page_size=5)
    assert result.outcome == "completed"
    assert result.tokens.refreshes >= 1
    assert result.tokens.refresh_token_rotated
    assert result.requests_by_step["token"]["200"] == 1 + result.tokens.refreshes


def test_rotated_refresh_token_must_be_kept(tmp_path: Path) -> None:
    fleet = Fleet(
        parse_fleet_config(
            {
                "seed": 5,
                "payers": [
                    {
                        "slug": "post",
                        "patients": 2,
                        "oauth": {
                            "client_auth": "client_secret_post",
                            "rotate_refresh_tokens": True,
                        },
                    }
                ],
            }
        )
    )
    secrets = tmp_path / "secrets.yaml"
    secrets.write_text(yaml.safe_dump(fleet.secrets()))
    endpoint = fleet.directory(str(secrets)).payers[0].endpoints[0]
    kept = TokenStore(tmp_path / "tokens.yaml")
    first = run_sync(fleet, endpoint, secrets, patient=0, store=kept)
    assert first.tokens.refresh_token_rotated
    # The rotated token, kept in the token store, serves the next sync.
    assert run_sync(fleet, endpoint, secrets, patient=1, store=kept).outcome == "completed"
    # Without it, the original (now revoked) refresh token fails, and says why.
    lost = run_sync(fleet, endpoint, secrets, patient=1, store=TokenStore(None))
    assert lost.outcome == "auth_failed"
    assert "invalid_grant" in " ".join(f.message for f in lost.findings)
