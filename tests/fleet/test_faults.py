"""Rate limits, flakiness, latency, moved bases and a dead production (in-process)."""

from __future__ import annotations

import time
from collections.abc import Callable
from email.utils import parsedate_to_datetime

import httpx
import pytest

from probe.fleet.app import Fleet
from probe.fleet.sites import REFUSED_ADDRESS

from .conftest import bearer, make_fleet

pytestmark = pytest.mark.anyio
Client = Callable[[Fleet], httpx.AsyncClient]


async def test_rate_limited_every_nth_request(client_for: Client) -> None:
    fleet = make_fleet(
        {"slug": "p", "archetypes": [{"rate_limited": {"every": 3, "retry_after": 7}}]}
    )
    client = client_for(fleet)
    statuses = []
    for _ in range(9):
        response = await client.get(fleet.base_url("p") + "/metadata")
        statuses.append(response.status_code)
        if response.status_code == 429:
            assert response.headers["retry-after"] == "7"
            assert response.json()["issue"][0]["code"] == "throttled"
    assert statuses == [200, 200, 429] * 3


@pytest.mark.parametrize("style", ["http_date", "ratelimit"])
async def test_rate_limit_header_styles(client_for: Client, style: str) -> None:
    fleet = make_fleet(
        {
            "slug": "p",
            "archetypes": [{"rate_limited": {"every": 1, "retry_after": 30, "style": style}}],
        }
    )
    response = await client_for(fleet).get(fleet.base_url("p") + "/metadata")
    assert response.status_code == 429
    if style == "http_date":
        assert parsedate_to_datetime(response.headers["retry-after"]).timestamp() > time.time()
    else:
        assert "retry-after" not in response.headers
        assert "reset=30" in response.headers["ratelimit"]


async def _outcomes(fleet: Fleet, client: httpx.AsyncClient, n: int) -> list[str]:
    out = []
    for i in range(n):
        try:
            response = await client.get(f"{fleet.base_url('p')}/metadata?i={i}")
            out.append(str(response.status_code))
        except httpx.ReadError:
            out.append("reset")
    return out


async def test_flaky_is_seeded(client_for: Client) -> None:
    payer = {"slug": "p", "archetypes": [{"flaky": {"error_rate": 0.3, "reset_rate": 0.2}}]}
    first = make_fleet(payer)
    outcomes = await _outcomes(first, client_for(first), 60)
    assert {"200", "503", "reset"} <= set(outcomes)
    again = make_fleet(payer)
    assert await _outcomes(again, client_for(again), 60) == outcomes
    other = make_fleet(payer, seed=8)
    assert await _outcomes(other, client_for(other), 60) != outcomes
    assert first.stats.host(first.site("p").host).resets == outcomes.count("reset")


async def test_flaky_retry_of_same_url_can_succeed(client_for: Client) -> None:
    fleet = make_fleet(
        {"slug": "p", "archetypes": [{"flaky": {"error_rate": 0.5, "reset_rate": 0.0}}]}
    )
    client = client_for(fleet)
    statuses = [
        (await client.get(fleet.base_url("p") + "/metadata")).status_code for _ in range(20)
    ]
    assert 200 in statuses
    assert 503 in statuses


async def test_slow_adds_latency(client_for: Client) -> None:
    fleet = make_fleet({"slug": "p", "archetypes": [{"slow": {"median_ms": 40, "sigma": 0.1}}]})
    client = client_for(fleet)
    started = time.perf_counter()
    for _ in range(3):
        await client.get(fleet.base_url("p") + "/metadata")
    assert time.perf_counter() - started >= 0.09


async def test_moved_redirects_to_the_new_base(client_for: Client) -> None:
    fleet = make_fleet({"slug": "p", "archetypes": ["moved"]}, hosts=2)
    client = client_for(fleet)
    site = fleet.site("p")
    response = await client.get(fleet.base_url("p") + "/metadata?_format=json")
    assert response.status_code == 301
    location = response.headers["location"]
    assert location == site.served_base_url + "/metadata?_format=json"
    assert site.alt_host in location
    moved = await client.get(location)
    assert moved.status_code == 200
    assert moved.json()["implementation"]["url"] == site.served_base_url
    patient = fleet.patients("p")[0]
    old = await client.get(f"{fleet.base_url('p')}/Patient/{patient}", headers=bearer(fleet, "p"))
    assert old.status_code == 301
    smart = (await client.get(site.served_base_url + "/.well-known/smart-configuration")).json()
    assert smart["token_endpoint"].startswith(f"http://{site.alt_host}:")


async def test_sandbox_only_refused(client_for: Client) -> None:
    fleet = make_fleet({"slug": "p", "archetypes": ["sandbox_only"]})
    client = client_for(fleet)
    site = fleet.site("p")
    assert REFUSED_ADDRESS in fleet.base_url("p")
    with pytest.raises(httpx.ConnectError):
        await client.get(fleet.base_url("p") + "/metadata")
    assert site.sandbox_url is not None
    sandbox = await client.get(site.sandbox_url + "/metadata")
    assert sandbox.status_code == 200
    patient = fleet.patients("p")[0]
    data = await client.get(
        f"{site.sandbox_url}/Patient/{patient}/$everything", headers=bearer(fleet, "p")
    )
    assert data.status_code == 200


async def test_sandbox_only_503(client_for: Client) -> None:
    fleet = make_fleet({"slug": "p", "archetypes": [{"sandbox_only": {"production": "503"}}]})
    client = client_for(fleet)
    production = await client.get(fleet.base_url("p") + "/metadata")
    assert production.status_code == 503
    assert production.headers["content-type"].startswith("text/html")
    sandbox_url = fleet.site("p").sandbox_url
    assert sandbox_url is not None
    assert (await client.get(sandbox_url + "/metadata")).status_code == 200


async def test_plain_asgi_transport_raises_fleet_reset() -> None:
    from probe.fleet.errors import FleetReset

    fleet = make_fleet({"slug": "p", "archetypes": [{"flaky": {"error_rate": 0, "reset_rate": 1}}]})
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=fleet.app)) as client:
        with pytest.raises(FleetReset):
            await client.get(fleet.base_url("p") + "/metadata")


async def test_rate_limited_window_limiter_shared_by_a_bucket(client_for: Client) -> None:
    """With `limit`, a sliding window: the third request within the window is refused, for
    either payer of the bucket, and told how long until there is room (a long window, so no
    request here can leave it)."""
    limited = {"rate_limited": {"limit": 2, "window_s": 600, "bucket": "h", "style": "ratelimit"}}
    fleet = make_fleet(
        {"slug": "p", "archetypes": [limited]}, {"slug": "q", "archetypes": [limited]}
    )
    client = client_for(fleet)
    statuses = []
    for slug in ("p", "q", "q", "p"):
        response = await client.get(fleet.base_url(slug) + "/metadata")
        statuses.append(response.status_code)
    assert statuses == [200, 200, 429, 429]
    assert "remaining=0" in response.headers["ratelimit"]
    assert int(response.headers["ratelimit"].rsplit("=", 1)[1]) > 500


async def test_rate_limited_window_limiter_bare_429(client_for: Client) -> None:
    fleet = make_fleet(
        {"slug": "p", "archetypes": [{"rate_limited": {"limit": 1, "style": "none"}}]}
    )
    client = client_for(fleet)
    assert (await client.get(fleet.base_url("p") + "/metadata")).status_code == 200
    refused = await client.get(fleet.base_url("p") + "/metadata")
    assert refused.status_code == 429
    assert "retry-after" not in refused.headers and "ratelimit" not in refused.headers
