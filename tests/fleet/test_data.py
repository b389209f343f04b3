"""The served test data: valid R4 (checked with fhir.resources R4B), CARIN-shaped, deterministic."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from fhir.resources.R4B import get_fhir_model_class
from fhir.resources.R4B.bundle import Bundle

from probe.directory.schema import dump_directory, parse_directory
from probe.fleet.app import Fleet
from probe.fleet.patients import base_patients

from .conftest import bearer, make_fleet, next_link

Client = Callable[[Fleet], httpx.AsyncClient]


def test_every_served_resource_is_valid_r4() -> None:
    fleet = make_fleet(
        {"slug": "a", "patients": 6},
        {"slug": "b", "patients": 3, "archetypes": ["contained_references"]},
        {"slug": "c", "patients": 2, "archetypes": ["dangling_references"]},
    )
    counts: Counter[str] = Counter()
    for slug in ("a", "b", "c"):
        for (rtype, rid), raw in fleet.data(slug).resources.items():
            resource = json.loads(raw)
            assert resource["id"] == rid
            get_fhir_model_class(rtype).model_validate(resource)
            counts[rtype] += 1
    expected = {
        "Patient",
        "Coverage",
        "ExplanationOfBenefit",
        "Practitioner",
        "Organization",
        "Location",
        "Condition",
        "Observation",
        "Procedure",
        "Immunization",
        "MedicationRequest",
        "AllergyIntolerance",
    }
    assert expected <= set(counts)


def test_eobs_are_carin_shaped() -> None:
    fleet = make_fleet({"slug": "a", "patients": 6})
    kinds: Counter[str] = Counter()
    for (rtype, _), raw in fleet.data("a").resources.items():
        if rtype != "ExplanationOfBenefit":
            continue
        eob = json.loads(raw)
        (profile,) = eob["meta"]["profile"]
        assert "/carin-bb/StructureDefinition/C4BB-ExplanationOfBenefit" in profile
        kinds[eob["type"]["coding"][0]["code"]] += 1
        assert eob["identifier"][0]["type"]["coding"][0]["code"] == "uc"
    assert set(kinds) == {"professional", "institutional", "pharmacy"}


def test_base_patients_are_small_and_many_derive_from_them() -> None:
    assert len(base_patients()) >= 5
    fleet = make_fleet({"slug": "a", "patients": 8}, {"slug": "b", "patients": 8})
    a, b = fleet.patients("a"), fleet.patients("b")
    assert len(set(a)) == 8
    assert not set(a) & set(b)


@pytest.mark.anyio
async def test_served_bundles_validate(client_for: Client) -> None:
    fleet = make_fleet({"slug": "p"})
    client = client_for(fleet)
    url: str | None = (
        f"{fleet.base_url('p')}/Patient/{fleet.patients('p')[0]}/$everything?_count=40"
    )
    while url:
        response = await client.get(url, headers=bearer(fleet, "p"))
        Bundle.model_validate(response.json())
        url = next_link(response.json())


async def _snapshot(fleet: Fleet) -> list[bytes]:
    transport = fleet.transport()
    out = [
        dump_directory(fleet.directory("secrets.yaml")).encode(),
        json.dumps(fleet.secrets()).encode(),
    ]
    async with httpx.AsyncClient(transport=transport) as client:
        for slug in fleet.sites:
            base = fleet.base_url(slug)
            headers = bearer(fleet, slug)
            out.append((await client.get(base + "/metadata")).content)
            out.append((await client.get(base + "/.well-known/smart-configuration")).content)
            url: str | None = f"{base}/Patient/{fleet.patients(slug)[0]}/$everything?_count=50"
            while url:
                response = await client.get(url, headers=headers)
                out.append(response.content)
                url = next_link(response.json())
    return out


@pytest.mark.anyio
async def test_same_seed_same_bytes() -> None:
    payers = [
        {"slug": "a", "patients": 2},
        {
            "slug": "b",
            "archetypes": ["dangling_references"],
            "oauth": {"client_auth": "private_key_jwt"},
        },
        {"slug": "c", "archetypes": ["contained_references"], "paging_style": "hapi"},
    ]
    first = await _snapshot(make_fleet(*payers, seed=5))
    again = await _snapshot(make_fleet(*payers, seed=5))
    other = await _snapshot(make_fleet(*payers, seed=6))
    assert first == again
    assert first != other
    assert first[2:4] == other[2:4]  # discovery documents do not depend on the seed


def test_directory_round_trips_with_references_only() -> None:
    fleet = make_fleet(
        {"slug": "a", "oauth": {"client_auth": "client_secret_basic"}},
        {"slug": "b", "oauth": {"client_auth": "client_secret_post"}},
        {"slug": "c", "oauth": {"client_auth": "none"}},
        {"slug": "d", "oauth": {"client_auth": "private_key_jwt"}},
        {"slug": "e", "oauth": {"client_auth": "bearer"}},
        {"slug": "f", "archetypes": ["no_smart_config"]},
        {"slug": "g", "archetypes": ["sandbox_only"]},
    )
    text = dump_directory(fleet.directory("/tmp/fleet-secrets.yaml"))
    directory = parse_directory(text, Path("endpoints.yaml"))
    secrets = fleet.secrets()
    for value in secrets.values():
        assert value not in text
    kinds = {}
    for payer in directory.payers:
        (endpoint,) = payer.endpoints
        assert endpoint.credentials is not None
        kinds[payer.name] = endpoint.credentials.kind
        for field in ("client_secret", "refresh_token", "private_key", "token"):
            ref = getattr(endpoint.credentials, field, None)
            if ref is not None:
                assert ref.secret in secrets
        assert endpoint.test_patients
    assert set(kinds.values()) == {"refresh_token", "backend_services", "bearer"}
    f = next(p for p in directory.payers if p.name == "F")
    assert f.endpoints[0].credentials is not None
    assert getattr(f.endpoints[0].credentials, "token_url", None) == fleet.site("f").token_url
    g = next(p for p in directory.payers if p.name == "G")
    assert g.endpoints[0].sandbox_url == fleet.site("g").sandbox_url
