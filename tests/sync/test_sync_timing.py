"""A sync's time split into the server's and probe's own (issue 14, item 5): the scored duration
does not move with probe's politeness settings; the wall time does."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import anyio
import httpx

from probe.directory.secrets import SecretSource
from probe.http.fetch import Fetcher
from probe.http.limits import Limits
from probe.http.politeness import Politeness
from probe.models import Exchange, ExtractStep
from probe.sync.auth import Authorizer
from probe.sync.limits import SyncLimits
from probe.sync.result import SyncResult
from probe.sync.runner import PatientSync
from tests.sync.fhir_mock import BASE, MockPayer
from tests.sync.test_sync_mock import ENV, refresh_creds

SERVER_DELAY = 0.04


def timed_sync(rate: float) -> SyncResult:
    payer = MockPayer()

    async def handler(request: httpx.Request) -> httpx.Response:
        await anyio.sleep(SERVER_DELAY)
        return payer.handler(request)

    async def go() -> SyncResult:
        transport = httpx.MockTransport(handler)
        async with httpx.AsyncClient(transport=transport) as client:
            fetcher = Fetcher(client, Limits(), gate=Politeness(per_host=1, rate=rate))
            auth = Authorizer(
                fetcher, BASE, refresh_creds(), SecretSource(env=ENV), record=lambda _: None
            )
            job = PatientSync(
                fetcher, BASE, "p1", auth, limits=SyncLimits(page_size=2, validate=False)
            )
            return await job.run()

    return anyio.run(go)


def test_the_scored_duration_excludes_probes_own_waiting() -> None:
    slow, fast = timed_sync(rate=4), timed_sync(rate=200)
    slow_t, fast_t = slow.timing(), fast.timing()
    assert slow_t is not None and fast_t is not None
    requests = len(slow.exchanges)
    assert requests >= 6
    # At 4 requests/s probe itself waits about 0.25 s before most requests.
    assert slow_t["probe_wait_ms"] > 0.15 * 1000 * (requests - 2)
    assert slow_t["wall_ms"] > 2 * fast_t["wall_ms"]
    # What is scored is the server's share: about the same at both rates.
    assert abs(slow_t["scored_ms"] - fast_t["scored_ms"]) < 250
    assert slow_t["server_ms"] >= SERVER_DELAY * 1000 * requests * 0.8
    assert slow.to_json()["timing"] == slow_t


def test_overlapping_requests_are_counted_once() -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    result = SyncResult(BASE, "p1", "p1", created_at=start)
    for offset in (0.0, 0.1):  # two requests on the wire at once, each 200 ms, no waiting
        result.exchanges.append(
            Exchange(
                "GET", BASE + "/x", ExtractStep.REFERENCE, status=200, latency_ms=200,
                started_at=start + timedelta(seconds=offset),
            )
        )  # fmt: skip
    result.completed_at = start + timedelta(seconds=0.5)
    timing = result.timing()
    assert timing == {
        "wall_ms": 500.0,
        "server_ms": 300.0,
        "probe_wait_ms": 0.0,
        "scored_ms": 500.0,
    }
