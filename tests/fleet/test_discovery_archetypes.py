"""/metadata and .well-known/smart-configuration per archetype (in-process)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
from fhir.resources.R4B.capabilitystatement import CapabilityStatement

from probe.fleet.app import Fleet
from probe.fleet.documents import C4BB_CS, OAUTH_URIS

from .conftest import bearer, make_fleet

pytestmark = pytest.mark.anyio
Client = Callable[[Fleet], httpx.AsyncClient]


async def _get(client_for: Client, archetype: str, path: str, **kw: Any) -> httpx.Response:
    fleet = make_fleet({"slug": "p", "archetypes": [archetype]})
    client = client_for(fleet)
    return await client.get(fleet.base_url("p") + path, **kw)


async def test_exemplary_metadata_and_smart_config_agree(client_for: Client) -> None:
    fleet = make_fleet({"slug": "p"})
    client = client_for(fleet)
    base = fleet.base_url("p")
    meta = await client.get(base + "/metadata")
    assert meta.status_code == 200
    assert meta.headers["content-type"].startswith("application/fhir+json")
    statement = meta.json()
    CapabilityStatement.model_validate(statement)
    assert statement["fhirVersion"] == "4.0.1"
    assert C4BB_CS in statement["instantiates"]
    security = statement["rest"][0]["security"]
    assert security["service"][0]["coding"][0]["code"] == "SMART-on-FHIR"
    uris = {e["url"]: e["valueUri"] for e in security["extension"][0]["extension"]}
    assert security["extension"][0]["url"] == OAUTH_URIS
    patient = next(r for r in statement["rest"][0]["resource"] if r["type"] == "Patient")
    assert patient["operation"][0]["name"] == "everything"

    smart = await client.get(base + "/.well-known/smart-configuration")
    assert smart.status_code == 200
    assert smart.headers["content-type"].startswith("application/json")
    doc = smart.json()
    assert doc["token_endpoint"] == uris["token"] == fleet.site("p").token_url
    assert doc["authorization_endpoint"] == uris["authorize"]
    assert "S256" in doc["code_challenge_methods_supported"]
    assert "plain" not in doc["code_challenge_methods_supported"]
    assert "authorization_code" in doc["grant_types_supported"]
    for capability in (
        "launch-standalone",
        "client-public",
        "client-confidential-symmetric",
        "context-standalone-patient",
        "permission-patient",
    ):
        assert capability in doc["capabilities"]
    assert doc["issuer"] and doc["jwks_uri"]
    jwks = await client.get(doc["jwks_uri"])
    assert jwks.json()["keys"][0]["kty"] == "EC"


async def test_no_smart_config(client_for: Client) -> None:
    response = await _get(client_for, "no_smart_config", "/.well-known/smart-configuration")
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("text/html")


async def test_metadata_auth_needs_a_token(client_for: Client) -> None:
    fleet = make_fleet({"slug": "p", "archetypes": ["metadata_auth"]})
    client = client_for(fleet)
    response = await client.get(fleet.base_url("p") + "/metadata")
    assert response.status_code == 401
    assert response.headers["content-type"].startswith("text/html")
    assert "HTTP Status 401" in response.text
    assert response.headers["www-authenticate"].startswith("Bearer")
    authed = await client.get(fleet.base_url("p") + "/metadata", headers=bearer(fleet, "p"))
    assert authed.status_code == 200
    smart = await client.get(fleet.base_url("p") + "/.well-known/smart-configuration")
    assert smart.status_code == 200


async def test_html_login_page_with_200(client_for: Client) -> None:
    response = await _get(client_for, "html_login", "/metadata")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "<form" in response.text


@pytest.mark.parametrize(
    ("archetype", "resource_type", "version"),
    [
        ("legacy_stu3", "CapabilityStatement", "3.0.2"),
        ("r4_400", "CapabilityStatement", "4.0.0"),
        ("dstu2_conformance", "Conformance", "1.0.2"),
    ],
)
async def test_versions(
    client_for: Client, archetype: str, resource_type: str, version: str
) -> None:
    body = (await _get(client_for, archetype, "/metadata")).json()
    assert body["resourceType"] == resource_type
    assert body["fhirVersion"] == version


async def test_oidc_document_at_smart_path(client_for: Client) -> None:
    body = (await _get(client_for, "oidc_at_smart_path", "/.well-known/smart-configuration")).json()
    assert "capabilities" not in body
    assert body["issuer"].endswith("/.well-known/openid-configuration")
    assert "subject_types_supported" in body


async def test_smart_minimal(client_for: Client) -> None:
    body = (await _get(client_for, "smart_minimal", "/.well-known/smart-configuration")).json()
    assert set(body) == {"authorization_endpoint", "token_endpoint"}


async def test_everything_unsupported_not_declared(client_for: Client) -> None:
    body = (await _get(client_for, "everything_unsupported", "/metadata")).json()
    patient = next(r for r in body["rest"][0]["resource"] if r["type"] == "Patient")
    assert "operation" not in patient


async def test_plain_json_content_type(client_for: Client) -> None:
    response = await _get(client_for, "plain_json", "/metadata")
    assert response.headers["content-type"].startswith("application/json")


async def test_unknown_payer_and_wrong_host(client_for: Client) -> None:
    fleet = make_fleet({"slug": "p"}, {"slug": "q"}, hosts=3)
    client = client_for(fleet)
    assert (
        await client.get("http://127.0.0.2:8080/payers/nobody/fhir/metadata")
    ).status_code == 404
    # payer p lives on host 0 (127.0.0.2) with 127.0.0.3 as its other origin; not on 127.0.0.4.
    assert (await client.get("http://127.0.0.4:8080/payers/p/fhir/metadata")).status_code == 404
