"""A started StoreWriter writes on its own thread: adding observations never waits on the
database, so the crawl's event loop calls it directly."""

from __future__ import annotations

import threading
import time
from typing import Any

from sqlalchemy import event, func, select

from probe.store.handle import Store
from probe.store.tables import HttpRequestRow, RunTargetRow, TargetStatus
from probe.store.writer import StoreWriter

from .conftest import exchange


def _rows(store: Store, model: type) -> int:
    with store.session() as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def test_a_started_writer_writes_only_on_its_own_thread(
    store: Store, run_id: int, endpoint_id: int
) -> None:
    writers: set[str] = set()

    def seen(*_: Any) -> None:
        writers.add(threading.current_thread().name)

    event.listen(store.engine, "before_cursor_execute", seen)
    try:
        writer = StoreWriter(store.engine, run_id, batch_size=10, flush_interval=60).start()
        caller = threading.current_thread().name
        for i in range(35):  # past the batch size three times: flushes are due
            writer.add_exchanges(endpoint_id, [exchange(i)])
        writer.mark_target(endpoint_id, TargetStatus.DONE)
        assert caller not in writers  # the caller never ran a flush
        deadline = time.monotonic() + 30  # a bound against a hang, not a speed target
        while writer.stats().flushes == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert writer.stats().flushes >= 1
        assert writers == {f"store-writer-{run_id}"}
        assert writer.close()
    finally:
        event.remove(store.engine, "before_cursor_execute", seen)
    assert _rows(store, HttpRequestRow) == 35
    assert _rows(store, RunTargetRow) >= 1


def test_an_unstarted_writer_still_flushes_in_the_caller(
    store: Store, run_id: int, endpoint_id: int
) -> None:
    writer = StoreWriter(store.engine, run_id, batch_size=10, flush_interval=60)
    for i in range(12):
        writer.add_exchanges(endpoint_id, [exchange(i)])
    assert writer.stats().flushes == 1 and _rows(store, HttpRequestRow) == 10
    assert writer.flush() and _rows(store, HttpRequestRow) == 12
