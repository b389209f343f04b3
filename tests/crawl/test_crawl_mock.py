"""The crawl against an httpx MockTransport fleet: store contents, politeness, resume."""

from __future__ import annotations

import json
from typing import Any

import anyio
import httpx
import pytest
from sqlalchemy import func, select

from probe.crawl.crawler import CrawlSummary, TargetOutcome, crawl, select_targets
from probe.crawl.options import CrawlOptions
from probe.directory.schema import Directory, parse_directory
from probe.directory.secrets import SecretSource
from probe.http.limits import Limits
from probe.store.handle import Store
from probe.store.tables import CheckResultRow, HttpRequestRow, ProbeRunRow, RunStatus, RunTargetRow
from tests.discovery_docs import capability_statement, smart_configuration

N_GOOD = 6


def directory() -> Directory:
    payers = []
    for i in range(N_GOOD):
        payers.append(
            {
                "name": f"Good {i}",
                "endpoints": [
                    {
                        "base_url": f"https://good{i}.example/fhir",
                        "sandbox_url": f"https://sandbox{i}.example/fhir",
                    }
                ],
            }
        )
    payers.append({"name": "Locked", "endpoints": [{"base_url": "https://locked.example/fhir"}]})
    payers.append({"name": "Gone", "endpoints": [{"base_url": "https://gone.example/fhir"}]})
    from pathlib import Path

    import yaml

    return parse_directory(yaml.safe_dump({"version": 1, "payers": payers}), Path("test.yaml"))


class Fleet:
    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay
        self.requests: list[str] = []
        self.in_flight: dict[str, int] = {}
        self.max_in_flight: dict[str, int] = {}

    async def handler(self, request: httpx.Request) -> httpx.Response:
        host = request.url.host
        self.requests.append(str(request.url))
        self.in_flight[host] = self.in_flight.get(host, 0) + 1
        self.max_in_flight[host] = max(self.max_in_flight.get(host, 0), self.in_flight[host])
        try:
            if self.delay:
                await anyio.sleep(self.delay)
            if host == "gone.example":
                raise httpx.ConnectError("[Errno 111] Connection refused")
            if host == "locked.example":
                return httpx.Response(401, html="<html><title>Login</title></html>")
            if request.url.path.endswith("/metadata"):
                return httpx.Response(
                    200,
                    content=json.dumps(capability_statement()).encode(),
                    headers={"Content-Type": "application/fhir+json"},
                )
            if request.url.path.endswith("smart-configuration"):
                return httpx.Response(200, json=smart_configuration())
            return httpx.Response(404)
        finally:
            self.in_flight[host] -= 1


class Quiet:
    def __init__(
        self, stop_after: int | None = None, scope: list[anyio.CancelScope] | None = None
    ) -> None:
        self.stop_after = stop_after
        self.scope = scope

    def started(self, run_id: int, total: int, resumed: bool) -> None:
        pass

    def target_done(self, outcome: TargetOutcome, done: int, total: int) -> None:
        if self.stop_after is not None and done >= self.stop_after and self.scope:
            self.scope[0].cancel()

    def finished(self, status: RunStatus, outcomes: Any) -> None:
        pass


def run(
    store: Store,
    fleet: Fleet,
    *,
    resume: bool = False,
    stop_after: int | None = None,
    per_host: int = 2,
    concurrency: int = 8,
) -> CrawlSummary | None:
    d = directory()
    options = CrawlOptions(
        concurrency=concurrency,
        per_host=per_host,
        rate=1000,
        limits=Limits(max_retries=0),
        portal=False,
    )
    result: list[CrawlSummary] = []

    async def go() -> None:
        scopes: list[anyio.CancelScope] = []
        with anyio.CancelScope() as scope:
            scopes.append(scope)
            result.append(
                await crawl(
                    store,
                    d,
                    select_targets(d),
                    options,
                    Quiet(stop_after, scopes),
                    secrets=SecretSource(env={}),
                    resume=resume,
                    transport=httpx.MockTransport(fleet.handler),
                )
            )

    anyio.run(go)
    return result[0] if result else None


def count(store: Store, stmt: Any) -> int:
    with store.session() as s:
        return int(s.scalar(stmt) or 0)


def test_crawl_stores_every_endpoint_once_with_faults_classified(store: Store) -> None:
    fleet = Fleet()
    summary = run(store, fleet)
    assert summary is not None and summary.status is RunStatus.COMPLETED
    total = N_GOOD * 2 + 2
    assert len(summary.outcomes) == total
    assert len({o.endpoint_id for o in summary.outcomes}) == total
    # Each endpoint was probed exactly once: three discovery requests per endpoint.
    assert len(fleet.requests) == total * 3
    assert len(set(fleet.requests)) == total * 3
    with store.session() as s:
        rows = s.execute(
            select(CheckResultRow.check_id, CheckResultRow.status, CheckResultRow.message).join(
                RunTargetRow,
                (RunTargetRow.endpoint_id == CheckResultRow.endpoint_id)
                & (RunTargetRow.run_id == CheckResultRow.run_id),
            )
        ).all()
        run_row = s.get(ProbeRunRow, summary.run_id)
        assert run_row is not None and run_row.status == "completed"
        statuses = s.execute(
            select(RunTargetRow.status, func.count()).group_by(RunTargetRow.status)
        ).all()
    assert dict(statuses) == {"done": total}
    reach = [(st, msg) for cid, st, msg in rows if cid == "metadata.reachable"]
    assert sum(1 for st, _ in reach if st == "pass") == N_GOOD * 2
    assert any(st == "fail" and "must be public" in msg for st, msg in reach)
    assert any(st == "fail" and msg.startswith("connection refused") for st, msg in reach)
    assert count(store, select(func.count()).select_from(HttpRequestRow)) == total * 3


def test_per_host_limit_holds(store: Store) -> None:
    fleet = Fleet(delay=0.02)
    run(store, fleet, per_host=1)
    assert max(fleet.max_in_flight.values()) == 1


def test_interrupted_crawl_resumes_without_duplicates(store: Store) -> None:
    fleet = Fleet(delay=0.01)
    first = run(store, fleet, stop_after=4, concurrency=2)
    assert first is None  # the task group was cancelled from outside
    with store.session() as s:
        interrupted = s.scalars(select(ProbeRunRow)).one()
        assert interrupted.status == "interrupted" and interrupted.finished_at is not None
    done_first = count(
        store, select(func.count()).select_from(RunTargetRow).where(RunTargetRow.status == "done")
    )
    assert 4 <= done_first < N_GOOD * 2 + 2
    second = run(store, Fleet(), resume=True)
    assert second is not None and second.resumed and second.run_id == interrupted.id
    assert second.status is RunStatus.COMPLETED
    total = N_GOOD * 2 + 2
    assert second.skipped_done == done_first
    assert (
        count(
            store,
            select(func.count()).select_from(RunTargetRow).where(RunTargetRow.status == "done"),
        )
        == total
    )
    # No duplicates: exactly one reachable verdict and three discovery requests per endpoint.
    assert (
        count(
            store,
            select(func.count())
            .select_from(CheckResultRow)
            .where(CheckResultRow.check_id == "metadata.reachable"),
        )
        == total
    )
    assert count(store, select(func.count()).select_from(HttpRequestRow)) == total * 3
    assert count(store, select(func.count()).select_from(ProbeRunRow)) == 1


def test_resume_without_an_interrupted_run_starts_clean(store: Store) -> None:
    summary = run(store, Fleet(), resume=True)
    assert summary is not None and not summary.resumed and summary.status is RunStatus.COMPLETED


@pytest.mark.parametrize(("shards", "expected_total"), [(3, N_GOOD * 2 + 2)])
def test_shards_partition_the_directory(shards: int, expected_total: int) -> None:
    d = directory()
    seen: list[str] = []
    for i in range(1, shards + 1):
        seen += [t.key for t in select_targets(d, shard=(i, shards))]
    assert sorted(seen) == sorted(t.key for t in select_targets(d))
    assert len(seen) == expected_total


def test_outcome_log_counts_every_outcome_and_holds_only_the_first() -> None:
    from probe.crawl.crawler import OutcomeLog, TargetOutcome

    log = OutcomeLog(keep=2)
    outcomes = [TargetOutcome(target=None, endpoint_id=i) for i in range(5)]  # type: ignore[arg-type]
    for outcome in outcomes:
        log.add(outcome)
    assert log.count == 5 and log.kept == outcomes[:2]
