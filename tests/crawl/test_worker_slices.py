"""A busy host is claimed a slice at a time: two workers share it, neither starts a request on
it before the host's politeness interval, and every target is probed exactly once."""

from __future__ import annotations

import io
import itertools
import time
from collections import Counter
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from sqlalchemy import select

import probe.crawl.workers as workers
import probe.store.claims as claims
from probe.cli.progress import LogReporter
from probe.crawl.crawler import CrawlSummary, crawl, select_targets
from probe.crawl.options import CrawlOptions
from probe.crawl.workers import SLICE_PER_LANE
from probe.directory.secrets import SecretSource
from probe.fleet.config import parse_fleet_config
from probe.fleet.serve import running_fleet
from probe.http.limits import Limits
from probe.store.handle import Store
from probe.store.tables import HttpRequestRow, RunHostRow, RunStatus, RunTargetRow
from tests.fleet_files import fleet_directory

pytestmark = pytest.mark.slow

PAYERS = 9


class SendTimes(httpx.AsyncBaseTransport):
    """Records when each request is handed to the network (after probe's politeness)."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.sent: list[float] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.sent.append(time.perf_counter())
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


RATE = 4.0  # request starts per second on the one host: 250 ms apart


def test_two_workers_share_one_busy_host_slice_by_slice(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Hand-overs are what is tested: a worker may not take back the slice it just gave up
    # (left alone, the worker that releases a host usually claims it again at once).
    last: dict[str, str] = {}
    holders: list[str] = []

    def alternating(engine: Any, run_id: int, worker: str, **kwargs: Any) -> Any:
        if last.get("worker") == worker:
            return None
        claim = claims.claim_host(engine, run_id, worker, **kwargs)
        if claim is not None:
            last["worker"] = worker
            holders.append(worker)
        return claim

    monkeypatch.setattr(workers, "claim_host", alternating)
    # The waiting worker looks again every 5 ms (not every second): it is ready to start the
    # moment a host is handed back, so only the host's "not before" can keep it waiting.
    original_init = workers.ClaimingSource.__init__

    def eager(self: workers.ClaimingSource, *args: Any, **kwargs: Any) -> None:
        original_init(self, *args, **{**kwargs, "poll": 0.005})

    monkeypatch.setattr(workers.ClaimingSource, "__init__", eager)
    config = parse_fleet_config(
        {
            "seed": 5,
            "hosts": 1,
            "payers": [
                {"slug": f"p{i:02d}", "archetypes": [{"slow": {"median_ms": 5, "sigma": 0}}]}
                for i in range(PAYERS)
            ],
        }
    )
    options = CrawlOptions(
        concurrency=4,
        per_host=1,
        rate=RATE,
        sync=False,
        portal=False,
        limits=Limits(total_timeout=20, max_retries=1, backoff_base=0.05),
    )
    box: dict[str, Any] = {}

    async def go() -> None:
        async with running_fleet(config) as fleet:
            directory, secrets = fleet_directory(fleet, tmp_path)
            chosen = select_targets(directory)
            source = SecretSource(secrets)
            transport = SendTimes(httpx.AsyncHTTPTransport())

            async def worker(join: int | None) -> CrawlSummary:
                return await crawl(
                    store,
                    directory,
                    chosen,
                    options,
                    LogReporter(io.StringIO()),
                    secrets=source,
                    join=join,
                    transport=transport,
                )

            async with anyio.create_task_group() as tg:

                async def first() -> None:
                    box["first"] = await worker(None)

                async def second() -> None:
                    while True:  # join as soon as the first worker has listed its run
                        with store.session() as s:
                            run = s.scalar(select(RunHostRow.run_id).limit(1))
                        if run is not None:
                            break
                        await anyio.sleep(0.01)
                    box["second"] = await worker(run)

                tg.start_soon(first)
                tg.start_soon(second)
            box["max_concurrent"] = fleet.stats.host(fleet.addresses[0]).max_concurrent
            box["sent"] = sorted(transport.sent)

    anyio.run(go)
    first, second = box["first"], box["second"]
    statuses = {first.status, second.status}
    assert statuses == {RunStatus.COMPLETED}
    assert first.probed + second.probed == PAYERS
    assert box["max_concurrent"] == 1  # per-host concurrency held across the two workers

    with store.session() as s:
        host_claims = s.scalar(select(RunHostRow.claims))
        done = Counter(s.scalars(select(RunTargetRow.status)))
        metadata = Counter(
            url for url in s.scalars(select(HttpRequestRow.url)) if url.endswith("/metadata")
        )
    # per_host 1: at most SLICE_PER_LANE targets per claim, fewer towards the end of the run.
    slices = -(-PAYERS // SLICE_PER_LANE)
    assert host_claims == len(holders) >= slices
    assert len(set(holders)) == 2 and all(a != b for a, b in itertools.pairwise(holders))
    assert done == {"done": PAYERS}
    assert set(metadata.values()) == {1} and len(metadata) == PAYERS
    # Requests leave for the host the politeness interval apart, hand-overs included (a
    # hand-over without the host's "not before" sends in tens of ms; a loaded event loop may
    # wake one request late and the next on time: half the interval is kept).
    sent = box["sent"]
    assert len(sent) >= 3 * PAYERS
    gaps = [b - a for a, b in itertools.pairwise(sent)]
    assert min(gaps) >= 0.5 / RATE, sorted(gaps)[:5]
