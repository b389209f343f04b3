"""Run the discovery suite against an httpx MockTransport that plays one payer."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import anyio
import httpx

from probe.checks.discovery import run_discovery
from probe.http.fetch import Fetcher
from probe.http.limits import Limits
from probe.models import Report
from tests.discovery_docs import BASE

Handler = Callable[[httpx.Request], httpx.Response]


def fhir_json(
    doc: dict[str, Any], status: int = 200, content_type: str = "application/fhir+json"
) -> httpx.Response:
    return httpx.Response(
        status, content=json.dumps(doc).encode(), headers={"Content-Type": content_type}
    )


def payer(metadata: httpx.Response | Handler, smart: httpx.Response | Handler) -> Handler:
    """A handler answering /metadata and the SMART well-known path; 404 elsewhere."""

    def handle(request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path.endswith("/metadata"):
            return metadata(request) if callable(metadata) else metadata
        if path.endswith("/.well-known/smart-configuration"):
            return smart(request) if callable(smart) else smart
        return httpx.Response(404)

    return handle


def discover(handler: Handler, base: str = BASE, limits: Limits | None = None) -> Report:
    """The discovery report for `base` served by `handler` (no retry sleeps)."""

    async def nap(_: float) -> None:
        return None

    async def go() -> Report:
        async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
            fetcher = Fetcher(client, limits or Limits(), sleep=nap)
            return await run_discovery(fetcher, base)

    return anyio.run(go)
