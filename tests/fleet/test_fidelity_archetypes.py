"""The fidelity archetypes on the fleet side: extra compartment types, category-required
Observation searches, cursor paging with leading empty pages, and over-long ids (in-process)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

import httpx
import pytest
from fhir.resources.R4B import get_fhir_model_class

from probe.fleet.app import Fleet
from probe.fleet.config import FleetConfigError
from probe.fleet.extras import EXTRA_TYPES, LONG_ID_TYPES, OBSERVATION_CATEGORY
from probe.fleet.fhir import CATEGORY_REQUIRED_MESSAGE

from .conftest import bearer, make_fleet, next_link

Client = Callable[[Fleet], httpx.AsyncClient]
COMBINATION = (
    "http://hl7.org/fhir/StructureDefinition/capabilitystatement-search-parameter-combination"
)


async def _get(client: httpx.AsyncClient, fleet: Fleet, slug: str, path: str) -> httpx.Response:
    return await client.get(f"{fleet.base_url(slug)}/{path}", headers=bearer(fleet, slug))


async def _walk(
    client: httpx.AsyncClient, fleet: Fleet, slug: str, url: str, limit: int = 60
) -> tuple[list[dict[str, Any]], list[str]]:
    """Follow next links: the bundles and the URLs requested."""
    bundles: list[dict[str, Any]] = []
    urls: list[str] = []
    next_url: str | None = url
    while next_url and len(bundles) < limit:
        urls.append(next_url)
        response = await client.get(next_url, headers=bearer(fleet, slug))
        assert response.status_code == 200, response.text
        bundles.append(response.json())
        next_url = next_link(bundles[-1])
    return bundles, urls


def _statement_entry(statement: dict[str, Any], rtype: str) -> dict[str, Any] | None:
    return next((r for r in statement["rest"][0]["resource"] if r["type"] == rtype), None)


def test_new_resources_are_valid_r4_and_deterministic() -> None:
    payers = (
        {"slug": "x", "patients": 6, "archetypes": ["extra_types"]},
        {"slug": "c", "patients": 6, "archetypes": ["category_required"]},
        {"slug": "l", "patients": 2, "archetypes": ["long_ids", "contained_references"]},
    )
    fleet, again = make_fleet(*payers), make_fleet(*payers)
    for slug in ("x", "c", "l"):
        assert fleet.data(slug).resources == again.data(slug).resources
        for (rtype, rid), raw in fleet.data(slug).resources.items():
            resource = json.loads(raw)
            assert resource["id"] == rid
            get_fhir_model_class(rtype).model_validate(resource)
    other = make_fleet(*payers, seed=8)
    assert other.data("x").resources != fleet.data("x").resources


def test_archetype_parameters_are_checked() -> None:
    with pytest.raises(FleetConfigError, match="min_length must not exceed max_length"):
        make_fleet(
            {"slug": "l", "archetypes": [{"long_ids": {"min_length": 100, "max_length": 90}}]}
        )
    with pytest.raises(FleetConfigError, match="leading_empty_pages"):
        make_fleet({"slug": "u", "archetypes": [{"cursor_paging": {"leading_empty_pages": -1}}]})
    behaviour = make_fleet({"slug": "x", "archetypes": ["extra_types"]}).site("x").config.behaviour
    assert behaviour.everything_unsupported is not None  # extra_types alone: no $everything
    mixed = make_fleet(
        {"slug": "x", "archetypes": ["extra_types", {"everything_unsupported": {"status": 400}}]}
    )
    unsupported = mixed.site("x").config.behaviour.everything_unsupported
    assert unsupported is not None and unsupported.status == 400


@pytest.mark.anyio
async def test_extra_types_are_declared_searchable_and_served(client_for: Client) -> None:
    fleet = make_fleet({"slug": "x", "archetypes": ["extra_types"]}, {"slug": "plain"})
    client = client_for(fleet)
    patient = fleet.patients("x")[0]
    statement = (await client.get(f"{fleet.base_url('x')}/metadata")).json()
    for rtype, param in EXTRA_TYPES.items():
        entry = _statement_entry(statement, rtype)
        assert entry is not None, rtype
        assert {"code": "search-type"} in entry["interaction"]
        assert [p["name"] for p in entry["searchParam"]] == [param]
        response = await _get(client, fleet, "x", f"{rtype}?{param}={patient}")
        assert response.status_code == 200
        bundle = response.json()
        assert 2 <= bundle["total"] == len(bundle["entry"]) <= 3
        for e in bundle["entry"]:
            assert f"Patient/{patient}" in json.dumps(e["resource"])
    assert _statement_entry(statement, "ServiceRequest") == {
        "type": "ServiceRequest",
        "interaction": [{"code": "read"}, {"code": "search-type"}],
        "searchParam": [{"name": "subject", "type": "reference"}],
    }
    # The statement declares only `subject` for ServiceRequest; `patient` is refused like HAPI.
    refused = await _get(client, fleet, "x", f"ServiceRequest?patient={patient}")
    assert refused.status_code == 400
    assert "Unknown search parameter" in refused.json()["issue"][0]["diagnostics"]
    # `$everything` is neither declared nor served (as `everything_unsupported`).
    assert "operation" not in (_statement_entry(statement, "Patient") or {})
    everything = await _get(client, fleet, "x", f"Patient/{patient}/$everything")
    assert everything.status_code == 404
    assert everything.json()["resourceType"] == "OperationOutcome"
    # Other payers do not serve the extra types.
    plain = await _get(client, fleet, "plain", f"Provenance?patient={fleet.patients('plain')[0]}")
    assert plain.status_code == 404
    plain_statement = (await client.get(f"{fleet.base_url('plain')}/metadata")).json()
    assert _statement_entry(plain_statement, "Provenance") is None


@pytest.mark.anyio
async def test_extra_types_with_everything(client_for: Client) -> None:
    fleet = make_fleet({"slug": "x", "archetypes": [{"extra_types": {"everything": True}}]})
    client = client_for(fleet)
    patient = fleet.patients("x")[0]
    statement = (await client.get(f"{fleet.base_url('x')}/metadata")).json()
    assert (_statement_entry(statement, "Patient") or {}).get("operation")
    bundles, _ = await _walk(
        client, fleet, "x", f"{fleet.base_url('x')}/Patient/{patient}/$everything?_count=200"
    )
    types = {e["resource"]["resourceType"] for b in bundles for e in b["entry"]}
    assert set(EXTRA_TYPES) <= types


@pytest.mark.anyio
@pytest.mark.parametrize("declared", [True, False])
async def test_category_required(client_for: Client, declared: bool) -> None:
    fleet = make_fleet(
        {"slug": "c", "archetypes": [{"category_required": {"declare_combination": declared}}]}
    )
    client = client_for(fleet)
    patient = fleet.patients("c")[0]
    refused = await _get(client, fleet, "c", f"Observation?patient={patient}")
    assert refused.status_code == 400
    outcome = refused.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert outcome["issue"][0]["diagnostics"] == CATEGORY_REQUIRED_MESSAGE
    assert "must have either code or category" in CATEGORY_REQUIRED_MESSAGE
    statement = (await client.get(f"{fleet.base_url('c')}/metadata")).json()
    entry = _statement_entry(statement, "Observation") or {}
    combos = [
        [sub["valueString"] for sub in ext["extension"] if sub["url"] == "required"]
        for ext in entry.get("extension", [])
        if ext["url"] == COMBINATION
    ]
    assert combos == ([["patient", "category"], ["patient", "code"]] if declared else [])
    assert {"patient", "category", "code"} <= {p["name"] for p in entry["searchParam"]}

    everything = await _get(client, fleet, "c", f"Patient/{patient}/$everything?_count=500")
    observations = [
        e["resource"]
        for e in everything.json()["entry"]
        if e["resource"]["resourceType"] == "Observation"
    ]
    by_category: dict[str, set[str]] = {}
    for obs in observations:
        for concept in obs["category"]:
            for coding in concept["coding"]:
                if coding["system"] == OBSERVATION_CATEGORY:
                    by_category.setdefault(coding["code"], set()).add(obs["id"])
    assert {"laboratory", "vital-signs", "social-history", "survey"} <= set(by_category)
    for category, ids in by_category.items():
        for value in (f"{OBSERVATION_CATEGORY}|{category}", category):
            found = await _get(
                client, fleet, "c", f"Observation?patient={patient}&category={quote(value)}"
            )
            assert found.status_code == 200
            assert {e["resource"]["id"] for e in found.json().get("entry", [])} == ids
    other = await _get(
        client,
        fleet,
        "c",
        f"Observation?patient={patient}&category=http://other.example|laboratory",
    )
    assert other.json()["total"] == 0
    smoking = await _get(client, fleet, "c", f"Observation?patient={patient}&code=72166-2")
    assert smoking.status_code == 200
    assert {e["resource"]["id"] for e in smoking.json()["entry"]} <= by_category["social-history"]
    either = await _get(
        client, fleet, "c", f"Observation?patient={patient}&category=laboratory,social-history"
    )
    assert either.json()["total"] == len(by_category["laboratory"] | by_category["social-history"])
    # Conditions (no combination declared) are searched by patient alone.
    conditions = await _get(client, fleet, "c", f"Condition?patient={patient}")
    assert conditions.status_code == 200


@pytest.mark.anyio
async def test_cursor_paging_serves_leading_empty_pages(client_for: Client) -> None:
    payers = ({"slug": "u", "archetypes": [{"cursor_paging": {"leading_empty_pages": 3}}]},)
    fleet = make_fleet(*payers)
    client = client_for(fleet)
    patient = fleet.patients("u")[0]
    url = f"{fleet.base_url('u')}/Patient/{patient}/$everything?_count=30"
    bundles, urls = await _walk(client, fleet, "u", url)
    total = bundles[0]["total"]
    assert [len(b.get("entry", [])) for b in bundles[:3]] == [0, 0, 0]
    assert all(b["total"] == total for b in bundles)
    entries = [e["resource"]["id"] for b in bundles for e in b.get("entry", [])]
    assert len(entries) == len(set(entries)) == total == len(fleet.data("u").everything[patient])
    assert len(bundles) == 3 + -(-total // 30)
    assert len(set(urls)) == len(urls)  # every next link is fresh
    for next_url in urls[1:]:
        query = parse_qsl(urlsplit(next_url).query)
        assert [k for k, _ in query] == ["cursor"]
        assert "eyJ" not in query[0][1] and "count" not in query[0][1]  # opaque, not JSON
    # The same seed gives the same cursors; a tampered cursor is refused.
    twin = make_fleet(*payers)
    _, again = await _walk(client_for(twin), twin, "u", url)
    assert again == urls
    tampered = urls[1][:-3] + ("AAA" if not urls[1].endswith("AAA") else "BBB")
    gone = await client.get(tampered, headers=bearer(fleet, "u"))
    assert gone.status_code == 410
    # Searches page the same way; a search without matches is one empty page, no next link.
    bundles, _ = await _walk(
        client, fleet, "u", f"{fleet.base_url('u')}/Condition?patient={patient}"
    )
    assert [len(b.get("entry", [])) for b in bundles[:3]] == [0, 0, 0]
    assert sum(len(b.get("entry", [])) for b in bundles) == bundles[0]["total"] > 0
    none = await _get(client, fleet, "u", "Condition?patient=nobody")
    assert none.json()["total"] == 0 and next_link(none.json()) is None


@pytest.mark.anyio
async def test_cursor_paging_composes_with_a_paging_loop(client_for: Client) -> None:
    fleet = make_fleet(
        {"slug": "u", "archetypes": ["cursor_paging", {"paging_loop": {"after_page": 1}}]}
    )
    client = client_for(fleet)
    patient = fleet.patients("u")[0]
    url = f"{fleet.base_url('u')}/Patient/{patient}/$everything?_count=10"
    bundles, urls = await _walk(client, fleet, "u", url, limit=8)
    assert [len(b.get("entry", [])) for b in bundles[:2]] == [0, 0]
    # Data pages 0, 1, then back to 0: the same cursor URL comes back.
    assert urls[4] == urls[2]


@pytest.mark.anyio
@pytest.mark.parametrize("in_everything", [False, True])
async def test_long_ids(client_for: Client, in_everything: bool) -> None:
    fleet = make_fleet(
        {"slug": "l", "archetypes": [{"long_ids": {"in_everything": in_everything}}]}
    )
    client = client_for(fleet)
    data = fleet.data("l")
    long_keys = [k for k in data.resources if k[0] in LONG_ID_TYPES]
    assert long_keys
    assert all(80 <= len(rid) <= 120 for _, rid in long_keys)
    rtype, rid = long_keys[0]
    read = await _get(client, fleet, "l", f"{rtype}/{rid}")
    assert read.status_code == 200
    assert read.json()["id"] == rid
    patient = fleet.patients("l")[0]
    bundles, _ = await _walk(
        client, fleet, "l", f"{fleet.base_url('l')}/Patient/{patient}/$everything?_count=200"
    )
    resources = [e["resource"] for b in bundles for e in b["entry"]]
    referenced = {
        ref
        for r in resources
        if r["resourceType"] == "ExplanationOfBenefit"
        for ref in _references(r)
        if ref.split("/")[0] in LONG_ID_TYPES
    }
    assert referenced and all(len(ref.split("/")[1]) > 64 for ref in referenced)
    assert all(tuple(ref.split("/")) in data.resources for ref in referenced)
    served = {f"{r['resourceType']}/{r['id']}" for r in resources}
    assert (referenced <= served) is in_everything
    assert not (referenced & served) or in_everything


def _references(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["reference"]] if isinstance(node.get("reference"), str) else []
        return found + [r for v in node.values() for r in _references(v)]
    if isinstance(node, list):
        return [r for v in node for r in _references(v)]
    return []
