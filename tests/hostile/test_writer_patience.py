"""The store writer at the end of a run during an outage: it waits (a bounded time) and writes."""

from __future__ import annotations

import threading

from sqlalchemy import func, select

from probe.store.handle import Store
from probe.store.tables import CheckResultRow
from tests.store.conftest import Outage, result


def test_close_waits_for_the_database_within_its_patience(
    store: Store, run_id: int, endpoint_id: int, outage: Outage
) -> None:
    writer = store.writer(run_id)
    outage.down = True
    writer.add_check_results(endpoint_id, [result()])
    threading.Timer(1.0, lambda: setattr(outage, "down", False)).start()
    assert writer.close(retry_for=20)
    with store.session() as s:
        assert s.scalar(select(func.count()).select_from(CheckResultRow)) == 1


def test_close_gives_up_after_its_patience(
    store: Store, run_id: int, endpoint_id: int, outage: Outage
) -> None:
    writer = store.writer(run_id)
    outage.down = True
    writer.add_check_results(endpoint_id, [result()])
    assert not writer.close(retry_for=1.0)
    assert writer.stats().buffered == 1  # kept, not dropped
