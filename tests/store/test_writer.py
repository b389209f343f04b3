"""StoreWriter: batching, retention and retry on failure, idempotent checks, secret stripping."""

from __future__ import annotations

import threading
import time
import uuid
from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine, func, select, text

from probe.models import ExtractStep, Status
from probe.store.engine import open_store
from probe.store.handle import Store
from probe.store.tables import CheckResultRow, HttpRequestRow, RunTargetRow, TargetStatus
from probe.store.writer import StoreWriter

from .conftest import SPEC_A, SPEC_B, Outage, exchange, pg_schema_url, result


class Clock:
    """A manual monotonic clock."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def count(store: Store, model: type, **where: object) -> int:
    with store.session() as session:
        query = select(func.count()).select_from(model)
        for name, value in where.items():
            query = query.where(getattr(model, name) == value)
        return int(session.scalar(query) or 0)


def test_size_triggered_batches(store: Store, run_id: int, endpoint_id: int) -> None:
    clock = Clock()
    writer = StoreWriter(store.engine, run_id, batch_size=10, flush_interval=60, clock=clock)
    for i in range(25):
        writer.add_exchanges(endpoint_id, [exchange(i)])
    assert count(store, HttpRequestRow) == 20  # two batches of 10 written
    assert writer.buffered == 5
    assert writer.stats().flushes == 2
    assert writer.flush()
    assert count(store, HttpRequestRow) == 25
    assert writer.buffered == 0
    assert writer.stats().rows_written == 25


def test_time_triggered_flush(store: Store, run_id: int, endpoint_id: int) -> None:
    clock = Clock()
    writer = StoreWriter(store.engine, run_id, batch_size=1000, flush_interval=2.0, clock=clock)
    writer.add_exchanges(endpoint_id, [exchange(1)])
    assert count(store, HttpRequestRow) == 0
    clock.now += 2.5
    writer.add_exchanges(endpoint_id, [exchange(2)])
    assert count(store, HttpRequestRow) == 2


def test_background_thread_flushes_without_new_observations(
    store: Store, run_id: int, endpoint_id: int
) -> None:
    with StoreWriter(store.engine, run_id, batch_size=1000, flush_interval=0.1) as writer:
        writer.add_exchanges(endpoint_id, [exchange(1)])
        deadline = time.monotonic() + 5
        while count(store, HttpRequestRow) == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert count(store, HttpRequestRow) == 1


def test_failed_flush_keeps_the_buffer_and_retries(
    store: Store, run_id: int, endpoint_id: int, outage: Outage
) -> None:
    clock = Clock()
    writer = StoreWriter(store.engine, run_id, batch_size=5, flush_interval=60, clock=clock)
    outage.down = True
    writer.add_exchanges(endpoint_id, [exchange(i) for i in range(5)])  # auto flush fails
    writer.add_check_results(endpoint_id, [result(SPEC_A)])
    writer.mark_target(endpoint_id, TargetStatus.DONE)
    assert writer.failed_flushes == 1
    stats = writer.stats()
    assert stats.consecutive_failures == 1 and "simulated outage" in (stats.last_error or "")
    assert writer.buffered == 7
    # Automatic flushes back off after a failure instead of hammering a dead database.
    attempts = outage.attempts
    writer.add_exchanges(endpoint_id, [exchange(6)])
    assert outage.attempts == attempts
    # An explicit flush retries immediately; it fails again while the database is down.
    assert writer.flush() is False
    assert writer.failed_flushes == 2
    assert writer.buffered == 8

    outage.down = False
    assert writer.flush() is True
    assert writer.buffered == 0
    assert count(store, HttpRequestRow) == 6
    assert count(store, CheckResultRow) == 1
    assert count(store, RunTargetRow, status="done") == 1
    assert writer.stats().consecutive_failures == 0
    assert writer.failed_flushes == 2  # the total is kept


def test_observations_added_during_an_outage_follow_the_kept_batch(
    store: Store, run_id: int, endpoint_id: int, outage: Outage
) -> None:
    writer = StoreWriter(store.engine, run_id, batch_size=10_000, flush_interval=60)
    writer.add_check_results(endpoint_id, [result(SPEC_A, Status.FAIL)])
    outage.down = True
    assert not writer.flush()
    writer.add_check_results(endpoint_id, [result(SPEC_A, Status.PASS)])  # newer verdict
    outage.down = False
    assert writer.flush()
    with store.session() as session:
        assert session.scalars(select(CheckResultRow.status)).all() == ["pass"]


def test_buffer_is_capped_while_the_database_is_down(
    store: Store, run_id: int, endpoint_id: int, outage: Outage
) -> None:
    writer = StoreWriter(store.engine, run_id, batch_size=10_000, max_buffered=10)
    outage.down = True
    writer.add_exchanges(endpoint_id, [exchange(i) for i in range(15)])
    assert not writer.flush()
    assert writer.buffered == 10
    assert writer.stats().dropped_rows == 5
    outage.down = False
    assert writer.close()


def test_rejected_rows_do_not_wedge_the_writer(store: Store, run_id: int, endpoint_id: int) -> None:
    writer = StoreWriter(store.engine, run_id, batch_size=10_000)
    writer.add_exchanges(endpoint_id, [exchange(1), exchange(2)])
    writer.add_exchanges(987654, [exchange(3)])  # no such endpoint: foreign key violation
    assert writer.flush()
    stats = writer.stats()
    assert stats.rejected_rows == 1 and stats.buffered == 0
    assert count(store, HttpRequestRow) == 2


def test_no_duplicate_check_rows_on_rerun(store: Store, run_id: int, endpoint_id: int) -> None:
    writer = StoreWriter(store.engine, run_id)
    writer.add_check_results(endpoint_id, [result(SPEC_A, Status.FAIL), result(SPEC_B)])
    writer.add_check_results(endpoint_id, [result(SPEC_A, Status.WARN)])  # same flush
    assert writer.flush()
    writer.add_check_results(endpoint_id, [result(SPEC_A, Status.PASS), result(SPEC_B)])
    assert writer.flush()
    with store.session() as session:
        rows = session.execute(
            select(CheckResultRow.check_id, CheckResultRow.status).order_by(CheckResultRow.check_id)
        ).all()
    assert rows == [("metadata.reachable", "pass"), ("smart.config", "pass")]
    # A second run keeps its own rows.
    other_run = store.start_run("nightly")
    second = StoreWriter(store.engine, other_run)
    second.add_check_results(endpoint_id, [result(SPEC_A, Status.FAIL)])
    assert second.close()
    assert count(store, CheckResultRow) == 3


def test_check_rows_carry_severity_message_and_evidence(
    store: Store, run_id: int, endpoint_id: int
) -> None:
    writer = StoreWriter(store.engine, run_id)
    when = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    writer.add_check_results(
        endpoint_id,
        [result(SPEC_A, Status.FAIL, http_status=503, url="https://x.example/m?code=abc")],
        observed_at=when,
    )
    assert writer.close()
    with store.session() as session:
        row = session.scalars(select(CheckResultRow)).one()
    assert (row.severity, row.status) == ("required", "fail")
    assert row.observed_at == when
    assert row.evidence == {"http_status": 503, "url": "https://x.example/m?code=REDACTED"}


def test_query_string_secrets_are_stripped(store: Store, run_id: int, endpoint_id: int) -> None:
    urls = [
        "https://fhir.example.com/r4/Patient?access_token=tok123&_count=10",
        "https://fhir.example.com/auth/callback?code=authcode42&state=st8",
        "https://fhir.example.com/token?client_secret=shh&refresh_token=rt&password=pw",
        "https://fhir.example.com/r4/Binary/1?sig=s1g&signature=s2g&api_key=k3y&key=k4y",
        "https://user:pass@fhir.example.com/r4/metadata?TOKEN=upper",
    ]
    writer = StoreWriter(store.engine, run_id)
    writer.add_exchanges(endpoint_id, [exchange(i, url=u) for i, u in enumerate(urls)])
    assert writer.close()
    with store.session() as session:
        stored = session.scalars(select(HttpRequestRow.url).order_by(HttpRequestRow.id)).all()
    joined = " ".join(stored)
    for secret in ("tok123", "authcode42", "st8", "shh", "=rt", "pw", "s1g", "s2g", "k3y", "k4y"):
        assert secret not in joined
    assert "pass@" not in joined and "upper" not in joined
    assert stored[0] == "https://fhir.example.com/r4/Patient?access_token=REDACTED&_count=10"


def test_request_rows_hold_metadata_only(store: Store, run_id: int, endpoint_id: int) -> None:
    writer = StoreWriter(store.engine, run_id)
    writer.add_exchanges(endpoint_id, [exchange(7, step=ExtractStep.PAGINATION)])
    assert writer.close()
    with store.session() as session:
        row = session.scalars(select(HttpRequestRow)).one()
    assert (row.method, row.status, row.bytes, row.step) == ("GET", 200, 1007, "pagination")
    assert row.latency_ms == 19.5
    assert row.started_at == datetime(2026, 1, 1, tzinfo=UTC)
    assert row.content_type == "application/fhir+json"


def test_targets_track_progress_for_resume(store: Store, run_id: int, endpoint_id: int) -> None:
    started = datetime(2026, 2, 2, tzinfo=UTC)
    writer = StoreWriter(store.engine, run_id)
    writer.mark_target(endpoint_id, "pending", started_at=started)
    assert writer.flush()
    writer.mark_target(endpoint_id, TargetStatus.FAILED, error="timeout at https://h/x?code=1")
    assert writer.close()
    with store.session() as session:
        row = session.scalars(select(RunTargetRow)).one()
    assert row.status == "failed" and row.started_at == started and row.finished_at is not None
    assert row.error == "timeout at https://h/x?code=REDACTED"


def test_concurrent_adders(store: Store, run_id: int, endpoint_id: int) -> None:
    with StoreWriter(store.engine, run_id, batch_size=50, flush_interval=0.05) as writer:

        def work(base: int) -> None:
            for i in range(200):
                writer.add_exchanges(endpoint_id, [exchange(base + i)])

        threads = [threading.Thread(target=work, args=(n * 1000,)) for n in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert count(store, HttpRequestRow) == 800


@pytest.mark.postgres
def test_postgres_restart_between_flushes_loses_nothing(pg_admin: Engine) -> None:
    schema = f"t_{uuid.uuid4().hex[:20]}"
    with pg_admin.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        with open_store(pg_schema_url(schema)) as store:
            run_id = store.start_run("nightly")
            endpoint_id = store.ensure_endpoint("https://fhir.example.com/r4")
            writer = StoreWriter(store.engine, run_id, batch_size=10_000)
            writer.add_exchanges(endpoint_id, [exchange(1)])
            assert writer.flush()
            # The server drops the writer's pooled connection (as a restart would).
            with store.engine.connect() as conn:
                pid = conn.execute(text("SELECT pg_backend_pid()")).scalar_one()
            with pg_admin.connect() as conn:
                assert conn.execute(text("SELECT pg_terminate_backend(:p)"), {"p": pid}).scalar()
            writer.add_exchanges(endpoint_id, [exchange(2), exchange(3)])
            assert writer.flush()
            assert count(store, HttpRequestRow) == 3
    finally:
        with pg_admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))


def test_probe_s_own_wait_is_stored_beside_the_server_s_latency(store: Store) -> None:
    from datetime import UTC, datetime

    from sqlalchemy import select

    from probe.models import Exchange, ExtractStep
    from probe.store.tables import HttpRequestRow

    run_id = store.start_run("check", {})
    endpoint_id = store.ensure_endpoint("https://wait.example/fhir")
    writer = store.writer(run_id)
    sent = Exchange(
        method="GET",
        url="https://wait.example/fhir/metadata",
        step=ExtractStep.DISCOVERY,
        status=200,
        latency_ms=150.0,
        wait_ms=420.5,
        started_at=datetime.now(UTC),
    )
    writer.add_exchanges(endpoint_id, [sent])
    assert writer.close()
    with store.session() as s:
        latency, wait = s.execute(select(HttpRequestRow.latency_ms, HttpRequestRow.wait_ms)).one()
    assert (latency, wait) == (150.0, 420.5)
