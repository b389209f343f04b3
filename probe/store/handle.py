"""`Store`: an open, migrated database with the operations the rest of probe needs.

Obtain one with :func:`probe.store.open_store`. Every method is synchronous; async callers wrap
them in ``anyio.to_thread.run_sync``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from types import TracebackType
from typing import Any, Self

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

import probe.store.catalog as catalog
import probe.store.locks as locks
import probe.store.runs as runs
from probe.directory.lean import LeanDirectory
from probe.directory.schema import Directory, Environment, Payer, targets
from probe.store.locks import RunLock
from probe.store.tables import RunKind, RunStatus
from probe.store.writer import StoreWriter


@dataclass
class Store:
    """An open database at this code's schema revision."""

    engine: Engine
    sessions: sessionmaker[Session] = field(init=False)

    def __post_init__(self) -> None:
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session in a transaction, committed on success and rolled back on error."""
        with self.sessions.begin() as session:
            yield session

    def upsert_directory(self, directory: Directory | LeanDirectory) -> dict[str, int]:
        """Mirror the directory's payers and endpoints; endpoint ids keyed by ``Target.key``."""
        with self.session() as session:
            return catalog.upsert_directory(session, _payers_of(directory))

    def endpoint_ids(self, directory: Directory | LeanDirectory) -> dict[str, int] | None:
        """Endpoint ids keyed by ``Target.key`` when every target is stored, read without
        writing (a worker joining a run); None when one is missing."""
        # A lean directory's targets are read without rebuilding its payers.
        found = directory.refs if isinstance(directory, LeanDirectory) else targets(directory)
        pairs = ((str(t.environment), t.base_url) for t in found)
        with self.session() as session:
            return catalog.endpoint_ids(session, pairs)

    def ensure_endpoint(
        self,
        base_url: str,
        environment: Environment | str = Environment.PRODUCTION,
        payer_name: str | None = None,
    ) -> int:
        """The endpoint id for this base URL, created (with its payer) when unknown."""
        with self.session() as session:
            return catalog.ensure_endpoint(session, base_url, environment, payer_name)

    def start_run(
        self,
        kind: RunKind | str,
        config: Mapping[str, Any] | None = None,
        *,
        note: str | None = None,
    ) -> int:
        """Record a new running run by this process; return its id."""
        return runs.start_run(self.engine, kind, config, note=note)

    def finish_run(
        self, run_id: int, status: RunStatus | str = RunStatus.COMPLETED, *, note: str | None = None
    ) -> None:
        """Record the run's end and final status."""
        runs.finish_run(self.engine, run_id, status, note=note)

    def mark_stale_runs_interrupted(
        self, *, max_age: timedelta = runs.DEFAULT_STALE_AGE
    ) -> list[int]:
        """Mark running runs whose process is gone as interrupted; return their ids."""
        return runs.mark_stale_runs_interrupted(self.engine, max_age=max_age)

    def run_lock(
        self, name: str, *, stale_after: timedelta = locks.DEFAULT_STALE_AFTER
    ) -> AbstractContextManager[RunLock]:
        """Context manager holding the named cross-process lock, or raising RunLockHeld."""
        return locks.acquire_run_lock(self.engine, name, stale_after=stale_after)

    def writer(self, run_id: int, **options: Any) -> StoreWriter:
        """A batched writer for this run's observations (use it as a context manager)."""
        return StoreWriter(self.engine, run_id, **options)

    def close(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _payers_of(directory: Directory | LeanDirectory) -> Iterable[Payer]:
    """A directory's payers: the loaded list, or rebuilt one at a time from a lean directory."""
    return directory.payers if isinstance(directory, Directory) else directory.payers()
