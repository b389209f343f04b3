"""A crawl against a fleet where one host throttles: it gets 429s, the crawl slows down for that
host only (the other host keeps the full pace), and the throttling is recorded (the summary's
host stats, the stored requests)."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import anyio
import pytest
from sqlalchemy import select

from probe.cli.progress import LogReporter
from probe.crawl.crawler import CrawlSummary, crawl, select_targets
from probe.crawl.options import CrawlOptions
from probe.directory.secrets import SecretSource
from probe.fleet.config import parse_fleet_config
from probe.fleet.serve import running_fleet
from probe.http.limits import Limits
from probe.store.handle import Store
from probe.store.tables import EndpointRow, HttpRequestRow, ProbeRunRow, RunStatus
from tests.fleet_files import fleet_directory

pytestmark = pytest.mark.slow

RATE = 50.0  # the ceiling: 20 ms between starts on a host


def fleet_config() -> dict[str, Any]:
    """Host 0: three payers, two throttling (a bare 429 every 3rd request; a 429 with
    Retry-After every 3rd); host 1: three well-behaved payers."""
    payers: list[dict[str, Any]] = [
        {"slug": "bare-429", "host": 0, "archetypes": [{"rate_limited": {"every": 3, "style": "none"}}]},
        {"slug": "retry-after", "host": 0, "archetypes": [{"rate_limited": {"every": 3, "retry_after": 1}}]},
        {"slug": "calm-0", "host": 0, "archetypes": ["exemplary"]},
    ]  # fmt: skip
    payers += [{"slug": f"calm-{i}", "host": 1, "archetypes": ["exemplary"]} for i in (1, 2, 3)]
    return {"seed": 5, "hosts": 2, "payers": payers}


def test_a_throttling_host_is_slowed_down_alone_and_recorded(store: Store, tmp_path: Path) -> None:
    config = parse_fleet_config(fleet_config())
    box: dict[str, Any] = {}

    async def go() -> None:
        async with running_fleet(config) as fleet:
            directory, secrets = fleet_directory(fleet, tmp_path)
            options = CrawlOptions(
                concurrency=8,
                per_host=2,
                rate=RATE,
                sync=False,
                limits=Limits(total_timeout=20, max_retries=2, backoff_base=0.05),
            )
            box["summary"] = await crawl(
                store,
                directory,
                select_targets(directory),
                options,
                LogReporter(io.StringIO()),
                secrets=SecretSource(secrets),
            )
            box["addresses"] = list(fleet.addresses)
            box["served"] = {a: dict(fleet.stats.host(a).statuses) for a in fleet.addresses}

    anyio.run(go)
    summary: CrawlSummary = box["summary"]
    assert summary.status is RunStatus.COMPLETED
    throttling, calm = box["addresses"][:2]
    # The fleet's own counters: only host 0 answered 429s.
    assert box["served"][throttling].get(429, 0) >= 2
    assert box["served"][calm].get(429, 0) == 0

    stats = summary.host_stats
    slow, fast = stats[throttling], stats[calm]
    assert slow["throttled"] == box["served"][throttling][429]
    assert slow["slowdowns"] >= 1
    assert slow["paused_ms"] >= 1000  # the Retry-After: 1 paused the whole host
    assert slow["slowest_interval_ms"] >= 2 * 1000 / RATE  # at least halved
    assert (fast["throttled"], fast["slowdowns"], fast["paused_ms"]) == (0, 0, 0)
    assert fast["slowest_interval_ms"] == fast["interval_ms"] == 1000 / RATE  # full pace

    # Stored: every 429 on host 0's endpoints, each retried until answered.
    with store.session() as s:
        hosts = {e.id: e.base_url for e in s.scalars(select(EndpointRow))}
        rows = s.execute(
            select(HttpRequestRow.endpoint_id, HttpRequestRow.status, HttpRequestRow.step)
        ).all()
    throttled_rows = [(hosts[eid], step) for eid, status, step in rows if status == 429]
    assert len(throttled_rows) == slow["throttled"]
    assert all(f"//{throttling}:" in url for url, _ in throttled_rows)
    retried = [status for _, status, step in rows if step == "retry"]
    assert len(retried) >= len(throttled_rows)  # each throttled request was sent again
    assert any(status != 429 for status in retried)
    assert all(outcome.error is None for outcome in summary.outcomes)
    # The run's note names the throttling host, and only it (probe history shows it).
    with store.session() as s:
        note = s.scalar(select(ProbeRunRow.note).where(ProbeRunRow.id == summary.run_id)) or ""
    assert f"{throttling} throttled probe" in note, note
    assert f"{calm} throttled" not in note
