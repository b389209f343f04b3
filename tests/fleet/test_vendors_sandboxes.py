"""Fleet payers name their vendor and may run a sandbox beside production; the demo fleet has
several vendors and sandboxes."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import httpx
import pytest

from probe.fleet import journeys
from probe.fleet.app import Fleet
from probe.fleet.config import load_fleet_config
from tests.fleet.conftest import bearer, make_fleet

pytestmark = pytest.mark.anyio
DEMO = Path(journeys.__file__).parent / "data" / "demo-fleet.yaml"


async def test_a_sandbox_beside_production(client_for: object) -> None:
    fleet = make_fleet(
        {"slug": "acme", "vendor": "Lattice Health Cloud", "sandbox": True},
        {"slug": "plain"},
    )
    client: httpx.AsyncClient = client_for(fleet)  # type: ignore[operator]
    acme = fleet.site("acme")
    assert acme.sandbox_url == f"http://{acme.host}:8080/payers/acme/sandbox/fhir"
    patient = fleet.patients("acme")[0]
    for base in (fleet.base_url("acme"), acme.sandbox_url):
        assert (await client.get(base + "/metadata")).status_code == 200
        data = await client.get(
            f"{base}/Patient/{patient}/$everything", headers=bearer(fleet, "acme")
        )
        assert data.status_code == 200 and data.json()["resourceType"] == "Bundle"
    plain = fleet.site("plain")
    assert plain.sandbox_url is None
    missing = await client.get(f"http://{plain.host}:8080/payers/plain/sandbox/fhir/metadata")
    assert missing.status_code == 404


def test_the_directory_names_vendor_and_sandbox() -> None:
    fleet = make_fleet({"slug": "acme", "vendor": "Cobalt Interop", "sandbox": True}, {"slug": "b"})
    acme, other = fleet.directory("secrets.yaml").payers
    assert acme.vendor == "Cobalt Interop" and other.vendor == "probe fleet"
    assert acme.endpoints[0].sandbox_url == fleet.site("acme").sandbox_url
    assert other.endpoints[0].sandbox_url is None


def test_the_demo_fleet_has_several_vendors_and_sandboxes() -> None:
    config = load_fleet_config(DEMO)
    vendors = Counter(p.vendor for p in config.payers)
    assert None not in vendors and len(vendors) == 5
    assert all(count >= 4 for count in vendors.values())  # each vendor scored over 4+ payers
    directory = Fleet(config, port=8791).directory("secrets.yaml")
    sandboxes = [p.name for p in directory.payers if p.endpoints[0].sandbox_url]
    assert len(sandboxes) == 7 and "Frontier Medicaid" in sandboxes  # 6 + the sandbox-only one
