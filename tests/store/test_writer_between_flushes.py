"""A worker's own store writes wait for its writer's flush on a mutex on SQLite (one connection
writes at a time: SQLite's busy loop would wake every few ms), and hold nothing on PostgreSQL."""

from __future__ import annotations

import threading

from probe.store.handle import Store
from probe.store.tables import TargetStatus


def test_a_flush_waits_while_the_worker_writes_itself_on_sqlite(store: Store) -> None:
    run_id = store.start_run("nightly", {})
    eid = store.ensure_endpoint("https://a.example/fhir")
    writer = store.writer(run_id)
    writer.mark_target(eid, TargetStatus.DONE)
    flushed = threading.Event()

    def flush() -> None:
        writer.flush()
        flushed.set()

    sqlite = store.engine.dialect.name == "sqlite"
    with writer.between_flushes():
        thread = threading.Thread(target=flush)
        thread.start()
        # On SQLite the flush waits for the worker's write; elsewhere it goes ahead.
        assert flushed.wait(0.3) is not sqlite
    thread.join(10)
    assert flushed.is_set()
    assert writer.close()
