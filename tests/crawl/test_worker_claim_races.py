"""A worker's own claims on one host, one after another: the bookkeeping of a slice handed back
never touches the claim this worker took on the same host meanwhile.

Both races left a claimed host nobody worked on, so the run waited for its lease to expire (a
whole lease, 60 s by default, at the end of a crawl) and the host was then taken over.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import anyio
import pytest

import probe.crawl.workers as workers
from probe.crawl.workers import END_POLL_SECONDS, ClaimingSource, _Held
from probe.store.claims import claim_host, queue_state, register_hosts, release_host
from probe.store.handle import Store
from probe.store.runs import register_targets
from probe.store.tables import TargetStatus

HOST = "one.example"
TARGETS = 8


@pytest.fixture
def run(store: Store) -> Iterator[tuple[int, list[int]]]:
    run_id = store.start_run("nightly", {})
    ids = [store.ensure_endpoint(f"https://{HOST}/fhir{i}") for i in range(TARGETS)]
    register_targets(store.engine, run_id, dict.fromkeys(ids, HOST))
    register_hosts(store.engine, run_id, dict.fromkeys(ids, HOST))
    yield run_id, ids


def _source(
    store: Store, run_id: int, ids: list[int], writer: Any, **overrides: Any
) -> ClaimingSource:
    options: dict[str, Any] = {
        "lease": timedelta(seconds=3),  # the race waited for this to expire
        "host_interval": 0.0,
        "slice_size": 4,
        "poll": 0.01,
        **overrides,
    }
    return ClaimingSource(
        store,
        run_id,
        {eid: object() for eid in ids},  # type: ignore[misc]  # targets are opaque here
        writer,
        window=4,
        per_host=1,
        **options,
    )


def test_a_slice_handed_back_does_not_drop_the_next_claim_on_its_host(
    store: Store, run: tuple[int, list[int]], monkeypatch: pytest.MonkeyPatch
) -> None:
    run_id, ids = run
    writer = store.writer(run_id).start()
    source = _source(store, run_id, ids, writer)
    original_release = ClaimingSource._release
    reclaimed_during_release = threading.Event()

    def slow_release(self: ClaimingSource, host: str, held: _Held) -> bool:
        released = original_release(self, host, held)
        # Hold the hand-back's coroutine until this worker has claimed the host again (its
        # run loop does so within its poll), as a loaded event loop does by chance.
        for _ in range(500):
            if self._held.get(host) not in (None, held):
                reclaimed_during_release.set()
                break
            threading.Event().wait(0.01)
        return released

    monkeypatch.setattr(ClaimingSource, "_release", slow_release)
    probed: list[int] = []
    held_while_probing: list[bool] = []

    async def start(_target: object, endpoint_id: int) -> None:
        probed.append(endpoint_id)
        await anyio.sleep(0.02)  # a probe takes a while: the next slice is still at work
        if reclaimed_during_release.is_set():  # the claim being worked on is one it holds
            held_while_probing.append(HOST in source._held)
        writer.mark_target(endpoint_id, TargetStatus.DONE)

    async def go() -> None:
        with anyio.fail_after(60):
            await source.run(start)

    anyio.run(go)
    assert writer.close()
    source.finish(completed=True)
    assert reclaimed_during_release.is_set()  # the race did happen
    assert sorted(probed) == sorted(ids)  # each target once
    assert source.stats.reclaimed == 0  # no lease had to expire
    assert held_while_probing and all(held_while_probing)  # renewed, counted in its capacity
    assert source.stats.slices >= 2
    assert not source._held


def test_a_renewal_that_saw_the_host_handed_back_leaves_the_new_claim_alone(
    store: Store, run: tuple[int, list[int]]
) -> None:
    run_id, ids = run

    async def go() -> None:
        source = _source(store, run_id, ids, writer=None)
        old = _Held(claimed=ids[:4], remaining=0, queue=workers.deque())
        new = _Held(claimed=ids[4:], remaining=4, queue=workers.deque())
        scope = anyio.CancelScope()
        new.scopes.add(scope)
        source._held[HOST] = new
        # The renewal ran for the old claim while it was being handed back: the store no
        # longer had the host as this worker's, so it came back as lost.
        source._lost_leases({HOST: old}, [HOST])
        assert not new.lost and not scope.cancel_called and source.stats.lost == 0
        # Lost for real: the claim that was renewed is the one held.
        source._lost_leases({HOST: new}, [HOST])
        assert new.lost and scope.cancel_called and source.stats.lost == 1

    anyio.run(go)


def test_a_worker_waiting_on_the_last_host_of_another_sees_the_run_end_soon(
    store: Store, run: tuple[int, list[int]]
) -> None:
    """Nothing pending, another worker finishing the last host: the waiting worker looks
    again every END_POLL_SECONDS, not every (long) poll, and ends right after that host."""
    run_id, ids = run
    other = claim_host(store.engine, run_id, "other-worker")  # takes the host's every target
    assert other is not None and sorted(other.endpoint_ids) == sorted(ids)
    writer = store.writer(run_id).start()
    source = _source(store, run_id, ids, writer, poll=30.0)  # were it used: a time-out
    handed_back: list[float] = []

    def the_other_worker_finishes() -> None:
        threading.Event().wait(0.3)
        with store.writer(run_id) as theirs:
            for eid in ids:
                theirs.mark_target(eid, TargetStatus.DONE)
        assert release_host(store.engine, run_id, HOST, "other-worker")
        handed_back.append(time.monotonic())

    async def go() -> None:
        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg:
                tg.start_soon(anyio.to_thread.run_sync, the_other_worker_finishes)
                await source.run(_never_started)

    anyio.run(go)
    ended = time.monotonic()
    assert writer.close()
    assert handed_back and ended - handed_back[0] < 10 * END_POLL_SECONDS
    assert queue_state(store.engine, run_id).finished


async def _never_started(_target: object, _endpoint_id: int) -> None:
    raise AssertionError("every target belongs to the other worker")
