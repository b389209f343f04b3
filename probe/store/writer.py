"""Batched, thread-safe persistence of one run's observations.

The crawl produces observations fast and from many tasks; the writer buffers them and writes
them in batches, one transaction per flush, when enough have accumulated (`batch_size` rows),
when `flush_interval` seconds have passed, or on an explicit :meth:`StoreWriter.flush`.
On PostgreSQL request rows go through ``COPY`` and the rest through executemany. On SQLite
every row is converted for the driver before the flush's transaction begins and rows go several
hundred to a statement, so the database's single write lock, which other workers wait for, is
held only to step a few statements (the thread gives the GIL away and takes it back once per
statement stepped, not once per row).

If a flush fails because the database is unreachable, nothing is lost: the batch goes back
into the buffer, the failure is counted, and the next flush retries it (automatic flushes
back off exponentially meanwhile). Rows the database rejects outright (e.g. an unknown
endpoint id) are set aside one by one and counted in `rejected_rows`, so one bad row cannot
wedge the writer. The API is synchronous. Once started (:meth:`StoreWriter.start`), adding an
observation only prepares its row and appends it (the writer's thread does the writing), so an
event loop may call it directly; :meth:`StoreWriter.flush` and :meth:`StoreWriter.close` block
and belong in a worker thread.
"""

from __future__ import annotations

import contextlib
import logging
import re
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import TracebackType
from typing import Any, Self

from sqlalchemy import Connection, Dialect, Engine, func, insert, select, tuple_
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError, SQLAlchemyError

from probe.models import CheckResult, Exchange
from probe.store.dialect import bulk_insert, upsert
from probe.store.sanitize import (
    Scrubber,
    clean_text,
    scrub,
    storable_document,
    strip_text_secrets,
    strip_url_secrets,
)
from probe.store.tables import (
    AuthorizationAttemptRow,
    CheckResultRow,
    DocumentKind,
    DocumentRow,
    DocumentSightingRow,
    HttpRequestRow,
    RunTargetRow,
    SyncJobRow,
    TargetStatus,
    utcnow,
)

log = logging.getLogger(__name__)

Row = dict[str, Any]


@dataclass(slots=True)
class _Buffer:
    """Observations not yet written; check results and targets are keyed so the latest wins."""

    requests: list[Row] = field(default_factory=list)
    checks: dict[tuple[int, str], Row] = field(default_factory=dict)
    documents: list[Row] = field(default_factory=list)
    sync_jobs: list[Row] = field(default_factory=list)
    targets: dict[int, Row] = field(default_factory=dict)

    def __len__(self) -> int:
        return (
            len(self.requests)
            + len(self.checks)
            + len(self.documents)
            + len(self.sync_jobs)
            + len(self.targets)
        )

    def put_back(self, newer: _Buffer) -> None:
        """Merge `newer` (added while this batch was being written) after this older batch."""
        self.requests.extend(newer.requests)
        self.checks.update(newer.checks)
        self.documents.extend(newer.documents)
        self.sync_jobs.extend(newer.sync_jobs)
        for endpoint_id, row in newer.targets.items():
            _merge_target(self.targets, endpoint_id, row)


def _merge_target(targets: dict[int, Row], endpoint_id: int, row: Row) -> None:
    previous = targets.get(endpoint_id)
    if previous is not None and row["started_at"] is None:
        row = {**row, "started_at": previous["started_at"]}
    targets[endpoint_id] = row


@dataclass(frozen=True, slots=True)
class WriterStats:
    """Counters describing a writer's health, for logs and the run summary."""

    rows_written: int
    flushes: int
    failed_flushes: int
    consecutive_failures: int
    rejected_rows: int
    dropped_rows: int
    buffered: int
    last_error: str | None


def _is_transient(exc: BaseException) -> bool:
    """True for failures worth retrying as-is: the database is unreachable or went away."""
    if isinstance(exc, OperationalError | InterfaceError):
        return True
    return isinstance(exc, DBAPIError) and bool(exc.connection_invalidated)


class StoreWriter:
    """Buffers one run's observations and writes them in batches; safe to share across threads."""

    def __init__(
        self,
        engine: Engine,
        run_id: int,
        *,
        batch_size: int = 5000,
        flush_interval: float = 2.0,
        max_buffered: int = 1_000_000,
        max_backoff: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.engine = engine
        self.run_id = run_id
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self.max_buffered = max_buffered
        self.max_backoff = max_backoff
        self._clock = clock
        self._buffer = _Buffer()
        self._lock = threading.Lock()  # guards the buffer and counters
        self._flush_lock = threading.Lock()  # one flush at a time
        self._last_flush = clock()
        self._retry_at = 0.0
        self._rows_written = 0
        self._flushes = 0
        self._failed_flushes = 0
        self._consecutive_failures = 0
        self._rejected = 0
        self._dropped = 0
        self._rejected_by_target: dict[int, str] = {}
        self._last_error: str | None = None
        self._stop = threading.Event()
        self._wake = threading.Event()  # a flush is due (set by callers, cleared by the thread)
        self._thread: threading.Thread | None = None
        self._preparer: _SqlitePreparer | None = None

    # -- observations -------------------------------------------------------------------------

    def add_check_results(
        self,
        endpoint_id: int,
        results: Iterable[CheckResult],
        *,
        observed_at: datetime | None = None,
    ) -> None:
        """Buffer check verdicts; re-adding a check for the same run and endpoint replaces it."""
        moment = observed_at or utcnow()
        scrubber = Scrubber()  # the results of one endpoint share many strings (keys, URLs)
        rows = {
            (endpoint_id, r.spec.id): {
                "run_id": self.run_id,
                "endpoint_id": endpoint_id,
                "check_id": clean_text(r.spec.id)[:128],
                "status": str(r.status),
                "severity": str(r.spec.severity),
                "message": scrubber.text(r.message),
                "evidence": scrubber.scrub(r.evidence),
                "observed_at": moment,
            }
            for r in results
        }
        with self._lock:
            self._buffer.checks.update(rows)
        self._maybe_flush()

    def add_exchanges(self, endpoint_id: int, exchanges: Iterable[Exchange]) -> None:
        """Buffer HTTP request records (never bodies; URL secrets stripped)."""
        now = utcnow()
        rows = [
            {
                "run_id": self.run_id,
                "endpoint_id": endpoint_id,
                "method": clean_text(ex.method.upper())[:10],
                "url": strip_url_secrets(ex.url),
                "status": ex.status,
                "latency_ms": float(ex.latency_ms),
                "bytes": int(ex.size_bytes),
                "content_type": clean_text(ex.content_type)[:255] if ex.content_type else None,
                "error_class": clean_text(ex.error_class)[:64] if ex.error_class else None,
                "step": clean_text(str(ex.step)),
                "started_at": ex.started_at or now,
                "wait_ms": round(float(ex.wait_ms), 3),
            }
            for ex in exchanges
        ]
        with self._lock:
            self._buffer.requests.extend(rows)
            self._enforce_cap()
        self._maybe_flush()

    def add_document(
        self,
        endpoint_id: int,
        kind: DocumentKind | str,
        body: Mapping[str, Any],
        *,
        seen_at: datetime | None = None,
    ) -> str:
        """Buffer a sighting of a server document; its body is stored once per content hash.

        Returns the sha256 content hash (of the canonical JSON) identifying the body.
        """
        clean, digest = storable_document(dict(body))
        row = {
            "kind": str(DocumentKind(kind)),
            "content_hash": digest,
            "body": clean,
            "endpoint_id": endpoint_id,
            "seen_at": seen_at or utcnow(),
        }
        with self._lock:
            self._buffer.documents.append(row)
        self._maybe_flush()
        return digest

    def add_sync_job(
        self,
        endpoint_id: int,
        patient_label: str,
        *,
        created_at: datetime,
        completed_at: datetime | None = None,
        outcome: str | None = None,
        resources_by_type: Mapping[str, int] | None = None,
        pages: int = 0,
        size_bytes: int = 0,
        references_found: int = 0,
        references_resolved: int = 0,
        details: Mapping[str, Any] | None = None,
    ) -> None:
        """Buffer one sync's summary: counts, ids and timings only.

        `resources_by_type` must map resource type names to counts; any FHIR resource found in
        `details` is reduced to its type and id, so no resource body is ever stored.
        """
        counts: dict[str, int] = {}
        for type_name, count in (resources_by_type or {}).items():
            if isinstance(count, bool) or not isinstance(count, int):
                raise TypeError(
                    f"resources_by_type[{type_name!r}] must be a count (int), not "
                    f"{type(count).__name__}; resource bodies are never stored"
                )
            counts[clean_text(str(type_name))] = count
        row = {
            "run_id": self.run_id,
            "endpoint_id": endpoint_id,
            "patient_label": clean_text(patient_label)[:200],
            "created_at": created_at,
            "completed_at": completed_at,
            "outcome": clean_text(outcome)[:64] if outcome else None,
            "resources_by_type": counts,
            "pages": int(pages),
            "bytes": int(size_bytes),
            "references_found": int(references_found),
            "references_resolved": int(references_resolved),
            "details": scrub(dict(details)) if details is not None else None,
        }
        with self._lock:
            self._buffer.sync_jobs.append(row)
        self._maybe_flush()

    def add_authorization_attempt(
        self,
        endpoint_id: int,
        outcome: str,
        state: str,
        attempted_at: datetime,
        evidence: Mapping[str, Any],
    ) -> bool:
        """Store one observed authorization attempt (origin ``observed``) at once; False when
        the store refused it (logged, and the crawl carries on).

        `state` is what the outcome counts as in the scorecards (the caller maps it); the
        evidence is scrubbed of known secrets like every other stored observation.
        """
        row = {
            "endpoint_id": endpoint_id,
            "attempt_key": f"observed:{attempted_at.isoformat()}:{secrets.token_hex(6)}",
            "attempted_at": attempted_at,
            "state": state,
            "query_ineligible": outcome == "ineligible",
            "source": "probe run",
            "imported_at": utcnow(),
            "origin": "observed",
            "outcome": clean_text(outcome)[:32],
            "evidence": scrub(dict(evidence)),
        }
        try:
            with self.engine.begin() as conn:
                conn.execute(insert(AuthorizationAttemptRow), [row])
        except SQLAlchemyError as exc:
            log.warning("could not store an authorization attempt: %s", _first_line(exc))
            return False
        return True

    def mark_target(
        self,
        endpoint_id: int,
        status: TargetStatus | str,
        *,
        started_at: datetime | None = None,
        error: str | None = None,
    ) -> None:
        """Buffer a target's state; it is written after the observations of the same flush.

        ``pending`` with `started_at` records that work began; ``done``/``failed`` stamp the
        finish time. Because targets are written last in each flush's transaction, a target
        marked done never lacks the observations added before it, and a target one of whose
        observations the database rejected is written ``failed`` with the reason, never
        ``done`` (see :meth:`rejected_targets`).
        """
        state = TargetStatus(status)
        finished = utcnow() if state is not TargetStatus.PENDING else None
        row = {
            "run_id": self.run_id,
            "endpoint_id": endpoint_id,
            "status": state.value,
            "started_at": started_at,
            "finished_at": finished,
            "error": strip_text_secrets(error) if error else None,
        }
        with self._lock:
            _merge_target(self._buffer.targets, endpoint_id, row)
        self._maybe_flush()

    # -- flushing -----------------------------------------------------------------------------

    @property
    def buffered(self) -> int:
        """How many observations wait to be written."""
        with self._lock:
            return len(self._buffer)

    @property
    def failed_flushes(self) -> int:
        """How many flushes have failed in total (each kept its batch for a retry)."""
        return self._failed_flushes

    def stats(self) -> WriterStats:
        """A snapshot of the writer's counters."""
        with self._lock:
            return WriterStats(
                rows_written=self._rows_written,
                flushes=self._flushes,
                failed_flushes=self._failed_flushes,
                consecutive_failures=self._consecutive_failures,
                rejected_rows=self._rejected,
                dropped_rows=self._dropped,
                buffered=len(self._buffer),
                last_error=self._last_error,
            )

    def rejected_targets(self) -> dict[int, str]:
        """Endpoint ids one of whose observations the database rejected, with the reason;
        such a target is stored ``failed``, never ``done``."""
        with self._lock:
            return dict(self._rejected_by_target)

    def _note_rejection(self, single: _Buffer, exc: BaseException) -> None:
        """Remember which target lost an observation (called with no lock held)."""
        endpoint_ids = {r["endpoint_id"] for r in single.requests}
        endpoint_ids |= {r["endpoint_id"] for r in single.checks.values()}
        endpoint_ids |= {r["endpoint_id"] for r in single.documents}
        endpoint_ids |= {r["endpoint_id"] for r in single.sync_jobs}
        why = strip_text_secrets(_first_line(exc))[:300]
        reason = f"store_rejected: the store rejected an observation ({why})"
        with self._lock:
            for endpoint_id in endpoint_ids:
                self._rejected_by_target.setdefault(endpoint_id, reason)

    def _failed_if_rejected(self, targets: dict[int, Row]) -> dict[int, Row]:
        """`targets` with every ``done`` target that lost an observation turned ``failed``."""
        with self._lock:
            rejected = dict(self._rejected_by_target)
        if not rejected:
            return targets
        out: dict[int, Row] = {}
        for endpoint_id, row in targets.items():
            if endpoint_id in rejected and row["status"] == TargetStatus.DONE.value:
                row = {**row, "status": TargetStatus.FAILED.value, "error": rejected[endpoint_id]}
            out[endpoint_id] = row
        return out

    def _enforce_cap(self) -> None:
        # Called with the lock held: while the database is down, shed the oldest request rows.
        excess = len(self._buffer) - self.max_buffered
        if excess > 0:
            dropped = min(excess, len(self._buffer.requests))
            del self._buffer.requests[:dropped]
            self._dropped += dropped

    def _due(self) -> bool:
        with self._lock:
            size = len(self._buffer)
        if size == 0:
            return False
        now = self._clock()
        if now < self._retry_at:
            return False
        return size >= self.batch_size or now - self._last_flush >= self.flush_interval

    def _maybe_flush(self) -> None:
        if self._thread is not None:
            # Started: the writer's own thread writes, so a caller on an event loop never
            # blocks on the database; it is only woken when a flush is due.
            if self._due():
                self._wake.set()
            return
        self._flush_if_due()

    def _flush_if_due(self) -> None:
        if self._due() and self._flush_lock.acquire(blocking=False):
            try:
                self._flush_locked()
            finally:
                self._flush_lock.release()

    def between_flushes(self) -> contextlib.AbstractContextManager[object]:
        """Hold this writer's flushes off while the caller writes to the store itself.

        On SQLite one connection writes at a time: another write of this process (a worker's
        claim) would otherwise wait for the flush in SQLite's busy loop, waking every few
        milliseconds. Elsewhere nothing is held (PostgreSQL locks rows, not the database).
        """
        if self.engine.dialect.name == "sqlite":
            return self._flush_lock
        return contextlib.nullcontext()

    def flush(self) -> bool:
        """Write everything buffered now in one transaction; False if it failed (batch kept)."""
        with self._flush_lock:
            return self._flush_locked()

    def _flush_locked(self) -> bool:
        with self._lock:
            batch, self._buffer = self._buffer, _Buffer()
        self._last_flush = self._clock()
        if not batch:
            return True
        batch.targets = self._failed_if_rejected(batch.targets)
        try:
            prepared = self._prepare(batch)
            with self.engine.begin() as conn:
                written = _write(conn, self.run_id, batch, prepared)
        except (SQLAlchemyError, ValueError) as exc:
            if isinstance(exc, SQLAlchemyError) and _is_transient(exc):
                self._record_failure(exc, batch)
                return False
            # The database rejected some row: write what it accepts, one group at a time.
            log.warning("store flush rejected, salvaging row by row: %s", _first_line(exc))
            failures_before = self._failed_flushes
            written, rejected = self._salvage(batch)
            with self._lock:
                self._rows_written += written
                self._rejected += rejected
                self._last_error = _first_line(exc)
                if self._failed_flushes != failures_before:
                    return False  # the database went away mid-salvage; the rest is kept
                self._flushes += 1
                self._consecutive_failures = 0
                self._retry_at = 0.0
            return True
        with self._lock:
            self._rows_written += written
            self._flushes += 1
            self._consecutive_failures = 0
            self._retry_at = 0.0
        return True

    def _prepare(self, batch: _Buffer) -> dict[str, _DriverRows] | None:
        """On SQLite, `batch` as driver-ready statements (see :class:`_SqlitePreparer`); None
        elsewhere, or when a value cannot be converted (the plain path then reports it)."""
        if self.engine.dialect.name != "sqlite":
            return None
        if self._preparer is None:
            self._preparer = _SqlitePreparer(self.engine.dialect)
        try:
            return self._preparer.prepare(batch, self.run_id)
        except Exception:  # the plain path raises it where it always did
            return None

    def _record_failure(self, exc: BaseException, batch: _Buffer) -> None:
        with self._lock:
            batch.put_back(self._buffer)
            self._buffer = batch
            self._enforce_cap()
            self._failed_flushes += 1
            self._consecutive_failures += 1
            self._last_error = _first_line(exc)
            backoff = min(self.max_backoff, 0.5 * 2 ** (self._consecutive_failures - 1))
            self._retry_at = self._clock() + backoff
        log.warning(
            "store flush failed (%d in a row), %d observations kept for retry: %s",
            self._consecutive_failures,
            len(batch),
            _first_line(exc),
        )

    def _salvage(self, batch: _Buffer) -> tuple[int, int]:
        """Write each observation in its own transaction; count those the database refuses."""
        written = rejected = 0
        singles: list[_Buffer] = []
        singles += [_Buffer(documents=[d]) for d in batch.documents]
        singles += [_Buffer(checks={k: v}) for k, v in batch.checks.items()]
        singles += [_Buffer(requests=[r]) for r in batch.requests]
        singles += [_Buffer(sync_jobs=[s]) for s in batch.sync_jobs]
        singles += [_Buffer(targets={k: v}) for k, v in batch.targets.items()]
        for single in singles:
            if single.targets:  # last: after every observation of the batch was tried
                single.targets = self._failed_if_rejected(single.targets)
            try:
                prepared = self._prepare(single)
                with self.engine.begin() as conn:
                    written += _write(conn, self.run_id, single, prepared)
            except (SQLAlchemyError, ValueError) as exc:
                if isinstance(exc, SQLAlchemyError) and _is_transient(exc):
                    self._record_failure(exc, single)
                else:
                    rejected += 1
                    self._note_rejection(single, exc)
                    log.error("store rejected an observation: %s", _first_line(exc))
        return written, rejected

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> Self:
        """Start a daemon thread that does every automatic flush (on size or time), so adding
        observations never waits for the database; :meth:`flush` and :meth:`close` still write
        in the caller's thread."""
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(
                target=self._run_timer, name=f"store-writer-{self.run_id}", daemon=True
            )
            self._thread.start()
        return self

    def _run_timer(self) -> None:
        tick = max(0.05, min(self.flush_interval / 2, 1.0))
        while not self._stop.is_set():
            self._wake.wait(tick)
            self._wake.clear()
            if self._stop.is_set():
                return
            self._flush_if_due()

    def close(self, *, retry_for: float = 0.0) -> bool:
        """Stop the timer thread and flush; False (and a logged error) if rows remain unwritten.

        With `retry_for`, a failing flush is retried (backing off up to 5 s) for that many
        seconds while the database is unreachable, so a run that ends during an outage still
        writes everything once the database is back.
        """
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        ok = self.flush()
        give_up_at = self._clock() + retry_for
        pause = 0.5
        while not ok and self._clock() < give_up_at:
            time.sleep(min(pause, max(0.0, give_up_at - self._clock())))
            pause = min(pause * 2, 5.0)
            ok = self.flush()
        if not ok:
            log.error(
                "store writer closed with %d observations unwritten: %s",
                self.buffered,
                self._last_error,
            )
        return ok

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _checks_upsert(stmt: Any) -> Any:
    """`stmt` (an INSERT of check results) replacing the verdict already stored for the check."""
    return stmt.on_conflict_do_update(
        index_elements=["run_id", "endpoint_id", "check_id"],
        set_={
            name: stmt.excluded[name]
            for name in ("status", "severity", "message", "evidence", "observed_at")
        },
    )


def _targets_upsert(stmt: Any) -> Any:
    """`stmt` (an INSERT of run targets) updating a target's state, keeping its start time."""
    table = RunTargetRow.__table__
    return stmt.on_conflict_do_update(
        index_elements=["run_id", "endpoint_id"],
        set_={
            "status": stmt.excluded.status,
            "finished_at": stmt.excluded.finished_at,
            "error": stmt.excluded.error,
            "started_at": func.coalesce(stmt.excluded.started_at, table.c.started_at),
        },
    )


def _bodies_insert(stmt: Any) -> Any:
    """`stmt` (an INSERT of document bodies) leaving a body already stored alone."""
    return stmt.on_conflict_do_nothing(index_elements=["kind", "content_hash"])


def _distinct_bodies(sightings: list[Row]) -> dict[tuple[str, str], Row]:
    """Each distinct document body of `sightings` (per kind and hash) with its first sighting."""
    bodies: dict[tuple[str, str], Row] = {}
    for s in sightings:
        key = (s["kind"], s["content_hash"])
        if key not in bodies or s["seen_at"] < bodies[key]["first_seen"]:
            bodies[key] = {
                "kind": s["kind"],
                "content_hash": s["content_hash"],
                "body": s["body"],
                "first_seen": s["seen_at"],
            }
    return bodies


@dataclass(frozen=True, slots=True)
class _DriverRows:
    """One group of rows as the driver takes it: multi-row statements, each with its flat
    converted parameters, and how many rows they hold in all."""

    statements: list[tuple[str, tuple[Any, ...]]]
    rows: int


#: The SQLite statements a batch is prepared into: group name -> (table, statement).
_SQLITE_STATEMENTS: dict[str, tuple[type[Any], Callable[[], Any]]] = {
    "bodies": (DocumentRow, lambda: _bodies_insert(sqlite_insert(DocumentRow))),
    "checks": (CheckResultRow, lambda: _checks_upsert(sqlite_insert(CheckResultRow))),
    "requests": (HttpRequestRow, lambda: insert(HttpRequestRow)),
    "sync_jobs": (SyncJobRow, lambda: insert(SyncJobRow)),
    "targets": (RunTargetRow, lambda: _targets_upsert(sqlite_insert(RunTargetRow))),
}

#: Rows one prepared statement carries at most. The driver gives the GIL away and takes it
#: back for every statement it steps (every row of an executemany): with the crawl's event loop
#: holding the GIL between its socket calls, a 6,000-endpoint crawl's flushes, 200,000 rows one
#: by one, spent 83 % of their transactions waiting for it, holding SQLite's write lock.
_ROWS_PER_STATEMENT = 512

#: Bound parameters one SQLite statement may take (SQLITE_MAX_VARIABLE_NUMBER; 999 before 3.32).
_SQLITE_MAX_VARIABLES = 32_766 if sqlite3.sqlite_version_info >= (3, 32, 0) else 999

#: The VALUES group of a compiled single-row INSERT, to repeat for several rows.
_VALUES_GROUP = re.compile(r"\bVALUES (\(\?(?:, \?)*\))")


def _chunk_sizes(total: int, columns: int) -> list[int]:
    """Rows per statement for `total` rows of `columns` values: powers of two, largest first,
    so that a handful of statement texts (each parsed once per connection) serve any batch."""
    most = max(1, min(_ROWS_PER_STATEMENT, _SQLITE_MAX_VARIABLES // max(columns, 1)))
    top = 1 << (most.bit_length() - 1)
    sizes: list[int] = []
    while total:
        size = top
        while size > total:
            size >>= 1
        sizes.append(size)
        total -= size
    return sizes


class _SqlitePreparer:
    """Turns a batch into driver-ready statements before its transaction begins (SQLite).

    On SQLite every write transaction holds the one database-wide write lock that the other
    workers' claims and flushes wait for. Converting the rows (JSON evidence and bodies,
    timestamps) and SQLAlchemy's per-row parameter handling happen here, before it; rows go
    several hundred to a statement (``INSERT ... VALUES (...), (...)``), so the transaction's
    thread steps a few statements instead of one per row. Values are converted by each
    column's own type (`bind_processor`), exactly as SQLAlchemy would convert them.
    """

    def __init__(self, dialect: Dialect) -> None:
        self.dialect = dialect
        self._compiled: dict[tuple[str, tuple[str, ...]], tuple[str, list[Any]]] = {}
        self._texts: dict[tuple[tuple[str, tuple[str, ...]], int], str] = {}

    def prepare(self, batch: _Buffer, run_id: int) -> dict[str, _DriverRows]:
        """The batch's rows of every kind as driver statements, document sightings included
        (matched to their bodies' ids by the statement itself)."""
        groups: dict[str, list[Row]] = {
            "bodies": list(_distinct_bodies(batch.documents).values()),
            "checks": list(batch.checks.values()),
            "requests": batch.requests,
            "sync_jobs": batch.sync_jobs,
            "targets": list(batch.targets.values()),
        }
        out = {name: self._rows(name, rows) for name, rows in groups.items() if rows}
        if batch.documents:
            out["sightings"] = self._sightings(batch.documents, run_id)
        return out

    def _rows(self, group: str, rows: list[Row]) -> _DriverRows:
        keys = tuple(rows[0])
        first = rows[0].keys()
        if any(row.keys() != first for row in rows):
            raise ValueError(f"{group}: rows of different shapes")
        compiled = self._compiled.get((group, keys))
        if compiled is None:
            table, build = _SQLITE_STATEMENTS[group]
            statement = build().compile(dialect=self.dialect, column_keys=list(keys))
            names = list(statement.positiontup or [])
            if sorted(names) != sorted(keys):
                raise ValueError(f"{group}: unexpected parameters {names}")
            sql = str(statement)
            if len(_VALUES_GROUP.findall(sql)) != 1:
                raise ValueError(f"{group}: not a single-row INSERT: {sql}")
            columns = table.__table__.c
            processors = [
                columns[name].type.dialect_impl(self.dialect).bind_processor(self.dialect)
                for name in names
            ]
            compiled = self._compiled[(group, keys)] = (
                sql,
                list(zip(names, processors, strict=True)),
            )
        sql, order = compiled
        params = [
            tuple(row[name] if process is None else process(row[name]) for name, process in order)
            for row in rows
        ]

        def text(size: int) -> str:
            match = _VALUES_GROUP.search(sql)
            assert match is not None  # checked when compiled
            groups = ", ".join([match.group(1)] * size)
            return f"{sql[: match.start(1)]}{groups}{sql[match.end(1) :]}"

        return self._statements((group, keys), params, text)

    def _sightings(self, documents: list[Row], run_id: int) -> _DriverRows:
        """One sighting per document, endpoint and run, first one first: the statement finds
        each body's id by its kind and hash (the bodies are written just before it)."""
        seen: dict[tuple[str, str, int], Row] = {}
        for s in documents:
            seen.setdefault((s["kind"], s["content_hash"], s["endpoint_id"]), s)
        at = DocumentSightingRow.__table__.c.seen_at.type
        process = at.dialect_impl(self.dialect).bind_processor(self.dialect)
        params = [
            (kind, digest, run_id, endpoint_id, process(s["seen_at"]) if process else s["seen_at"])
            for (kind, digest, endpoint_id), s in seen.items()
        ]
        quote = self.dialect.identifier_preparer
        sightings = quote.format_table(DocumentSightingRow.__table__)
        documents_table = quote.format_table(DocumentRow.__table__)

        def text(size: int) -> str:
            values = ", ".join(["(?, ?, ?, ?, ?)"] * size)
            # table names from the metadata; every value is bound
            return (
                f"INSERT INTO {sightings} (document_id, run_id, endpoint_id, seen_at) "  # noqa: S608
                "SELECT d.id, v.column3, v.column4, v.column5 "
                f"FROM (VALUES {values}) AS v JOIN {documents_table} AS d "
                "ON d.kind = v.column1 AND d.content_hash = v.column2 "
                # WHERE true: SQLite would read ON CONFLICT as the join's constraint otherwise
                "WHERE true ON CONFLICT (document_id, run_id, endpoint_id) DO NOTHING"
            )

        return self._statements(("sightings", ()), params, text)

    def _statements(
        self,
        key: tuple[str, tuple[str, ...]],
        params: list[tuple[Any, ...]],
        text: Callable[[int], str],
    ) -> _DriverRows:
        """`params` (one tuple per row) as multi-row statements built by `text(rows)`."""
        statements: list[tuple[str, tuple[Any, ...]]] = []
        start = 0
        for size in _chunk_sizes(len(params), len(params[0]) if params else 1):
            sql = self._texts.get((key, size))
            if sql is None:
                sql = self._texts[(key, size)] = text(size)
            flat = tuple(value for row in params[start : start + size] for value in row)
            statements.append((sql, flat))
            start += size
        return _DriverRows(statements, len(params))


def _write(
    conn: Connection,
    run_id: int,
    batch: _Buffer,
    prepared: Mapping[str, _DriverRows] | None = None,
) -> int:
    """Write one batch on an open transaction; return the number of rows written.

    `prepared` (SQLite) holds the batch's statements already converted for the driver.
    """
    if prepared is not None:
        written = 0
        # bodies before their sightings, targets last
        for name in ("bodies", "sightings", "checks", "requests", "sync_jobs", "targets"):
            group = prepared.get(name)
            if group is None:
                continue
            for sql, params in group.statements:
                conn.exec_driver_sql(sql, params)
            if name != "bodies":
                written += group.rows
        return written
    written = 0
    if batch.documents:
        written += _write_documents(conn, run_id, batch.documents)
    if batch.checks:
        conn.execute(_checks_upsert(upsert(conn, CheckResultRow)), list(batch.checks.values()))
        written += len(batch.checks)
    if batch.requests:
        bulk_insert(conn, HttpRequestRow, batch.requests)
        written += len(batch.requests)
    if batch.sync_jobs:
        conn.execute(insert(SyncJobRow), batch.sync_jobs)
        written += len(batch.sync_jobs)
    if batch.targets:
        conn.execute(_targets_upsert(upsert(conn, RunTargetRow)), list(batch.targets.values()))
        written += len(batch.targets)
    return written


def _write_documents(conn: Connection, run_id: int, sightings: list[Row]) -> int:
    """Store each distinct body once (per kind and hash), then one sighting per endpoint and run."""
    bodies = _distinct_bodies(sightings)
    conn.execute(_bodies_insert(upsert(conn, DocumentRow)), list(bodies.values()))
    return _write_sightings(conn, run_id, sightings)


def _write_sightings(conn: Connection, run_id: int, sightings: list[Row]) -> int:
    """One sighting per document, endpoint and run (the bodies are stored already)."""
    bodies = {(s["kind"], s["content_hash"]) for s in sightings}
    ids = {
        (kind, digest): doc_id
        for doc_id, kind, digest in conn.execute(
            select(DocumentRow.id, DocumentRow.kind, DocumentRow.content_hash).where(
                tuple_(DocumentRow.kind, DocumentRow.content_hash).in_(list(bodies))
            )
        )
    }
    seen: dict[tuple[int, int], Row] = {}
    for s in sightings:
        doc_id = ids[(s["kind"], s["content_hash"])]
        seen.setdefault(
            (doc_id, s["endpoint_id"]),
            {
                "document_id": doc_id,
                "run_id": run_id,
                "endpoint_id": s["endpoint_id"],
                "seen_at": s["seen_at"],
            },
        )
    stmt = upsert(conn, DocumentSightingRow).on_conflict_do_nothing(
        index_elements=["document_id", "run_id", "endpoint_id"]
    )
    conn.execute(stmt, list(seen.values()))
    return len(seen)
