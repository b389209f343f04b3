"""Reads, searches, $everything and paging, and the archetypes that break them (in-process)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from probe.fleet.app import Fleet

from .conftest import bearer, make_fleet, next_link

pytestmark = pytest.mark.anyio
Client = Callable[[Fleet], httpx.AsyncClient]


async def _walk(
    client: httpx.AsyncClient, url: str, headers: dict[str, str], limit: int = 50
) -> tuple[list[dict[str, Any]], list[str]]:
    """Follow next links (at most `limit` pages): the bundles and the URLs requested."""
    bundles: list[dict[str, Any]] = []
    urls: list[str] = []
    next_url: str | None = url
    while next_url and len(bundles) < limit:
        urls.append(next_url)
        response = await client.get(next_url, headers=headers)
        assert response.status_code == 200, response.text
        bundles.append(response.json())
        next_url = next_link(bundles[-1])
    return bundles, urls


@pytest.mark.parametrize("style", ["ct", "hapi", "page_token", "offset"])
async def test_everything_pages_through_all_resources(client_for: Client, style: str) -> None:
    fleet = make_fleet({"slug": "p", "paging_style": style})
    client = client_for(fleet)
    patient = fleet.patients("p")[0]
    url = f"{fleet.base_url('p')}/Patient/{patient}/$everything?_count=17"
    bundles, urls = await _walk(client, url, bearer(fleet, "p"))
    total = bundles[0]["total"]
    entries = [e for b in bundles for e in b["entry"]]
    assert len(entries) == total > 17
    assert all(len(b["entry"]) <= 17 for b in bundles)
    assert len({e["fullUrl"] for e in entries}) == total
    assert entries[0]["resource"]["resourceType"] == "Patient"
    types = {e["resource"]["resourceType"] for e in entries}
    assert {"Coverage", "ExplanationOfBenefit", "Practitioner", "Organization"} <= types
    marker = {
        "ct": "ct=",
        "hapi": "_getpages=",
        "page_token": "_page_token=",
        "offset": "startIndex=",
    }
    assert all(marker[style] in u for u in urls[1:])
    if style == "hapi":
        assert urlsplit(urls[1]).path == urlsplit(fleet.base_url("p")).path
    assert bundles[0]["link"][0] == {"relation": "self", "url": url}


async def test_searches_reads_and_errors(client_for: Client) -> None:
    fleet = make_fleet({"slug": "p", "patients": 2})
    client = client_for(fleet)
    base = fleet.base_url("p")
    headers = bearer(fleet, "p")
    first, second = fleet.patients("p")

    async def search(path: str, **params: str) -> dict[str, Any]:
        response = await client.get(
            f"{base}/{path}", params={"_count": "200", **params}, headers=headers
        )
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("application/fhir+json")
        return response.json()

    eobs = await search("ExplanationOfBenefit", patient=first)
    assert eobs["total"] == len(eobs["entry"]) > 10
    assert all(e["resource"]["patient"]["reference"] == f"Patient/{first}" for e in eobs["entry"])
    profiles = {p for e in eobs["entry"] for p in e["resource"]["meta"]["profile"]}
    assert any(p.endswith("C4BB-ExplanationOfBenefit-Pharmacy") for p in profiles)
    pharmacy = await search("ExplanationOfBenefit", patient=f"Patient/{first}", type="pharmacy")
    assert 0 < pharmacy["total"] < eobs["total"]
    coverage = await search("Coverage", beneficiary=f"Patient/{second}")
    assert coverage["total"] >= 1
    assert (await search("Coverage", patient=second))["total"] == coverage["total"]
    patients = await search("Patient", _id=first)
    assert [e["resource"]["id"] for e in patients["entry"]] == [first]
    assert (await search("Condition", patient=first))["total"] > 0
    assert (await search("Patient"))["total"] == 2
    assert (await search("Coverage", patient="not-a-patient"))["total"] == 0

    page = await client.get(
        f"{base}/Observation", params={"patient": first, "_count": "5"}, headers=headers
    )
    assert len(page.json()["entry"]) == 5
    assert next_link(page.json())

    reference = eobs["entry"][0]["resource"]["provider"]["reference"]
    read = await client.get(f"{base}/{reference}", headers=headers)
    assert read.status_code == 200
    assert read.json()["resourceType"] == reference.split("/")[0]
    missing = await client.get(f"{base}/Practitioner/does-not-exist", headers=headers)
    assert missing.status_code == 404
    assert missing.json()["resourceType"] == "OperationOutcome"
    unknown_type = await client.get(f"{base}/Spaceship", headers=headers)
    assert unknown_type.status_code == 404
    tampered = await client.get(f"{base}/Coverage?ct=AAAA", headers=headers)
    assert tampered.status_code == 410


async def test_everything_unsupported_but_searches_work(client_for: Client) -> None:
    fleet = make_fleet({"slug": "p", "archetypes": ["everything_unsupported"]})
    client = client_for(fleet)
    headers = bearer(fleet, "p")
    patient = fleet.patients("p")[0]
    response = await client.get(
        f"{fleet.base_url('p')}/Patient/{patient}/$everything", headers=headers
    )
    assert response.status_code == 404
    assert response.json()["resourceType"] == "OperationOutcome"
    search = await client.get(
        f"{fleet.base_url('p')}/ExplanationOfBenefit?patient={patient}", headers=headers
    )
    assert search.status_code == 200
    assert search.json()["total"] > 0


async def test_paging_loop_returns_to_an_earlier_page(client_for: Client) -> None:
    fleet = make_fleet(
        {"slug": "p", "archetypes": [{"paging_loop": {"after_page": 2, "back_to": 0}}]}
    )
    client = client_for(fleet)
    patient = fleet.patients("p")[0]
    url = f"{fleet.base_url('p')}/Patient/{patient}/$everything?_count=10"
    bundles, _ = await _walk(client, url, bearer(fleet, "p"), limit=7)
    assert len(bundles) == 7  # it never ends on its own
    ids = [tuple(e["fullUrl"] for e in b["entry"]) for b in bundles]
    assert ids[3] == ids[0]
    assert ids[4] == ids[1]


async def test_paging_skip_drops_data(client_for: Client) -> None:
    fleet = make_fleet(
        {"slug": "p", "archetypes": [{"paging_skip": {"at_page": 1, "skip_pages": 1}}]}
    )
    client = client_for(fleet)
    patient = fleet.patients("p")[0]
    url = f"{fleet.base_url('p')}/Patient/{patient}/$everything?_count=10"
    bundles, _ = await _walk(client, url, bearer(fleet, "p"))
    received = sum(len(b["entry"]) for b in bundles)
    assert received == bundles[0]["total"] - 10


async def test_paging_cross_origin(client_for: Client) -> None:
    fleet = make_fleet({"slug": "p", "archetypes": ["paging_cross_origin"]}, hosts=3)
    client = client_for(fleet)
    site = fleet.site("p")
    patient = fleet.patients("p")[0]
    first = await client.get(
        f"{fleet.base_url('p')}/Patient/{patient}/$everything?_count=20", headers=bearer(fleet, "p")
    )
    link = next_link(first.json())
    assert link is not None
    assert urlsplit(link).hostname == site.alt_host != site.host
    # The continuation token authorises the page: no Authorization header needed there.
    bundles, urls = await _walk(client, link, {})
    assert all(urlsplit(u).hostname == site.alt_host for u in urls)
    total = first.json()["total"]
    assert len(first.json()["entry"]) + sum(len(b["entry"]) for b in bundles) == total
    records = fleet.stats.records(host=site.alt_host)
    assert records and all(r.authorization is None for r in records)


async def test_dangling_references(client_for: Client) -> None:
    fleet = make_fleet({"slug": "p", "archetypes": [{"dangling_references": {"share": 1.0}}]})
    client = client_for(fleet)
    headers = bearer(fleet, "p")
    data = fleet.data("p")
    assert data.missing_404 and data.missing_500
    for rtype, rid in sorted(data.missing_500)[:2]:
        response = await client.get(f"{fleet.base_url('p')}/{rtype}/{rid}", headers=headers)
        assert response.status_code == 500
        assert "HAPI-2001" in response.json()["issue"][0]["diagnostics"]
    for rtype, rid in sorted(data.missing_404)[:2]:
        response = await client.get(f"{fleet.base_url('p')}/{rtype}/{rid}", headers=headers)
        assert response.status_code == 404
        assert "code" not in response.json()["issue"][0]


async def test_contained_references(client_for: Client) -> None:
    fleet = make_fleet({"slug": "p", "archetypes": ["contained_references"]})
    client = client_for(fleet)
    patient = fleet.patients("p")[0]
    response = await client.get(
        f"{fleet.base_url('p')}/ExplanationOfBenefit?patient={patient}&_count=100",
        headers=bearer(fleet, "p"),
    )
    eob = response.json()["entry"][0]["resource"]
    assert eob["provider"]["reference"].startswith("#")
    local_ids = {c["id"] for c in eob["contained"]}
    assert eob["provider"]["reference"][1:] in local_ids


async def test_huge_patient(client_for: Client) -> None:
    fleet = make_fleet({"slug": "p", "patients": 1, "archetypes": ["huge_patient"]})
    client = client_for(fleet)
    patient = fleet.patients("p")[0]
    response = await client.get(
        f"{fleet.base_url('p')}/Patient/{patient}/$everything?_count=1000",
        headers=bearer(fleet, "p"),
    )
    body = response.json()
    assert body["total"] >= 10_000
    assert len(body["entry"]) == 200  # max_count caps _count
    assert next_link(body)
