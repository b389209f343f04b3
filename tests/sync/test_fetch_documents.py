"""`probe sync` reads the CapabilityStatement and SMART configuration without running the
discovery checks: two requests at once, each document only when it is one."""

from __future__ import annotations

import json

import anyio

from probe.http.fetch import Fetcher, new_client
from probe.http.guard import AddressGuard
from probe.http.limits import Limits
from probe.sync.session import ServerDocuments, fetch_documents
from tests.servers import Route, serve

CAPABILITY = {"resourceType": "CapabilityStatement", "status": "active", "fhirVersion": "4.0.1"}
SMART = {"token_endpoint": "https://auth.example/token", "capabilities": ["launch-standalone"]}


def _fetch(routes: dict[str, Route]) -> tuple[ServerDocuments, list[str]]:
    with serve(routes) as (root, seen):
        guard = AddressGuard()
        guard.admit(root + "/fhir")

        async def go() -> ServerDocuments:
            async with new_client(guard=guard) as client:
                fetcher = Fetcher(client, Limits(max_retries=0), guard=guard)
                return await fetch_documents(fetcher, root + "/fhir/")

        documents = anyio.run(go)
        return documents, [path for path, _ in seen]


def test_both_documents_and_nothing_else() -> None:
    routes = {
        "/fhir/metadata": Route(200, json.dumps(CAPABILITY).encode()),
        "/fhir/.well-known/smart-configuration": Route(200, json.dumps(SMART).encode()),
    }
    documents, paths = _fetch(routes)
    assert documents.base_url.endswith("/fhir")
    assert documents.capability == CAPABILITY
    assert documents.smart_configuration == SMART
    assert sorted(paths) == ["/fhir/.well-known/smart-configuration", "/fhir/metadata"]


def test_what_is_not_a_document_is_none() -> None:
    routes = {
        "/fhir/metadata": Route(200, b'{"resourceType": "OperationOutcome"}'),
        "/fhir/.well-known/smart-configuration": Route(401, b"<html>login</html>"),
    }
    documents, _ = _fetch(routes)
    assert documents.capability is None and documents.smart_configuration is None


def test_the_smart_path_is_discovery_s() -> None:
    from probe.checks import discovery
    from probe.sync import session

    assert session.SMART_PATH == discovery.SMART_PATH
