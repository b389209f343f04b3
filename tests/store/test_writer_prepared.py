"""On SQLite the writer converts a batch before its transaction (issue 17): what it stores is
exactly what the plain SQLAlchemy path stored, byte for byte, and a row the database refuses
is still set aside alone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import column, event, inspect, select, text
from sqlalchemy import table as table_

from probe.models import CheckResult, CheckSpec, Exchange, ExtractStep, Severity, Status
from probe.store.engine import open_store
from probe.store.handle import Store
from probe.store.writer import _SQLITE_MAX_VARIABLES, StoreWriter, _chunk_sizes

SPECS = [
    CheckSpec(f"suite.check_{i}", f"Check {i}", Severity.RECOMMENDED, "spec") for i in range(3)
]
WHEN = datetime(2026, 12, 7, 3, 0, tzinfo=UTC)


def _observe(writer: StoreWriter, endpoints: list[int]) -> None:
    for n, endpoint_id in enumerate(endpoints):
        writer.mark_target(endpoint_id, "pending", started_at=WHEN + timedelta(seconds=n))
        writer.add_exchanges(
            endpoint_id,
            [
                Exchange(
                    method="get",
                    url=f"https://h{n}.example/r4/metadata?_count=5&access_token=zz",
                    step=ExtractStep.DISCOVERY,
                    status=200 if n % 2 else None,
                    latency_ms=12.5,
                    size_bytes=100 + n,
                    content_type="application/fhir+json",
                    error_class=None if n % 2 else "ConnectTimeout",
                    started_at=WHEN,
                )
            ],
        )
        writer.add_check_results(
            endpoint_id,
            [
                CheckResult(
                    spec,
                    Status.PASS if i % 2 else Status.WARN,
                    f"message {i} \u00e9 \U0001f600",
                    {"url": f"https://h{n}.example/?code=x", "n": i, "f": 1.5, "nested": [None]},
                )
                for i, spec in enumerate(SPECS)
            ],
            observed_at=WHEN,
        )
        body = {"resourceType": "CapabilityStatement", "n": n % 2, "text": "line\nbreak"}
        writer.add_document(endpoint_id, "capability", body, seen_at=WHEN)
        writer.add_sync_job(
            endpoint_id,
            "member",
            created_at=WHEN,
            completed_at=None if n % 2 else WHEN,
            resources_by_type={"Patient": 1},
            details={"pages": [1, 2]} if n % 2 else None,
        )
        writer.mark_target(endpoint_id, "done")


def _contents(store: Store) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of the observation tables, as SQLite holds them (raw text, no conversion)."""
    tables = [
        "http_requests",
        "check_results",
        "documents",
        "document_sightings",
        "sync_jobs",
        "run_targets",
    ]
    out: dict[str, list[tuple[Any, ...]]] = {}
    with store.engine.connect() as conn:
        for table in tables:
            columns = inspect(conn).get_columns(table)
            # ids follow insertion order; a target's finished_at is the clock's
            names = [c["name"] for c in columns if c["name"] not in ("id", "finished_at")]
            rows = conn.execute(select(*(column(n) for n in names)).select_from(table_(table)))
            out[table] = sorted((tuple(r) for r in rows), key=repr)
    return out


def _crawl(path: Path, *, prepared: bool, endpoints_n: int = 5) -> dict[str, list[tuple[Any, ...]]]:
    store = open_store(f"sqlite:///{path}")
    try:
        run_id = store.start_run("nightly", {})
        endpoints = [store.ensure_endpoint(f"https://h{n}.example/r4") for n in range(endpoints_n)]
        writer = StoreWriter(store.engine, run_id)
        used: list[bool] = []
        prepare = writer._prepare

        def counted(batch: Any) -> Any:
            out = prepare(batch) if prepared else None
            used.append(out is not None)
            return out

        writer._prepare = counted  # type: ignore[method-assign]
        half = len(endpoints) // 2 + 1
        _observe(writer, endpoints[:half])
        assert writer.flush()
        _observe(writer, endpoints[half - 1 :])  # re-adds an endpoint's checks: upserts replace
        assert writer.flush()
        assert writer.stats().rejected_rows == 0
        assert used == [prepared, prepared]
        return _contents(store)
    finally:
        store.close()


def test_prepared_batches_store_exactly_what_the_plain_path_stored(tmp_path: Path) -> None:
    plain = _crawl(tmp_path / "plain.db", prepared=False)
    fast = _crawl(tmp_path / "fast.db", prepared=True)
    assert all(plain[table] for table in plain)
    assert fast == plain


@pytest.mark.parametrize("endpoints_n", [1300])
def test_batches_past_one_statement_store_what_the_plain_path_stored(
    tmp_path: Path, endpoints_n: int
) -> None:
    """Hundreds of rows of each kind per flush: several multi-row statements of each size."""
    plain = _crawl(tmp_path / "plain.db", prepared=False, endpoints_n=endpoints_n)
    fast = _crawl(tmp_path / "fast.db", prepared=True, endpoints_n=endpoints_n)
    assert len(plain["check_results"]) == endpoints_n * len(SPECS)
    assert fast == plain


@pytest.mark.parametrize("rows", [0, 1, 2, 3, 511, 512, 513, 1300, 5000])
@pytest.mark.parametrize("columns", [1, 5, 12, 40, 100])
def test_chunk_sizes_cover_every_row_within_the_variable_limit(rows: int, columns: int) -> None:
    sizes = _chunk_sizes(rows, columns)
    assert sum(sizes) == rows
    assert all(size & (size - 1) == 0 for size in sizes)  # powers of two: few statement texts
    assert all(size * columns <= _SQLITE_MAX_VARIABLES for size in sizes)
    assert sizes == sorted(sizes, reverse=True)
    assert len(sizes) <= rows // max(sizes, default=1) + 10


def test_a_flush_steps_a_few_statements_not_one_per_row(tmp_path: Path) -> None:
    """The flush's thread takes the GIL back once per statement it steps: thousands of rows
    go in a handful of statements, none of them an executemany."""
    store = open_store(f"sqlite:///{tmp_path / 'probe.db'}")
    try:
        run_id = store.start_run("nightly", {})
        endpoints = [store.ensure_endpoint(f"https://h{n}.example/r4") for n in range(400)]
        writer = StoreWriter(store.engine, run_id)
        _observe(writer, endpoints)
        rows = len(writer._buffer)
        executed: list[tuple[str, bool]] = []

        def count(
            conn: Any, cursor: Any, statement: str, params: Any, context: Any, many: bool
        ) -> None:
            executed.append((statement.split(None, 1)[0].upper(), many))

        event.listen(store.engine, "before_cursor_execute", count)
        try:
            assert writer.flush()
        finally:
            event.remove(store.engine, "before_cursor_execute", count)
        inserts = [many for verb, many in executed if verb == "INSERT"]
        assert rows > 2000 and writer.stats().rejected_rows == 0
        assert not any(inserts), "an executemany steps once per row"
        assert len(inserts) <= 6 * 6  # six kinds of rows, a few statement sizes each
        assert _contents(store)["document_sightings"]
    finally:
        store.close()


def test_a_refused_row_is_still_set_aside_alone(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'probe.db'}")
    try:
        run_id = store.start_run("nightly", {})
        good = store.ensure_endpoint("https://good.example/r4")
        writer = StoreWriter(store.engine, run_id)
        _observe(writer, [good, 987654])  # an unknown endpoint id: a foreign key violation
        assert writer._prepare(writer._buffer) is not None  # the prepared path is the one used
        assert writer.flush()
        stats = writer.stats()
        assert stats.rejected_rows > 0 and 987654 in writer.rejected_targets()
        with store.engine.connect() as conn:
            kept = conn.execute(
                text("SELECT count(*) FROM check_results WHERE endpoint_id = :e"), {"e": good}
            ).scalar_one()
        assert kept == len(SPECS)
    finally:
        store.close()


@pytest.mark.parametrize("value", [float("nan"), object()])
def test_a_value_the_types_cannot_convert_takes_the_plain_path(
    tmp_path: Path, value: object
) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'probe.db'}")
    try:
        run_id = store.start_run("nightly", {})
        endpoint_id = store.ensure_endpoint("https://h.example/r4")
        writer = StoreWriter(store.engine, run_id)
        writer.add_exchanges(endpoint_id, [])
        writer._buffer.sync_jobs.append(  # bypassing add_sync_job's own cleaning on purpose
            {
                "run_id": run_id,
                "endpoint_id": endpoint_id,
                "patient_label": "m",
                "created_at": WHEN,
                "completed_at": None,
                "outcome": None,
                "resources_by_type": {},
                "pages": 0,
                "bytes": 0,
                "references_found": 0,
                "references_resolved": 0,
                "details": {"x": value},
            }
        )
        writer.flush()
        assert writer.stats().rejected_rows + writer.stats().rows_written == 1
    finally:
        store.close()
