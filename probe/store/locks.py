"""A named lock in the database, so two overlapping runs (e.g. nightly) cannot both proceed.

The lock is a row of ``run_locks``: inserting it succeeds only when no row exists or the
existing one is stale (no heartbeat for `stale_after`, or its holder's process is gone on this
host). It works the same on SQLite and PostgreSQL, across processes and hosts.
"""

from __future__ import annotations

import logging
import os
import secrets
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import Connection, Engine, delete, insert, select, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from probe.store.errors import RunLockHeld
from probe.store.runs import process_alive, this_host
from probe.store.tables import RunLockRow, utcnow

log = logging.getLogger(__name__)

DEFAULT_STALE_AFTER = timedelta(minutes=10)


def new_holder() -> str:
    """A holder id unique to this process and call: ``host:pid:random``."""
    return f"{this_host()}:{os.getpid()}:{secrets.token_hex(4)}"


def _holder_gone(holder: str) -> bool:
    """True when the holder ran on this host and its process no longer exists."""
    host, _, rest = holder.rpartition(":")  # strip the random token
    host, _, pid = host.rpartition(":")
    if host != this_host() or not pid.isdigit() or not rest:
        return False
    return not process_alive(int(pid))


@dataclass(slots=True)
class RunLock:
    """A held lock; `lost` turns true if a heartbeat finds another holder took it over."""

    engine: Engine
    name: str
    holder: str
    acquired_at: datetime
    lost: bool = False
    heartbeat_failures: int = 0
    _stop: threading.Event = field(default_factory=threading.Event, repr=False)

    def heartbeat(self) -> bool:
        """Refresh the heartbeat; False (and `lost`) if the row is no longer ours."""
        with self.engine.begin() as conn:
            result = conn.execute(
                update(RunLockRow)
                .where(RunLockRow.name == self.name, RunLockRow.holder == self.holder)
                .values(heartbeat_at=utcnow())
            )
        if result.rowcount == 0:
            self.lost = True
        return not self.lost

    def _beat(self, interval: float) -> None:
        while not self._stop.wait(interval):
            try:
                if not self.heartbeat():
                    log.error("run lock %r was taken over by another holder", self.name)
                    return
            except SQLAlchemyError as exc:
                self.heartbeat_failures += 1
                log.warning("run lock %r heartbeat failed: %s", self.name, exc)

    def release(self) -> None:
        """Delete the lock row if it is still ours."""
        self._stop.set()
        with self.engine.begin() as conn:
            conn.execute(
                delete(RunLockRow).where(
                    RunLockRow.name == self.name, RunLockRow.holder == self.holder
                )
            )


def _try_acquire(conn: Connection, name: str, holder: str, stale_after: timedelta) -> datetime:
    now = utcnow()
    current = conn.execute(
        select(RunLockRow.holder, RunLockRow.heartbeat_at).where(RunLockRow.name == name)
    ).first()
    if current is not None:
        other, heartbeat_at = current
        if heartbeat_at >= now - stale_after and not _holder_gone(other):
            raise RunLockHeld(name, other, heartbeat_at.isoformat(timespec="seconds"))
        log.warning("taking over stale run lock %r from %s", name, other)
        conn.execute(delete(RunLockRow).where(RunLockRow.name == name, RunLockRow.holder == other))
    conn.execute(
        insert(RunLockRow).values(name=name, holder=holder, acquired_at=now, heartbeat_at=now)
    )
    return now


@contextmanager
def acquire_run_lock(
    engine: Engine,
    name: str,
    *,
    stale_after: timedelta = DEFAULT_STALE_AFTER,
    heartbeat_interval: float | None = None,
    holder: str | None = None,
) -> Iterator[RunLock]:
    """Hold the named lock for the duration of the ``with`` block, or raise RunLockHeld.

    While held, a daemon thread refreshes the heartbeat every `heartbeat_interval` seconds
    (default: a third of `stale_after`), so a live holder is never considered stale.
    """
    me = holder or new_holder()
    try:
        with engine.begin() as conn:
            acquired_at = _try_acquire(conn, name, me, stale_after)
    except IntegrityError:
        # A concurrent acquirer inserted first: report who holds it now.
        with engine.connect() as conn:
            row = conn.execute(
                select(RunLockRow.holder, RunLockRow.heartbeat_at).where(RunLockRow.name == name)
            ).first()
        other, beat = (row[0], row[1].isoformat(timespec="seconds")) if row else ("?", "?")
        raise RunLockHeld(name, other, beat) from None
    lock = RunLock(engine, name, me, acquired_at)
    interval = heartbeat_interval or stale_after.total_seconds() / 3
    beater = threading.Thread(
        target=lock._beat, args=(interval,), name=f"run-lock-{name}", daemon=True
    )
    beater.start()
    try:
        yield lock
    finally:
        lock._stop.set()
        beater.join(timeout=5)
        try:
            lock.release()
        except SQLAlchemyError as exc:
            log.warning("could not release run lock %r (it will go stale): %s", name, exc)
