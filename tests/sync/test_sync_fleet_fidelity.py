"""The sync against the fleet's fidelity archetypes: nothing a real server holds is lost.

One payer per archetype (`extra_types`, `category_required`, `cursor_paging`, `long_ids`), and
one with all four, each synced after discovery as the CLI does. The fleet knows the ground truth
(the patient's compartment and what it references); each sync must recover exactly that, by the
strategy the archetype forces, with the finding that names it.
"""

from __future__ import annotations

import json
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
from probe.fleet.extras import EXTRA_TYPES, LONG_ID_TYPES, OBSERVATION_CATEGORY
from probe.fleet.patients import Key
from probe.http.fetch import Fetcher
from probe.http.limits import Limits
from probe.sync.limits import SyncLimits
from probe.sync.references import iter_references
from probe.sync.result import SyncResult
from probe.sync.session import sync_patient

PAYERS: list[dict[str, Any]] = [
    {"slug": "extra-types", "archetypes": ["extra_types"]},
    {"slug": "extra-everything", "archetypes": [{"extra_types": {"everything": True}}]},
    {"slug": "category-required", "archetypes": ["category_required", "everything_unsupported"]},
    {
        "slug": "category-refused",
        "archetypes": [
            {"category_required": {"declare_combination": False}},
            "everything_unsupported",
        ],
    },
    {"slug": "cursor-paging", "archetypes": ["cursor_paging"]},
    {
        "slug": "cursor-search",
        "archetypes": [{"cursor_paging": {"leading_empty_pages": 3}}, "everything_unsupported"],
    },
    {"slug": "cursor-endless", "archetypes": [{"cursor_paging": {"leading_empty_pages": 25}}]},
    {"slug": "long-ids", "archetypes": ["long_ids"]},
    {
        "slug": "all-four",
        "archetypes": ["extra_types", "category_required", "cursor_paging", "long_ids"],
    },
]


@pytest.fixture(scope="module")
def fleet_env(tmp_path_factory: pytest.TempPathFactory) -> tuple[Fleet, dict[str, Endpoint], Path]:
    """One fleet for the module, with its directory and secrets file."""
    fleet = Fleet(parse_fleet_config({"seed": 23, "hosts": 2, "payers": PAYERS}))
    secrets = tmp_path_factory.mktemp("fidelity") / "secrets.yaml"
    secrets.write_text(yaml.safe_dump(fleet.secrets()))
    endpoints = {
        p.endpoints[0].base_url.split("/payers/")[1].split("/")[0]: p.endpoints[0]
        for p in fleet.directory(str(secrets)).payers
    }
    return fleet, endpoints, secrets


def run_sync(fleet: Fleet, endpoint: Endpoint, secrets: Path, page_size: int = 25) -> SyncResult:
    """Discovery, then the sync of the first test patient (as `probe sync` does)."""

    async def nap(_: float) -> None:
        return None

    async def go() -> SyncResult:
        async with httpx.AsyncClient(transport=fleet.transport()) as client:
            fetcher = Fetcher(client, Limits(), sleep=nap)
            report = await run_discovery(fetcher, endpoint.base_url)
            return await sync_patient(
                fetcher,
                report.base_url,
                endpoint.test_patients[0].id,
                endpoint.credentials,
                SecretSource(secrets),
                capability=report.documents.get("capability"),
                smart_configuration=report.documents.get("smart_configuration"),
                token_store=TokenStore(None),
                limits=SyncLimits(page_size=page_size),
            )

    return anyio.run(go)


def record(fleet: Fleet, slug: str, patient_id: str) -> set[Key]:
    """The patient's whole record: `$everything`'s keys (or, where it is not served, the
    compartment it would hold) and every served resource they reference."""
    data = fleet.data(slug)
    keys = set(data.everything[patient_id])
    for key in list(keys):
        for ref in iter_references(json.loads(data.resources[key])):
            rtype, _, rid = ref.partition("/")
            if (rtype, rid) in data.resources:
                keys.add((rtype, rid))
    return keys


def by_type(keys: set[Key]) -> dict[str, int]:
    """Counts per type, sorted like `SyncResult.resources_by_type`."""
    return dict(sorted(Counter(rtype for rtype, _ in keys).items()))


def codes(result: SyncResult) -> set[str]:
    """The finding codes of a sync."""
    return {f.code for f in result.findings}


def test_extra_types_arrive_through_the_fallback(
    fleet_env: tuple[Fleet, dict[str, Endpoint], Path],
) -> None:
    fleet, endpoints, secrets = fleet_env
    endpoint = endpoints["extra-types"]
    patient = endpoint.test_patients[0].id
    result = run_sync(fleet, endpoint, secrets)
    assert result.outcome == "completed", result.to_json()["findings"]
    assert result.everything.support_level == "unsupported"
    assert result.everything.fallback_used
    compartment = fleet.data("extra-types").compartments[patient]
    for rtype in EXTRA_TYPES:
        assert compartment[rtype], rtype
        assert result.resource_ids[rtype] == set(compartment[rtype]), rtype
        assert result.searched_types[rtype] == 200
    assert result.search_strategies["ServiceRequest"] == "subject"
    for rtype in ("MedicationAdministration", "MedicationStatement", "Provenance"):
        assert result.search_strategies[rtype] == "patient"
    assert result.search_strategies["RelatedPerson"] == "patient"
    assert result.resources_by_type == by_type(record(fleet, "extra-types", patient))
    assert result.references.rate == 1.0
    assert "search_failed" not in codes(result)


def test_extra_types_in_everything_when_offered(
    fleet_env: tuple[Fleet, dict[str, Endpoint], Path],
) -> None:
    fleet, endpoints, secrets = fleet_env
    endpoint = endpoints["extra-everything"]
    result = run_sync(fleet, endpoint, secrets)
    assert result.outcome == "completed"
    assert result.everything.support_level == "paged"
    assert not result.everything.fallback_used
    patient = endpoint.test_patients[0].id
    assert result.resources_by_type == by_type(record(fleet, "extra-everything", patient))
    assert set(EXTRA_TYPES) <= set(result.resources_by_type)


@pytest.mark.parametrize("slug", ["category-required", "category-refused"])
def test_observations_of_every_category_arrive_by_category(
    fleet_env: tuple[Fleet, dict[str, Endpoint], Path], slug: str
) -> None:
    fleet, endpoints, secrets = fleet_env
    endpoint = endpoints[slug]
    patient = endpoint.test_patients[0].id
    result = run_sync(fleet, endpoint, secrets)
    assert result.outcome == "completed", result.to_json()["findings"]
    data = fleet.data(slug)
    observations = set(data.compartments[patient]["Observation"])
    assert result.resource_ids["Observation"] == observations
    categories = {
        code
        for rid in observations
        for system, code in data.tokens[("Observation", rid)]["category"]
        if system == OBSERVATION_CATEGORY
    }
    assert {"laboratory", "vital-signs", "social-history", "survey"} <= categories
    assert result.search_strategies["Observation"] == "patient+category"
    assert result.searched_types["Observation"] == 200
    assert result.search_strategies["Condition"] == "patient"
    assert result.resources_by_type == by_type(record(fleet, slug, patient))
    individual = result.requests_by_step["individual"]
    if slug == "category-required":
        # The statement's combinations say so: no patient-only search is even tried.
        assert "400" not in individual
        assert "category_required" not in codes(result)
    else:
        # Undeclared: the patient-only search is refused once, then each category is searched.
        assert individual["400"] == 1
        assert "category_required" in codes(result)
        message = next(f.message for f in result.findings if f.code == "category_required")
        assert "must have either code or category" in message


def test_cursor_paging_with_leading_empty_pages(
    fleet_env: tuple[Fleet, dict[str, Endpoint], Path],
) -> None:
    fleet, endpoints, secrets = fleet_env
    endpoint = endpoints["cursor-paging"]
    patient = endpoint.test_patients[0].id
    result = run_sync(fleet, endpoint, secrets)
    assert result.outcome == "completed", result.to_json()["findings"]
    assert result.everything.support_level == "paged"
    assert not result.everything.fallback_used
    assert "empty_page" in codes(result)
    assert "empty_pages" not in codes(result)
    assert result.resources_by_type == by_type(record(fleet, "cursor-paging", patient))
    total = len(fleet.data("cursor-paging").everything[patient])
    # Two empty pages, then the data in pages of 25.
    assert result.everything.pages == 2 + -(-total // 25)
    assert all("cursor=" in ex.url for ex in result.exchanges if ex.step == "pagination")


def test_cursor_paging_in_every_fallback_search(
    fleet_env: tuple[Fleet, dict[str, Endpoint], Path],
) -> None:
    fleet, endpoints, secrets = fleet_env
    endpoint = endpoints["cursor-search"]
    patient = endpoint.test_patients[0].id
    result = run_sync(fleet, endpoint, secrets)
    assert result.outcome == "completed", result.to_json()["findings"]
    assert result.everything.fallback_used
    assert result.resources_by_type == by_type(record(fleet, "cursor-search", patient))
    # Every search with matches pages through three empty pages first (one finding each);
    # a search without matches answers one empty page without a next link.
    empty = {
        str(f.url).split("/fhir/")[1].split("?")[0]
        for f in result.findings
        if f.code == "empty_page"
    }
    compartment = fleet.data("cursor-search").compartments[patient]
    assert empty == {rtype for rtype, ids in compartment.items() if ids}
    assert len(empty) < len(result.searched_types)
    assert result.requests_by_step["pagination"]["200"] >= 3 * len(empty)
    assert "empty_pages" not in codes(result)


def test_too_many_empty_pages_stop_the_walk(
    fleet_env: tuple[Fleet, dict[str, Endpoint], Path],
) -> None:
    fleet, endpoints, secrets = fleet_env
    result = run_sync(fleet, endpoints["cursor-endless"], secrets)
    # 25 empty pages before the data: the sync gives up after 20, in `$everything` and in
    # every search, so no data comes back; the finding says why.
    assert "empty_pages" in codes(result)
    assert result.everything.reason == "empty_pages"
    assert result.outcome == "failed"


def test_long_id_references_are_read_and_resolve(
    fleet_env: tuple[Fleet, dict[str, Endpoint], Path],
) -> None:
    fleet, endpoints, secrets = fleet_env
    endpoint = endpoints["long-ids"]
    patient = endpoint.test_patients[0].id
    result = run_sync(fleet, endpoint, secrets)
    assert result.outcome == "completed", result.to_json()["findings"]
    refs = result.references
    assert refs.resolved == refs.found - refs.other_origin
    assert refs.unresolved == []
    assert "id_too_long" in codes(result)
    long_ids = {
        (rtype, rid)
        for rtype in LONG_ID_TYPES
        for rid in result.resource_ids[rtype]
        if len(rid) > 64
    }
    assert long_ids
    assert all(80 <= len(rid) <= 120 for _, rid in long_ids)
    # They are not in `$everything`: each was read at its own URL.
    assert refs.fetched >= len(long_ids)
    assert result.requests_by_step["reference"] == {"200": refs.fetched}
    assert result.resources_by_type == by_type(record(fleet, "long-ids", patient))


def test_all_four_archetypes_together(
    fleet_env: tuple[Fleet, dict[str, Endpoint], Path],
) -> None:
    fleet, endpoints, secrets = fleet_env
    endpoint = endpoints["all-four"]
    patient = endpoint.test_patients[0].id
    result = run_sync(fleet, endpoint, secrets)
    assert result.outcome == "completed", result.to_json()["findings"]
    assert result.resources_by_type == by_type(record(fleet, "all-four", patient))
    assert result.search_strategies["ServiceRequest"] == "subject"
    assert result.search_strategies["Observation"] == "patient+category"
    assert {"empty_page", "id_too_long", "everything_unsupported"} <= codes(result)
    assert "empty_pages" not in codes(result)
    refs = result.references
    assert refs.resolved == refs.found - refs.other_origin


def test_a_fallback_search_re_delivering_everything_pages_is_not_a_repeat(
    tmp_path: Path,
) -> None:
    # `$everything` loops after page 2 (30 resources with _count=10, 22 of 24 EOBs); the EOB
    # search itself is sound (3 pages, no loop) but its first two pages hold only EOBs
    # `$everything` already delivered.
    loop = {"paging_loop": {"after_page": 2, "back_to": 0}}
    payers = [{"slug": "loop", "archetypes": [loop], "paging_style": "ct"}]
    fleet = Fleet(parse_fleet_config({"seed": 11, "hosts": 2, "payers": payers}))
    secrets = tmp_path / "secrets.yaml"
    secrets.write_text(yaml.safe_dump(fleet.secrets()))
    endpoint = fleet.directory(str(secrets)).payers[0].endpoints[0]
    patient = endpoint.test_patients[0].id
    result = run_sync(fleet, endpoint, secrets, page_size=10)
    assert result.everything.fallback_used
    assert result.resources_by_type == by_type(record(fleet, "loop", patient))
    assert "paging_repeats" not in codes(result)
