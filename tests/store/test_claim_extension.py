"""The next slice of a held host: taken without a hand-back while other hosts are free, checked
against the rows already taken, and handed back by those rows (both DBs)."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from probe.store.claims import (
    claim_host,
    extend_claim,
    queue_state,
    register_hosts,
    release_host,
)
from probe.store.handle import Store
from probe.store.runs import register_targets
from probe.store.tables import HostStatus, RunHostRow, TargetStatus, utcnow
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


def _mark(store: Store, run_id: int, endpoint_ids: list[int], status: TargetStatus) -> None:
    writer = StoreWriter(store.engine, run_id)
    for eid in endpoint_ids:
        writer.mark_target(eid, status)
    assert writer.close()


def _host_row(store: Store, host: str) -> RunHostRow:
    with store.session() as s:
        row = s.scalar(select(RunHostRow).where(RunHostRow.host == host))
        assert row is not None
        s.expunge(row)
        return row


def test_a_held_host_continues_slice_by_slice_while_another_host_is_free(store: Store) -> None:
    run_id, hosts = _run_with_hosts(store, {"a.example": 5, "b.example": 1})
    a_ids = [eid for eid, h in hosts.items() if h == "a.example"]
    first = claim_host(store.engine, run_id, "w1", lease=LEASE, limit=2)
    assert first is not None and first.host == "a.example" and first.last_row > 0
    lease_before = _host_row(store, "a.example").lease_until
    # The first slice is not written yet (its targets are still pending in the store): the
    # next slice starts after its rows all the same.
    second = extend_claim(
        store.engine, run_id, "a.example", "w1", after_row=first.last_row, lease=LEASE, limit=2
    )
    assert second is not None and second.host == "a.example"
    assert len(second.endpoint_ids) == 2 and second.last_row > first.last_row
    assert not set(second.endpoint_ids) & set(first.endpoint_ids)
    assert not second.reclaimed and not second.started_ids
    row = _host_row(store, "a.example")
    assert row.status == HostStatus.CLAIMED.value and row.worker == "w1" and row.claims == 2
    assert lease_before is not None and row.lease_until is not None
    assert row.lease_until >= lease_before  # renewed
    third = extend_claim(
        store.engine, run_id, "a.example", "w1", after_row=second.last_row, lease=LEASE, limit=2
    )
    assert third is not None and len(third.endpoint_ids) == 1
    # Nothing of the host after the last row taken: no slice (the host is handed back).
    assert (
        extend_claim(store.engine, run_id, "a.example", "w1", after_row=third.last_row, limit=2)
        is None
    )
    assert sorted(first.endpoint_ids + second.endpoint_ids + third.endpoint_ids) == sorted(a_ids)


def test_no_next_slice_when_no_other_host_is_free(store: Store) -> None:
    run_id, _ = _run_with_hosts(store, {"a.example": 4, "b.example": 2})
    first = claim_host(store.engine, run_id, "w1", lease=LEASE, limit=1)
    other = claim_host(store.engine, run_id, "w2", lease=LEASE, limit=1)
    assert first is not None and other is not None and first.host == "a.example"
    # b.example is held by w2: whatever w1 gives back, a worker with room could take.
    assert extend_claim(store.engine, run_id, "a.example", "w1", after_row=first.last_row) is None
    # b.example handed back, but not claimable before its "not before": still none free now.
    _mark(store, run_id, other.endpoint_ids, TargetStatus.DONE)
    later = utcnow() + timedelta(seconds=5)
    assert release_host(
        store.engine, run_id, "b.example", "w2", through_row=other.last_row, not_before=later
    )
    assert extend_claim(store.engine, run_id, "a.example", "w1", after_row=first.last_row) is None
    # Once it is claimable, w1 keeps a.example for its next slice.
    then = later + timedelta(seconds=1)
    more = extend_claim(
        store.engine, run_id, "a.example", "w1", after_row=first.last_row, limit=1, now=then
    )
    assert more is not None and len(more.endpoint_ids) == 1


def test_no_next_slice_for_a_worker_that_does_not_hold_the_host(store: Store) -> None:
    run_id, _ = _run_with_hosts(store, {"a.example": 4, "b.example": 1, "c.example": 1})
    then = utcnow()
    first = claim_host(store.engine, run_id, "dead", lease=LEASE, limit=2, now=then)
    assert first is not None and first.host == "a.example"
    assert extend_claim(store.engine, run_id, "a.example", "w2", after_row=first.last_row) is None
    # Its lease expired and w2 took the host over: the old holder gets no next slice.
    expired = then + LEASE + timedelta(seconds=1)
    taken = claim_host(store.engine, run_id, "w2", lease=LEASE, limit=2, now=expired)
    assert taken is not None and taken.host == "a.example" and taken.reclaimed
    assert (
        extend_claim(
            store.engine, run_id, "a.example", "dead", after_row=first.last_row, now=expired
        )
        is None
    )


def test_a_next_slice_names_the_targets_a_previous_holder_had_started(store: Store) -> None:
    run_id, hosts = _run_with_hosts(store, {"a.example": 4, "b.example": 1})
    then = utcnow()
    dead = claim_host(store.engine, run_id, "dead", lease=LEASE, now=then)  # all four
    assert dead is not None and len(dead.endpoint_ids) == 4
    writer = StoreWriter(store.engine, run_id)
    for eid in dead.endpoint_ids:
        writer.mark_target(eid, TargetStatus.PENDING, started_at=then)
    assert writer.close()
    expired = then + LEASE + timedelta(seconds=1)
    taken = claim_host(store.engine, run_id, "w2", lease=LEASE, limit=2, now=expired)
    assert taken is not None and taken.reclaimed
    assert taken.started_ids == taken.endpoint_ids
    more = extend_claim(
        store.engine, run_id, "a.example", "w2", after_row=taken.last_row, limit=2, now=expired
    )
    assert more is not None and more.started_ids == more.endpoint_ids
    assert sorted(taken.endpoint_ids + more.endpoint_ids) == sorted(
        eid for eid, h in hosts.items() if h == "a.example"
    )


def test_a_host_is_handed_back_once_every_row_taken_is_written(store: Store) -> None:
    run_id, _ = _run_with_hosts(store, {"a.example": 5, "b.example": 1})
    first = claim_host(store.engine, run_id, "w1", lease=LEASE, limit=2)
    assert first is not None
    second = extend_claim(
        store.engine, run_id, "a.example", "w1", after_row=first.last_row, lease=LEASE, limit=2
    )
    assert second is not None
    # The second slice is written, the first is not: the host stays with w1.
    _mark(store, run_id, second.endpoint_ids, TargetStatus.DONE)
    assert not release_host(store.engine, run_id, "a.example", "w1", through_row=second.last_row)
    _mark(store, run_id, first.endpoint_ids, TargetStatus.FAILED)
    assert release_host(store.engine, run_id, "a.example", "w1", through_row=second.last_row)
    # One target after the rows taken is left: the host is pending again, for anyone.
    row = _host_row(store, "a.example")
    assert row.status == HostStatus.PENDING.value and row.pending_targets == 1
    state = queue_state(store.engine, run_id)
    assert (state.pending, state.held) == (2, 0)
    last = claim_host(store.engine, run_id, "w2", lease=LEASE, limit=2)
    assert last is not None and last.host in {"a.example", "b.example"}
