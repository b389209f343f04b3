"""Benchmark: ingesting HTTP request rows into the observation store, SQLite and PostgreSQL.

Compares three ways of writing the same rows:

* ``writer``  - StoreWriter.add_exchanges + flush (secret stripping, batching, Core executemany);
                the path probe uses during a crawl.
* ``core``    - one Core ``insert()`` executemany of pre-built row dicts (the writer's fast path
                without its per-row preparation).
* ``orm``     - ``session.add_all`` of ORM objects + commit (the naive alternative).

Usage: .venv/bin/python bench/store_ingest.py [--rows 100000] [--db URL ...]
Without --db it runs on a temporary SQLite file and on a fresh schema of the PostgreSQL at
postgresql+psycopg://postgres@127.0.0.1:5432/test (dropped afterwards).
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import create_engine, func, insert, select, text
from sqlalchemy.orm import Session

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from probe.models import Exchange, ExtractStep
from probe.store.engine import open_store, safe_url
from probe.store.handle import Store
from probe.store.tables import HttpRequestRow
from probe.store.writer import StoreWriter

PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
STEPS = list(ExtractStep)


def make_exchanges(n: int) -> list[Exchange]:
    """N plausible request records (some with secrets in the query string)."""
    start = datetime(2026, 1, 1, tzinfo=UTC)
    return [
        Exchange(
            method="GET",
            url=(
                f"https://fhir.payer{i % 50}.example/r4/Observation?patient={i}&_count=50"
                + ("&access_token=abc123" if i % 10 == 0 else "")
            ),
            step=STEPS[i % len(STEPS)],
            status=200 if i % 17 else 503,
            latency_ms=50.0 + (i % 900),
            size_bytes=2048 + i % 4096,
            content_type="application/fhir+json",
            started_at=start,
        )
        for i in range(n)
    ]


@contextmanager
def fresh_database(url: str | None, backend: str) -> Iterator[str]:
    """A URL to an empty database for one benchmark run."""
    if url:
        yield url
        return
    if backend == "sqlite":
        with tempfile.TemporaryDirectory() as tmp:
            yield f"sqlite:///{tmp}/bench.db"
        return
    admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    schema = f"bench_{uuid.uuid4().hex[:12]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield f"{PG_URL}?options=-csearch_path%3D{schema}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def timed(fn: Callable[[], None]) -> float:
    """Wall-clock seconds `fn` takes."""
    began = time.perf_counter()
    fn()
    return time.perf_counter() - began


def bench_writer(store: Store, endpoint_id: int, exchanges: list[Exchange]) -> float:
    """StoreWriter in 1,000-exchange calls (as a crawl would), then close."""
    run_id = store.start_run("nightly")
    writer = StoreWriter(store.engine, run_id, batch_size=20_000, flush_interval=3600)

    def go() -> None:
        for i in range(0, len(exchanges), 1000):
            writer.add_exchanges(endpoint_id, exchanges[i : i + 1000])
        if not writer.close():
            raise RuntimeError(writer.stats().last_error)

    return timed(go)


def _rows(run_id: int, endpoint_id: int, exchanges: list[Exchange]) -> list[dict[str, object]]:
    return [
        {
            "run_id": run_id,
            "endpoint_id": endpoint_id,
            "method": ex.method,
            "url": ex.url,
            "status": ex.status,
            "latency_ms": ex.latency_ms,
            "bytes": ex.size_bytes,
            "content_type": ex.content_type,
            "error_class": ex.error_class,
            "step": str(ex.step),
            "started_at": ex.started_at,
        }
        for ex in exchanges
    ]


def bench_core(store: Store, endpoint_id: int, exchanges: list[Exchange]) -> float:
    """One Core insert() executemany of pre-built dicts, one transaction."""
    rows = _rows(store.start_run("nightly"), endpoint_id, exchanges)

    def go() -> None:
        with store.engine.begin() as conn:
            conn.execute(insert(HttpRequestRow), rows)

    return timed(go)


def bench_orm(store: Store, endpoint_id: int, exchanges: list[Exchange]) -> float:
    """session.add_all of ORM objects, one commit."""
    rows = _rows(store.start_run("nightly"), endpoint_id, exchanges)

    def go() -> None:
        with Session(store.engine) as session:
            session.add_all([HttpRequestRow(**row) for row in rows])
            session.commit()

    return timed(go)


def main() -> None:
    """Run every method on every backend and print rows/s."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--db", action="append", help="database URL (repeatable)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per method (best is kept)")
    args = parser.parse_args()
    targets = [(url, "") for url in args.db] if args.db else [(None, "sqlite"), (None, "pg")]
    exchanges = make_exchanges(args.rows)
    print(f"# {platform.platform()}  python {platform.python_version()}  rows={args.rows}")
    print(f"{'backend':<12} {'method':<8} {'best s':>7} {'median s':>8} {'best rows/s':>12}")
    for url, backend in targets:
        for name, method in (("writer", bench_writer), ("core", bench_core), ("orm", bench_orm)):
            times = []
            for _ in range(args.repeat):
                with fresh_database(url, backend) as db_url, open_store(db_url) as store:
                    endpoint_id = store.ensure_endpoint("https://fhir.bench.example/r4")
                    times.append(method(store, endpoint_id, exchanges))
                    with store.session() as session:
                        stored = session.scalar(select(func.count()).select_from(HttpRequestRow))
                    if stored != args.rows:
                        raise SystemExit(f"{name}: expected {args.rows} rows, found {stored}")
                    label = safe_url(db_url) if url else store.engine.dialect.name
            best, median = min(times), statistics.median(times)
            print(
                f"{label:<12} {name:<8} {best:>7.2f} {median:>8.2f} {args.rows / best:>12,.0f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
