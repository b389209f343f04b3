"""A worker keeps a host it holds from one slice to the next while other hosts are free: no
hand-back between, its lanes busy across the change, every target probed once, and the host
handed back (written first) only when the rest could go to another worker (both DBs)."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from typing import Any

import anyio
import pytest
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

import probe.crawl.workers as workers
from probe.crawl.workers import ClaimingSource
from probe.store.claims import queue_state, register_hosts
from probe.store.handle import Store
from probe.store.runs import register_targets
from probe.store.tables import HostStatus, RunHostRow, RunTargetRow, TargetStatus

PER_HOST = 2
SLICE = 4


def _run(store: Store, layout: dict[str, int]) -> tuple[int, dict[int, str]]:
    run_id = store.start_run("nightly", {})
    hosts: dict[int, str] = {}
    for host, count in layout.items():
        for i in range(count):
            hosts[store.ensure_endpoint(f"https://{host}/fhir{i}")] = host
    register_targets(store.engine, run_id, hosts)
    register_hosts(store.engine, run_id, hosts)
    return run_id, hosts


def _crawl(
    store: Store, run_id: int, hosts: dict[int, str], *, window: int, unlisted: set[int]
) -> tuple[ClaimingSource, list[int], dict[str, int], Any]:
    writer = store.writer(run_id).start()
    source = ClaimingSource(
        store,
        run_id,
        {eid: object() for eid in hosts if eid not in unlisted},  # type: ignore[misc]
        writer,
        window=window,
        per_host=PER_HOST,
        lease=timedelta(seconds=30),
        slice_size=SLICE,
        poll=0.01,
    )
    probed: list[int] = []
    in_flight: Counter[str] = Counter()
    most: dict[str, int] = {}

    async def start(_target: object, endpoint_id: int) -> None:
        host = hosts[endpoint_id]
        in_flight[host] += 1
        most[host] = max(most.get(host, 0), in_flight[host])
        probed.append(endpoint_id)
        await anyio.sleep(0.005)
        writer.mark_target(endpoint_id, TargetStatus.DONE)
        in_flight[host] -= 1

    async def go() -> None:
        with anyio.fail_after(60):
            await source.run(start)

    anyio.run(go)
    return source, probed, most, writer


def test_held_hosts_continue_slice_by_slice_while_others_are_free(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Window of one host at a time: the other hosts stay free until the held one is done.
    layout = {f"h{i}.example": 10 for i in range(4)}
    run_id, hosts = _run(store, layout)
    unlisted = {next(eid for eid, h in hosts.items() if h == "h0.example")}
    released: list[str] = []
    original = ClaimingSource._release

    def spy(self: ClaimingSource, host: str, held: Any) -> bool:
        released.append(host)
        return bool(original(self, host, held))

    monkeypatch.setattr(ClaimingSource, "_release", spy)
    source, probed, most, writer = _crawl(store, run_id, hosts, window=PER_HOST, unlisted=unlisted)
    assert writer.close()
    source.finish(completed=True)
    assert sorted(probed) == sorted(set(hosts) - unlisted)  # each listed target once
    assert max(most.values()) <= PER_HOST  # per-host lanes held across slices
    # Each host taken once and kept: 10 targets in slices of 4 are 3 slices (2 the next
    # slice of a held host), except the last host, handed back when nothing else was free.
    assert source.stats.hosts == 4
    assert source.stats.extended >= 2 * 3
    assert len(released) < source.stats.slices
    with store.engine.connect() as conn:
        statuses = Counter(conn.scalars(select(RunTargetRow.status)))
        claims = dict(conn.execute(select(RunHostRow.host, RunHostRow.claims)).all())
        host_statuses = set(conn.scalars(select(RunHostRow.status)))
    assert statuses == {"done": len(hosts) - 1, "failed": 1}  # the unlisted one: failed
    assert sum(claims.values()) == source.stats.slices
    assert host_statuses == {HostStatus.DONE.value}
    assert queue_state(store.engine, run_id).finished


def test_a_lone_host_is_handed_back_slice_by_slice(store: Store) -> None:
    # Nothing else is free: every slice is written and handed back before the next claim.
    run_id, hosts = _run(store, {"only.example": 9})
    source, probed, most, writer = _crawl(store, run_id, hosts, window=4, unlisted=set())
    assert writer.close()
    source.finish(completed=True)
    assert sorted(probed) == sorted(hosts)
    assert source.stats.extended == 0 and source.stats.slices >= 3
    assert max(most.values()) <= PER_HOST
    assert queue_state(store.engine, run_id).finished


def test_the_store_failing_a_next_slice_hands_the_host_back(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*_args: Any, **_kwargs: Any) -> None:
        raise OperationalError("extend", {}, Exception("database is locked"))

    monkeypatch.setattr(workers, "extend_claim", broken)
    run_id, hosts = _run(store, {"a.example": 6, "b.example": 6})
    source, probed, _most, writer = _crawl(store, run_id, hosts, window=PER_HOST, unlisted=set())
    assert writer.close()
    source.finish(completed=True)
    assert sorted(probed) == sorted(hosts)
    assert source.stats.extended == 0
    assert queue_state(store.engine, run_id).finished
