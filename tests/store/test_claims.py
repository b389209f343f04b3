"""A run shared by workers: host claims, leases, takeover after expiry, completion (both DBs)."""

from __future__ import annotations

import threading
from datetime import timedelta

from sqlalchemy import select

from probe.store.claims import (
    claim_host,
    complete_if_finished,
    queue_state,
    register_hosts,
    release_host,
    renew_leases,
    reopen_targets,
    run_tally,
)
from probe.store.handle import Store
from probe.store.runs import register_targets
from probe.store.tables import ProbeRunRow, RunHostRow, RunTargetRow, TargetStatus, utcnow
from probe.store.writer import StoreWriter

LEASE = timedelta(seconds=30)


def _run_with_hosts(store: Store, layout: dict[str, int]) -> tuple[int, dict[int, str]]:
    run_id = store.start_run("nightly", {})
    hosts: dict[int, str] = {}
    for host, count in layout.items():
        for i in range(count):
            hosts[store.ensure_endpoint(f"https://{host}/fhir{i}")] = host
    register_targets(store.engine, run_id, hosts)
    register_hosts(store.engine, run_id, hosts)
    return run_id, hosts


def _finish(store: Store, run_id: int, endpoint_ids: list[int], status: TargetStatus) -> None:
    writer = StoreWriter(store.engine, run_id)
    for eid in endpoint_ids:
        writer.mark_target(eid, status)
    assert writer.close()


def test_each_host_is_claimed_once_with_its_targets(store: Store) -> None:
    run_id, hosts = _run_with_hosts(store, {"a.example": 3, "b.example": 2})
    first = claim_host(store.engine, run_id, "w1", lease=LEASE)
    second = claim_host(store.engine, run_id, "w2", lease=LEASE)
    assert first is not None and second is not None
    assert {first.host, second.host} == {"a.example", "b.example"}
    claimed = first.endpoint_ids + second.endpoint_ids
    assert sorted(claimed) == sorted(hosts)
    assert not first.reclaimed and not first.started_ids
    assert claim_host(store.engine, run_id, "w3", lease=LEASE) is None
    state = queue_state(store.engine, run_id)
    assert (state.pending, state.held, state.done) == (0, 2, 0)
    assert not state.finished


def test_register_is_idempotent_and_records_each_targets_host(store: Store) -> None:
    run_id, hosts = _run_with_hosts(store, {"a.example": 2})
    register_hosts(store.engine, run_id, hosts)
    with store.engine.connect() as conn:
        stored = dict(conn.execute(select(RunTargetRow.endpoint_id, RunTargetRow.host)).all())
    assert stored == hosts
    assert queue_state(store.engine, run_id).pending == 1


def test_expired_lease_is_taken_over_with_the_unfinished_targets(store: Store) -> None:
    run_id, _ = _run_with_hosts(store, {"a.example": 3})
    then = utcnow()
    claim = claim_host(store.engine, run_id, "dead", lease=LEASE, now=then)
    assert claim is not None
    done, started, untouched = claim.endpoint_ids
    writer = StoreWriter(store.engine, run_id)
    writer.mark_target(done, TargetStatus.DONE)
    writer.mark_target(started, TargetStatus.PENDING, started_at=then)
    assert writer.close()
    # Still leased: nobody else may take it.
    assert claim_host(store.engine, run_id, "alive", lease=LEASE, now=then) is None
    later = then + LEASE + timedelta(seconds=1)
    taken = claim_host(store.engine, run_id, "alive", lease=LEASE, now=later)
    assert taken is not None and taken.reclaimed
    assert taken.endpoint_ids == [started, untouched]
    assert taken.started_ids == [started]
    # The dead worker's renewal now reports the host lost.
    assert renew_leases(store.engine, run_id, "dead", ["a.example"], lease=LEASE) == ["a.example"]
    assert renew_leases(store.engine, run_id, "alive", ["a.example"], lease=LEASE) == []


def test_renewal_keeps_a_live_worker_s_host(store: Store) -> None:
    run_id, _ = _run_with_hosts(store, {"a.example": 1})
    then = utcnow()
    assert claim_host(store.engine, run_id, "w1", lease=LEASE, now=then) is not None
    assert renew_leases(store.engine, run_id, "w1", ["a.example"], lease=LEASE * 4) == []
    later = then + LEASE + timedelta(seconds=1)
    assert claim_host(store.engine, run_id, "w2", lease=LEASE, now=later) is None


def test_release_waits_for_the_last_target_and_then_completes_the_run(store: Store) -> None:
    run_id, hosts = _run_with_hosts(store, {"a.example": 2, "b.example": 1})
    claims = [claim_host(store.engine, run_id, "w1", lease=LEASE) for _ in range(2)]
    assert all(claims)
    a = next(c for c in claims if c is not None and c.host == "a.example")
    assert a is not None
    _finish(store, run_id, a.endpoint_ids[:1], TargetStatus.DONE)
    assert not release_host(store.engine, run_id, "a.example", "w1")  # one still pending
    assert not release_host(store.engine, run_id, "a.example", "w2")  # not its holder
    _finish(store, run_id, a.endpoint_ids[1:], TargetStatus.FAILED)
    assert not release_host(store.engine, run_id, "a.example", "w2")
    assert release_host(store.engine, run_id, "a.example", "w1")
    assert not complete_if_finished(store.engine, run_id)  # b.example is still held
    b_ids = [eid for eid, host in hosts.items() if host == "b.example"]
    _finish(store, run_id, b_ids, TargetStatus.DONE)
    assert release_host(store.engine, run_id, "b.example", "w1")
    assert queue_state(store.engine, run_id).finished
    assert complete_if_finished(store.engine, run_id, note="2 workers")
    assert not complete_if_finished(store.engine, run_id)  # exactly one caller wins
    with store.session() as session:
        row = session.get(ProbeRunRow, run_id)
        assert row is not None and row.status == "completed" and row.note == "2 workers"


def test_a_host_with_nothing_left_is_closed_on_the_way(store: Store) -> None:
    run_id, hosts = _run_with_hosts(store, {"a.example": 1, "b.example": 1})
    a_ids = [eid for eid, host in hosts.items() if host == "a.example"]
    _finish(store, run_id, a_ids, TargetStatus.DONE)  # e.g. done before a crash
    claim = claim_host(store.engine, run_id, "w1", lease=LEASE)
    assert claim is not None and claim.host == "b.example"
    assert queue_state(store.engine, run_id).done == 1


def test_the_host_with_the_most_targets_left_is_claimed_first(store: Store) -> None:
    # Listed small first: the largest host must not wait behind it (it bounds the run's time).
    run_id, _ = _run_with_hosts(store, {"small.example": 2, "big.example": 5, "mid.example": 3})
    first = claim_host(store.engine, run_id, "w1", lease=LEASE, limit=2)
    assert first is not None and first.host == "big.example" and len(first.endpoint_ids) == 2
    _finish(store, run_id, first.endpoint_ids, TargetStatus.DONE)
    assert release_host(store.engine, run_id, "big.example", "w1", claimed=first.endpoint_ids)
    with store.engine.connect() as conn:
        left = dict(conn.execute(select(RunHostRow.host, RunHostRow.pending_targets)).all())
    assert left == {"small.example": 2, "big.example": 3, "mid.example": 3}
    # Equal work left: listing order (big before mid), then the smaller host.
    order = [claim_host(store.engine, run_id, f"w{i}", lease=LEASE, limit=2) for i in (2, 3, 4)]
    assert [c.host for c in order if c is not None] == [
        "big.example",
        "mid.example",
        "small.example",
    ]


def test_an_expired_lease_is_taken_over_before_a_larger_pending_host(store: Store) -> None:
    run_id, _ = _run_with_hosts(store, {"small.example": 1, "big.example": 4})
    then = utcnow()
    dead = claim_host(store.engine, run_id, "dead", lease=LEASE, now=then)
    assert dead is not None and dead.host == "big.example"
    assert release_host(store.engine, run_id, "big.example", "dead") is False  # still pending
    later = then + LEASE + timedelta(seconds=1)
    taken = claim_host(store.engine, run_id, "alive", lease=LEASE, now=later)
    assert taken is not None and taken.host == "big.example" and taken.reclaimed


def test_reopened_targets_are_counted_again_on_their_hosts(store: Store) -> None:
    run_id, hosts = _run_with_hosts(store, {"a.example": 3, "b.example": 1})
    for _ in range(2):
        claim = claim_host(store.engine, run_id, "w1", lease=LEASE)
        assert claim is not None
        _finish(store, run_id, claim.endpoint_ids, TargetStatus.FAILED)
        assert release_host(store.engine, run_id, claim.host, "w1", claimed=claim.endpoint_ids)
    a_ids = sorted(eid for eid, host in hosts.items() if host == "a.example")
    reopen_targets(store.engine, run_id, a_ids[:2])  # a resume redoes failed targets
    with store.engine.connect() as conn:
        rows = conn.execute(
            select(RunHostRow.host, RunHostRow.status, RunHostRow.pending_targets)
        ).all()
    assert sorted(tuple(r) for r in rows) == [("a.example", "pending", 2), ("b.example", "done", 0)]


def test_concurrent_claimers_never_share_a_host(store: Store) -> None:
    run_id, _ = _run_with_hosts(store, {f"h{i}.example": 2 for i in range(24)})
    taken: dict[str, list[str]] = {}
    errors: list[BaseException] = []

    def claimer(name: str) -> None:
        try:
            while (claim := claim_host(store.engine, run_id, name, lease=LEASE)) is not None:
                taken.setdefault(claim.host, []).append(name)
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=claimer, args=(f"w{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(taken) == 24
    assert all(len(names) == 1 for names in taken.values())


def test_tally_counts_targets_and_each_worker_s_hosts(store: Store) -> None:
    run_id, _ = _run_with_hosts(store, {"a.example": 2, "b.example": 1})
    first = claim_host(store.engine, run_id, "w1", lease=LEASE)
    assert first is not None
    _finish(store, run_id, first.endpoint_ids, TargetStatus.DONE)
    assert claim_host(store.engine, run_id, "w2", lease=LEASE) is not None
    tally = run_tally(store.engine, run_id)
    assert tally.targets == {
        "done": len(first.endpoint_ids),
        "pending": 3 - len(first.endpoint_ids),
    }
    assert tally.hosts_by_worker == {"w1": 1, "w2": 1}


def test_a_claim_takes_a_slice_and_the_rest_of_the_host_waits_its_not_before(
    store: Store,
) -> None:
    run_id, hosts = _run_with_hosts(store, {"a.example": 5, "b.example": 1})
    first = claim_host(store.engine, run_id, "w1", lease=LEASE, limit=2)
    assert first is not None and first.host == "a.example" and len(first.endpoint_ids) == 2
    # The slice is not written yet: the host stays with w1.
    assert not release_host(store.engine, run_id, "a.example", "w1", claimed=first.endpoint_ids)
    _finish(store, run_id, first.endpoint_ids, TargetStatus.DONE)
    later = utcnow() + timedelta(seconds=5)
    assert release_host(
        store.engine, run_id, "a.example", "w1", claimed=first.endpoint_ids, not_before=later
    )
    # Pending again with three targets left, but nobody may start on it before `later`.
    state = queue_state(store.engine, run_id)
    assert (state.pending, state.held, state.done) == (2, 0, 0)
    assert state.next_free is not None and abs((state.next_free - later).total_seconds()) < 1
    other = claim_host(store.engine, run_id, "w2", lease=LEASE, limit=2)
    assert other is not None and other.host == "b.example"
    assert claim_host(store.engine, run_id, "w2", lease=LEASE, limit=2) is None
    then = later + timedelta(seconds=1)
    second = claim_host(store.engine, run_id, "w2", lease=LEASE, limit=2, now=then)
    assert second is not None and second.host == "a.example"
    assert not set(second.endpoint_ids) & set(first.endpoint_ids)
    assert not second.reclaimed and not second.started_ids
    _finish(store, run_id, second.endpoint_ids, TargetStatus.DONE)
    assert release_host(store.engine, run_id, "a.example", "w2", claimed=second.endpoint_ids)
    third = claim_host(store.engine, run_id, "w1", lease=LEASE, limit=2, now=then)
    assert third is not None and len(third.endpoint_ids) == 1
    _finish(store, run_id, third.endpoint_ids + other.endpoint_ids, TargetStatus.DONE)
    assert release_host(store.engine, run_id, "a.example", "w1", claimed=third.endpoint_ids)
    assert release_host(store.engine, run_id, "b.example", "w2", claimed=other.endpoint_ids)
    every = first.endpoint_ids + second.endpoint_ids + third.endpoint_ids + other.endpoint_ids
    assert sorted(every) == sorted(hosts)
    assert queue_state(store.engine, run_id).finished
    assert complete_if_finished(store.engine, run_id)
    # Each worker that held a.example last is named; a.example was claimed three times.
    with store.engine.connect() as conn:
        claims = conn.scalar(select(RunHostRow.claims).where(RunHostRow.host == "a.example"))
    assert claims == 3


def test_the_pace_a_host_was_handed_back_at_comes_with_its_next_claim(store: Store) -> None:
    run_id, _ = _run_with_hosts(store, {"a.example": 3})
    first = claim_host(store.engine, run_id, "w1", lease=LEASE, limit=1)
    assert first is not None and first.pace_s is None  # never throttled: the configured rate
    _finish(store, run_id, first.endpoint_ids, TargetStatus.DONE)
    assert release_host(
        store.engine, run_id, "a.example", "w1", claimed=first.endpoint_ids, pace_s=0.8
    )
    second = claim_host(store.engine, run_id, "w2", lease=LEASE, limit=1)
    assert second is not None and second.pace_s == 0.8


def test_reading_the_queue_does_not_wait_for_another_process_s_write(store: Store) -> None:
    """SQLite: a writer holding the lock (a flush, a claim) does not hold up queue reads."""
    import time

    import pytest

    if store.engine.dialect.name != "sqlite":
        pytest.skip("PostgreSQL readers never wait for writers")
    run_id, _ = _run_with_hosts(store, {"a.example": 2})
    with store.engine.begin() as writing:  # BEGIN IMMEDIATE: the write lock is held
        writing.execute(select(RunHostRow.id)).all()
        started = time.monotonic()
        state = queue_state(store.engine, run_id)
        waited = time.monotonic() - started
    assert state.pending == 1
    assert waited < 2.0  # not the busy timeout: the reader did not ask for the write lock


def test_slices_shrink_as_the_run_nears_its_end(store: Store) -> None:
    # 4 hosts x 20 targets; each worker holds 2 hosts at once, slices of 8 at most, 2 at least.
    run_id, _ = _run_with_hosts(store, {f"h{i}.example": 20 for i in range(4)})

    def claim(worker: str) -> list[int]:
        got = claim_host(
            store.engine, run_id, worker, lease=LEASE, limit=8, hosts_per_worker=2, least=2
        )
        assert got is not None
        return got.endpoint_ids

    # 80 pending, w1 alone: 80 / (1 worker x 2 hosts) = 40, capped at the limit.
    first = claim("w1")
    assert len(first) == 8
    # w1 holds a host now: 80 pending over 2 workers x 2 hosts = 20 -> still 8.
    second = claim("w2")
    assert len(second) == 8
    _finish(store, run_id, first + second, TargetStatus.DONE)
    # Leave 20 pending in the run (the last host, which nobody holds).
    with store.engine.connect() as conn:
        pending = conn.scalars(
            select(RunTargetRow.endpoint_id)
            .where(RunTargetRow.run_id == run_id, RunTargetRow.status == "pending")
            .order_by(RunTargetRow.endpoint_id)
        ).all()
    _finish(store, run_id, list(pending[:-20]), TargetStatus.DONE)
    # w1 and w2 still hold their hosts: 20 pending over 3 workers x 2 hosts: ceil(20 / 6) = 4.
    third = claim("w3")
    assert len(third) == 4
    _finish(store, run_id, third, TargetStatus.DONE)
    assert release_host(store.engine, run_id, "h3.example", "w3", claimed=third)
    # Then ever smaller slices, never under the floor of 2 but for the host's last target.
    sizes = []
    while (
        got := claim_host(
            store.engine, run_id, "w4", lease=LEASE, limit=8, hosts_per_worker=2, least=2
        )
    ) is not None:
        sizes.append(len(got.endpoint_ids))
        _finish(store, run_id, got.endpoint_ids, TargetStatus.DONE)
        assert release_host(store.engine, run_id, got.host, "w4", claimed=got.endpoint_ids)
    # 16, 13, 10, 8, 6, 4, 2 pending over (w1, w2 and w4) x 2 hosts = 6 slots.
    assert sizes == [3, 3, 2, 2, 2, 2, 2], sizes
    assert queue_state(store.engine, run_id).pending == 0


def test_without_hosts_per_worker_a_slice_is_the_limit(store: Store) -> None:
    run_id, _ = _run_with_hosts(store, {"a.example": 6})
    got = claim_host(store.engine, run_id, "w1", lease=LEASE, limit=5)
    assert got is not None and len(got.endpoint_ids) == 5
