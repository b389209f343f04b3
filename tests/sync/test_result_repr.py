"""A sync result's and a crawl summary's repr stay short whatever they hold: asyncio formats
the finished main task's result (its repr) when ``anyio.run`` restores the SIGINT handler."""

from __future__ import annotations

from datetime import UTC, datetime

from probe.crawl.crawler import CrawlSummary, TargetOutcome
from probe.directory.schema import Target
from probe.models import Exchange, ExtractStep
from probe.store.tables import RunStatus
from probe.sync.result import SyncResult


def _big_result() -> SyncResult:
    result = SyncResult("https://payer.example/fhir", "p1", "member", datetime.now(UTC))
    result.resource_ids["Observation"] = {f"obs-{i}" for i in range(20_000)}
    result.exchanges = [
        Exchange(method="GET", url=f"https://payer.example/fhir/x{i}", step=ExtractStep.EVERYTHING)
        for i in range(2_000)
    ]
    result.outcome = "completed"
    return result


def test_a_sync_result_repr_is_short() -> None:
    text = repr(_big_result())
    assert len(text) < 200 and "completed" in text and "member" in text


def test_a_crawl_summary_repr_is_short() -> None:
    target = object.__new__(Target)
    outcomes = [TargetOutcome(target, i) for i in range(5_000)]
    summary = CrawlSummary(7, RunStatus.COMPLETED, outcomes, resumed=False)
    text = repr(summary)
    assert len(text) < 200 and "5000 outcomes" in text and "run 7" in text
