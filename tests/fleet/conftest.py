"""Helpers for the fleet tests: build a fleet from payer dicts, talk to it in-process."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from probe.fleet.app import Fleet
from probe.fleet.config import parse_fleet_config


class FakeClock:
    """A clock the tests move by hand (token expiry without sleeping)."""

    def __init__(self, start: float = 1_750_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def make_fleet(
    *payers: dict[str, Any], seed: int = 7, hosts: int = 2, clock: Callable[[], float] | None = None
) -> Fleet:
    """A fleet of the given payer configs (dicts as in the YAML)."""
    config = parse_fleet_config({"seed": seed, "hosts": hosts, "payers": list(payers)})
    if clock is None:
        return Fleet(config, port=8080)
    return Fleet(config, port=8080, clock=clock)


@pytest.fixture
async def client_for() -> AsyncIterator[Callable[[Fleet], httpx.AsyncClient]]:
    """Factory of httpx clients wired into a fleet in-process (closed after the test)."""
    clients: list[httpx.AsyncClient] = []

    def make(fleet: Fleet) -> httpx.AsyncClient:
        client = httpx.AsyncClient(transport=fleet.transport(), timeout=10)
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.aclose()


def bearer(fleet: Fleet, slug: str) -> dict[str, str]:
    """An Authorization header with a fresh access token for the payer."""
    return {"Authorization": "Bearer " + fleet.issue_access_token(slug)}


def next_link(bundle: dict[str, Any]) -> str | None:
    """The Bundle's next link, if any."""
    return next((lk["url"] for lk in bundle.get("link", []) if lk["relation"] == "next"), None)
