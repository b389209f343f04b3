"""Real paging links (../shared/data/real/bundles): Athena's cursor pages and Blue Button's
startIndex pages are followed to the end by the sync, and their paging parameters survive
the store's URL scrubbing (they are positions, not credentials)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import anyio
import httpx

from probe.directory.schema import BearerCredentials, SecretRef
from probe.directory.secrets import SecretSource
from probe.http.fetch import Fetcher
from probe.http.limits import Limits
from probe.store.sanitize import strip_url_secrets
from probe.sync.auth import Authorizer
from probe.sync.limits import SyncLimits
from probe.sync.result import SyncResult
from probe.sync.runner import PatientSync

ATHENA = "https://api.preview.platform.athenahealth.com/fhir/r4"
ATHENA_PATIENT = "a-80000.E-14545"


def _bundle(shared: Path, name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((shared / "data/real/bundles" / name).read_text())
    return data


def test_athena_cursor_pages_are_followed_to_the_end(shared_dir: Path) -> None:
    page1 = _bundle(shared_dir, "ehr_athena_observation_search_page1_next.json")
    page2 = _bundle(shared_dir, "ehr_athena_observation_search_page2_next.json")
    cursor2 = parse_qs(urlsplit(page1["link"][-1]["url"]).query)["cursor"][0]
    last = {"resourceType": "Bundle", "type": "searchset", "entry": []}
    served: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        served.append(str(request.url))
        path = request.url.path.removeprefix("/fhir/r4/")
        query = parse_qs(request.url.query.decode())
        if path == f"Patient/{ATHENA_PATIENT}/$everything":
            return httpx.Response(404)
        if path != "Observation":
            return httpx.Response(404)
        cursor = query.get("cursor", [None])[0]
        body = page1 if cursor is None else page2 if cursor == cursor2 else last
        return httpx.Response(200, json=body, headers={"Content-Type": "application/fhir+json"})

    capability = {
        "resourceType": "CapabilityStatement",
        "rest": [
            {
                "mode": "server",
                "resource": [
                    {
                        "type": "Observation",
                        "interaction": [{"code": "search-type"}],
                        "searchParam": [{"name": "patient", "type": "reference"}],
                    }
                ],
            }
        ],
    }

    async def go() -> SyncResult:
        async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
            fetcher = Fetcher(client, Limits())
            auth = Authorizer(
                fetcher,
                ATHENA,
                BearerCredentials(kind="bearer", token=SecretRef(env="T")),
                SecretSource(env={"T": "athena-test-token"}),
                record=lambda _: None,
            )
            job = PatientSync(
                fetcher,
                ATHENA,
                ATHENA_PATIENT,
                auth,
                capability=capability,
                limits=SyncLimits(page_size=50, validate=False),
            )
            return await job.run()

    result = anyio.run(go)
    pages = [u for u in served if "/Observation?" in u]
    assert len(pages) == 3  # both real pages, then the page their next link leads to
    ids = {e["resource"]["id"] for p in (page1, page2) for e in p["entry"]}
    assert result.resources_by_type["Observation"] == len(ids)
    assert not {f.code for f in result.findings} & {"paging_loop", "paging_repeats", "page_failed"}
    for url in (page1["link"][-1]["url"], page2["link"][-1]["url"]):
        assert strip_url_secrets(url) == url  # cursor, _count and patient are kept as they are


def test_blue_button_start_index_links_survive_scrubbing(shared_dir: Path) -> None:
    bundle = _bundle(shared_dir, "bluebutton_v1_eob_search.json")
    nxt = next(link["url"] for link in bundle["link"] if link["relation"] == "next")
    assert "startIndex=10" in nxt
    assert strip_url_secrets(nxt) == nxt
