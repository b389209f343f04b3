"""Without `--concurrency`, a crawl gives every host of its directory its `--per-host` lanes."""

from __future__ import annotations

import io

import anyio
import httpx

from probe.cli.progress import LogReporter
from probe.crawl.crawler import CrawlSummary, crawl, select_targets
from probe.crawl.options import MAX_SIZED_CONCURRENCY, CrawlOptions, sized_concurrency
from probe.directory.secrets import SecretSource
from probe.http.limits import Limits
from probe.store.handle import Store
from tests.crawl.test_crawl_mock import Fleet, directory


def test_sized_to_the_hosts_between_the_floor_and_the_cap() -> None:
    assert sized_concurrency(64, hosts=16, per_host=2) == 64  # the floor
    assert sized_concurrency(64, hosts=300, per_host=2) == 600  # Lantern-sized: every lane
    assert sized_concurrency(64, hosts=5000, per_host=2) == MAX_SIZED_CONCURRENCY


class Counting(Fleet):
    """The mock fleet, also counting requests in flight across all hosts."""

    def __init__(self, delay: float) -> None:
        super().__init__(delay)
        self.total = 0
        self.max_total = 0

    async def handler(self, request: httpx.Request) -> httpx.Response:
        self.total += 1
        self.max_total = max(self.max_total, self.total)
        try:
            return await super().handler(request)
        finally:
            self.total -= 1


def crawl_with(store: Store, *, size_to_hosts: bool) -> tuple[CrawlSummary, Counting]:
    fleet = Counting(delay=0.05)
    d = directory()  # 14 hosts: 6 payers with a sandbox host each, a locked one, a gone one
    options = CrawlOptions(
        concurrency=2,
        size_to_hosts=size_to_hosts,
        per_host=1,
        rate=1000,
        sync=False,
        portal=False,
        limits=Limits(max_retries=0),
    )

    async def go() -> CrawlSummary:
        return await crawl(
            store,
            d,
            select_targets(d),
            options,
            LogReporter(io.StringIO()),
            secrets=SecretSource(None),
            transport=httpx.MockTransport(fleet.handler),
        )

    return anyio.run(go), fleet


def test_every_host_gets_its_lanes_when_concurrency_is_not_given(store: Store) -> None:
    summary, fleet = crawl_with(store, size_to_hosts=True)
    assert summary.concurrency == 14 and summary.probed == 14
    assert fleet.max_total > 2  # more endpoints than the floor were probed at once
    assert max(fleet.max_in_flight.values()) == 1  # and each host still saw one at a time


def test_a_given_concurrency_is_kept(store: Store) -> None:
    summary, fleet = crawl_with(store, size_to_hosts=False)
    assert summary.concurrency == 2 and summary.probed == 14
    assert fleet.max_total <= 2
