"""Run lifecycle, resume bookkeeping, stale-run cleanup and the cross-process run lock."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, insert, select, update

from probe.store.engine import create_store_engine
from probe.store.errors import RunLockHeld, StoreError
from probe.store.handle import Store
from probe.store.locks import acquire_run_lock
from probe.store.runs import (
    latest_resumable_run,
    register_targets,
    resume_run,
    this_host,
    unfinished_targets,
)
from probe.store.tables import ProbeRunRow, RunLockRow
from probe.store.writer import StoreWriter


def _run_row(store: Store, run_id: int) -> ProbeRunRow:
    with store.session() as session:
        row = session.get(ProbeRunRow, run_id)
        assert row is not None
        return row


def test_start_and_finish_run(store: Store) -> None:
    run_id = store.start_run(
        "nightly", {"concurrency": 8, "client_secret": "x", "callback": "https://h/cb?code=1"}
    )
    row = _run_row(store, run_id)
    assert (row.kind, row.status, row.host, row.pid) == (
        "nightly",
        "running",
        this_host(),
        os.getpid(),
    )
    assert row.finished_at is None and row.probe_version
    assert row.config == {
        "concurrency": 8,
        "client_secret": "REDACTED",
        "callback": "https://h/cb?code=REDACTED",
    }
    store.finish_run(run_id, "completed", note="all good")
    row = _run_row(store, run_id)
    assert row.status == "completed" and row.finished_at is not None and row.note == "all good"


def test_finish_run_validates(store: Store) -> None:
    run_id = store.start_run("check")
    with pytest.raises(ValueError, match="running"):
        store.finish_run(run_id, "running")
    with pytest.raises(StoreError, match="no run with id 424242"):
        store.finish_run(424242, "failed")
    with pytest.raises(ValueError):
        store.start_run("weekly")


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_mark_stale_runs_interrupted(store: Store) -> None:
    alive = store.start_run("nightly")
    dead = store.start_run("nightly")
    far_old = store.start_run("sync")
    far_recent = store.start_run("sync")
    done = store.start_run("check")
    store.finish_run(done, "completed")
    long_ago = datetime.now(UTC) - timedelta(days=3)
    with store.session() as session:
        session.execute(update(ProbeRunRow).where(ProbeRunRow.id == dead).values(pid=_dead_pid()))
        session.execute(
            update(ProbeRunRow)
            .where(ProbeRunRow.id.in_([far_old, far_recent]))
            .values(host="elsewhere.example", pid=os.getpid())
        )
        session.execute(
            update(ProbeRunRow).where(ProbeRunRow.id == far_old).values(started_at=long_ago)
        )
    assert sorted(store.mark_stale_runs_interrupted(max_age=timedelta(hours=12))) == sorted(
        [dead, far_old]
    )
    statuses = {r: _run_row(store, r).status for r in (alive, dead, far_old, far_recent, done)}
    assert statuses == {
        alive: "running",
        dead: "interrupted",
        far_old: "interrupted",
        far_recent: "running",
        done: "completed",
    }
    assert _run_row(store, dead).finished_at is not None
    assert store.mark_stale_runs_interrupted() == []  # idempotent


def test_resume_an_interrupted_run(store: Store, endpoint_id: int) -> None:
    other = store.ensure_endpoint("https://b.example/fhir")
    third = store.ensure_endpoint("https://c.example/fhir")
    run_id = store.start_run("nightly")
    register_targets(store.engine, run_id, [endpoint_id, other, third, other])
    writer = StoreWriter(store.engine, run_id)
    writer.mark_target(endpoint_id, "done")
    writer.mark_target(other, "failed", error="boom")
    assert writer.close()
    store.finish_run(run_id, "interrupted")

    assert latest_resumable_run(store.engine, "nightly") == run_id
    assert latest_resumable_run(store.engine, "sync") is None
    assert unfinished_targets(store.engine, run_id) == [other, third]
    register_targets(store.engine, run_id, [endpoint_id])  # re-registering keeps 'done'
    assert unfinished_targets(store.engine, run_id) == [other, third]
    resume_run(store.engine, run_id)
    assert _run_row(store, run_id).status == "running"
    store.finish_run(run_id, "completed")
    with pytest.raises(StoreError, match="already completed"):
        resume_run(store.engine, run_id)


# -- run lock ---------------------------------------------------------------------------------


@pytest.fixture
def two_engines(store: Store, store_url: str) -> Iterator[list[Engine]]:
    """Two independent engines (connection pools) on the same migrated database."""
    engines = [create_store_engine(store_url), create_store_engine(store_url)]
    yield engines
    for engine in engines:
        engine.dispose()


def test_run_lock_is_exclusive_across_engines(two_engines: list[Engine]) -> None:
    first, second = two_engines
    with acquire_run_lock(first, "nightly") as lock:
        assert lock.holder.startswith(f"{this_host()}:{os.getpid()}:")
        with pytest.raises(RunLockHeld) as info, acquire_run_lock(second, "nightly"):
            pytest.fail("second holder must not get the lock")
        assert info.value.holder == lock.holder
        assert "another run is in progress" in str(info.value)
        with acquire_run_lock(second, "prerelease"):  # other names are independent
            pass
    with acquire_run_lock(second, "nightly"):  # released on exit
        pass


def test_run_lock_is_released_when_the_block_raises(two_engines: list[Engine]) -> None:
    first, second = two_engines
    with pytest.raises(RuntimeError), acquire_run_lock(first, "nightly"):
        raise RuntimeError("crawl crashed")
    with acquire_run_lock(second, "nightly"):
        pass


def _plant_lock(engine: Engine, holder: str, heartbeat: datetime) -> None:
    with engine.begin() as conn:
        conn.execute(
            insert(RunLockRow).values(
                name="nightly", holder=holder, acquired_at=heartbeat, heartbeat_at=heartbeat
            )
        )


def test_stale_lock_is_taken_over(two_engines: list[Engine]) -> None:
    first, second = two_engines
    _plant_lock(first, "other-host:123:abcd", datetime.now(UTC) - timedelta(hours=1))
    stale_after = timedelta(minutes=10)
    with (
        acquire_run_lock(second, "nightly", stale_after=stale_after) as lock,
        second.connect() as c,
    ):
        assert c.scalar(select(RunLockRow.holder)) == lock.holder


def test_fresh_lock_of_another_host_is_respected(two_engines: list[Engine]) -> None:
    first, second = two_engines
    _plant_lock(first, "other-host:123:abcd", datetime.now(UTC))
    with (
        pytest.raises(RunLockHeld, match="other-host:123:abcd"),
        acquire_run_lock(second, "nightly"),
    ):
        pass


def test_lock_of_a_dead_local_process_is_taken_over(two_engines: list[Engine]) -> None:
    first, second = two_engines
    _plant_lock(first, f"{this_host()}:{_dead_pid()}:abcd", datetime.now(UTC))
    with acquire_run_lock(second, "nightly"):
        pass


def test_heartbeat_refreshes_and_detects_takeover(two_engines: list[Engine]) -> None:
    first, second = two_engines
    with acquire_run_lock(first, "nightly", heartbeat_interval=3600) as lock:
        old = datetime.now(UTC) - timedelta(minutes=5)
        with first.begin() as conn:
            conn.execute(update(RunLockRow).values(heartbeat_at=old))
        assert lock.heartbeat()
        with second.connect() as conn:
            assert conn.scalar(select(RunLockRow.heartbeat_at)) > old
        with second.begin() as conn:
            conn.execute(update(RunLockRow).values(holder="thief:1:ffff"))
        assert not lock.heartbeat()
        assert lock.lost
    with second.connect() as conn:  # release left the thief's row alone
        assert conn.scalar(select(RunLockRow.holder)) == "thief:1:ffff"


def test_racing_acquirers_only_one_wins(store_url: str, store: Store) -> None:
    engines = [create_store_engine(store_url) for _ in range(6)]
    barrier = threading.Barrier(len(engines))
    release = threading.Event()
    outcomes: list[str] = []
    lock = threading.Lock()

    def contend(engine: Engine) -> None:
        barrier.wait()
        try:
            with acquire_run_lock(engine, "nightly"):
                with lock:
                    outcomes.append("won")
                release.wait(timeout=30)
        except RunLockHeld:
            with lock:
                outcomes.append("held")

    threads = [threading.Thread(target=contend, args=(e,)) for e in engines]
    for t in threads:
        t.start()
    deadline = datetime.now(UTC) + timedelta(seconds=30)
    # Every thread has tried (the winner still holds the lock) before anyone lets go.
    while len(outcomes) < len(engines) and datetime.now(UTC) < deadline:
        threading.Event().wait(0.05)
    release.set()
    for t in threads:
        t.join()
    for engine in engines:
        engine.dispose()
    assert sorted(outcomes) == ["held"] * (len(engines) - 1) + ["won"]
