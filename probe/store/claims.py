"""A run as a queue in the store: workers claim its hosts under leases and hand them back.

The unit of work a worker claims is a *host*, not a target: while a worker holds a host it
alone probes the host's targets, so per-host politeness (rate and requests in flight) is
enforced by that one process and holds across workers and machines without a shared rate
limiter. A claim covers a slice of the host's pending targets (`limit`); once the slice is
written the host is handed back (:func:`release_host`) with a *not before* moment (the host's
next allowed request start), so the rest of a busy host can go to whichever worker has room
and no worker is left alone with a long tail at the end of a run.

A claim is a lease. A live worker renews its leases (:func:`renew_leases`); a worker that
dies (SIGKILL, a lost machine) stops renewing, and once its lease expires another worker
claims the host again and redoes the targets that were not ``done`` (after clearing their
partial observations, see :func:`probe.store.resume.clear_target_observations`).

Claims are taken with ``SELECT ... FOR UPDATE SKIP LOCKED`` on PostgreSQL, so concurrent
workers never wait on each other's rows, and inside SQLite's ``BEGIN IMMEDIATE`` write
transaction (the store's engine begins every transaction that way), which serialises them.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, Engine, Row, and_, func, or_, select, update

from probe.store.dialect import upsert
from probe.store.engine import READ_ONLY
from probe.store.runs import process_alive, this_host
from probe.store.tables import (
    HostStatus,
    ProbeRunRow,
    RunHostRow,
    RunStatus,
    RunTargetRow,
    TargetStatus,
    utcnow,
)

#: How long a claim lasts without renewal; workers renew at a third of it.
DEFAULT_LEASE = timedelta(seconds=60)


def worker_name() -> str:
    """A name for this worker process, unique across hosts and restarts."""
    return f"{this_host()[:80]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


@dataclass(frozen=True, slots=True)
class HostClaim:
    """A host a worker now holds and the targets on it it must probe."""

    host: str
    endpoint_ids: list[int]
    #: Targets a previous holder had started: their partial observations must be cleared.
    started_ids: list[int]
    #: True when the host was taken over from a worker whose lease expired.
    reclaimed: bool
    #: Seconds between request starts the previous holder came to (None: the configured rate).
    pace_s: float | None = None


@dataclass(frozen=True, slots=True)
class QueueState:
    """How much of a shared run is left, as a worker deciding whether to wait sees it."""

    pending: int
    held: int
    done: int
    #: The earliest moment a host held by another worker may be claimed, if any is held.
    next_expiry: datetime | None
    #: The earliest moment a pending host handed back with a *not before* may be claimed.
    next_free: datetime | None = None

    @property
    def finished(self) -> bool:
        """True when every host of the run is done."""
        return self.pending == 0 and self.held == 0


def register_hosts(engine: Engine, run_id: int, hosts: Mapping[int, str]) -> None:
    """Record each target's host and list the run's hosts as ``pending`` (idempotent).

    `hosts` maps endpoint id to host. Hosts already listed (a resumed run) are left alone.
    """
    if not hosts:
        return
    by_host: dict[str, list[int]] = {}
    for endpoint_id, host in hosts.items():
        by_host.setdefault(host[:255], []).append(endpoint_id)
    with engine.begin() as conn:
        for host, ids in by_host.items():
            conn.execute(
                update(RunTargetRow)
                .where(RunTargetRow.run_id == run_id, RunTargetRow.endpoint_id.in_(ids))
                .values(host=host)
            )
        stmt = upsert(conn, RunHostRow).on_conflict_do_nothing(index_elements=["run_id", "host"])
        conn.execute(
            stmt,
            [
                {
                    "run_id": run_id,
                    "host": h,
                    "status": HostStatus.PENDING.value,
                    "claims": 0,
                    "pending_targets": len(ids),
                }
                for h, ids in by_host.items()
            ],
        )


def claim_host(
    engine: Engine,
    run_id: int,
    worker: str,
    *,
    lease: timedelta = DEFAULT_LEASE,
    now: datetime | None = None,
    limit: int | None = None,
    hosts_per_worker: int | None = None,
    least: int = 1,
) -> HostClaim | None:
    """Claim the next free host of the run for `worker`, with at most `limit` of its pending
    targets (all when None); None when no host is free now.

    A host is free when pending (and past the *not before* it was handed back with), or
    claimed by a worker whose lease has expired. Expired leases go first, then the pending
    host with the most targets left (longest work first: the largest hosts, which bound the
    run's time, never wait behind small ones, and hosts of equal size take turns and finish
    together). A free host with no target left to do is marked done on the way and the next
    one is tried.

    With `hosts_per_worker` (the hosts a worker holds at once) the slice shrinks as the run
    nears its end, guided self-scheduling: the run's pending targets shared among every
    worker's hosts, between `least` and `limit`. Early on slices are full; the last ones are
    small, so that no worker is left alone with a long slice while the others have nothing.
    """
    while True:
        moment = now or utcnow()
        with engine.begin() as conn:
            row = _free_host(conn, run_id, moment)
            if row is None:
                return None
            host_row_id, host, status, pace_ms = row
            size = limit
            if limit is not None and hosts_per_worker:
                size = _guided_size(conn, run_id, worker, limit, hosts_per_worker, least)
            targets = conn.execute(
                select(RunTargetRow.endpoint_id, RunTargetRow.started_at)
                .where(
                    RunTargetRow.run_id == run_id,
                    RunTargetRow.host == host,
                    RunTargetRow.status == TargetStatus.PENDING.value,
                )
                .order_by(RunTargetRow.id)
                .limit(size)
            ).all()
            if not targets:
                conn.execute(
                    update(RunHostRow)
                    .where(RunHostRow.id == host_row_id)
                    .values(status=HostStatus.DONE.value, finished_at=moment, lease_until=None)
                )
                continue
            conn.execute(
                update(RunHostRow)
                .where(RunHostRow.id == host_row_id)
                .values(
                    status=HostStatus.CLAIMED.value,
                    worker=worker[:128],
                    lease_until=moment + lease,
                    claims=RunHostRow.claims + 1,
                )
            )
            return HostClaim(
                host=host,
                endpoint_ids=[t.endpoint_id for t in targets],
                started_ids=[t.endpoint_id for t in targets if t.started_at is not None],
                reclaimed=status == HostStatus.CLAIMED.value,
                pace_s=None if pace_ms is None else pace_ms / 1000,
            )


def _free_host(
    conn: Connection, run_id: int, moment: datetime
) -> Row[int, str, str, float | None] | None:
    """The run's next free host (id, host, status, pace_ms): a lease that expired first (its
    worker is gone), else the pending host past its *not before* with the most targets left;
    both read from the (run_id, status, pending_targets, id) index."""
    columns = (RunHostRow.id, RunHostRow.host, RunHostRow.status, RunHostRow.pace_ms)
    expired = (
        select(*columns)
        .where(
            RunHostRow.run_id == run_id,
            RunHostRow.status == HostStatus.CLAIMED.value,
            RunHostRow.lease_until < moment,
        )
        .limit(1)
    )
    pending = (
        select(*columns)
        .where(
            RunHostRow.run_id == run_id,
            RunHostRow.status == HostStatus.PENDING.value,
            or_(RunHostRow.lease_until.is_(None), RunHostRow.lease_until <= moment),
        )
        .order_by(RunHostRow.pending_targets.desc(), RunHostRow.id)
        .limit(1)
    )
    for query in (expired, pending):
        if conn.dialect.name == "postgresql":
            query = query.with_for_update(skip_locked=True)
        row = conn.execute(query).first()
        if row is not None:
            return row
    return None


def _guided_size(
    conn: Connection, run_id: int, worker: str, limit: int, hosts_per_worker: int, least: int
) -> int:
    """A slice of the run's pending targets spread over every worker's hosts, in
    [`least`, `limit`]; the pending targets are counted only up to where a full slice is
    due, so a claim reads at most that many index entries."""
    others = conn.scalar(
        select(func.count(func.distinct(RunHostRow.worker))).where(
            RunHostRow.run_id == run_id,
            RunHostRow.status == HostStatus.CLAIMED.value,
            RunHostRow.worker != worker[:128],
        )
    )
    slots = (int(others or 0) + 1) * max(1, hosts_per_worker)
    cap = limit * slots
    pending = (
        select(RunTargetRow.host)  # in the index: the count reads no table row
        .where(RunTargetRow.run_id == run_id, RunTargetRow.status == TargetStatus.PENDING.value)
        .limit(cap)
        .subquery()
    )
    remaining = int(conn.scalar(select(func.count()).select_from(pending)) or 0)
    share = -(-remaining // slots)  # ceil
    floor = min(max(1, least), limit)
    return max(floor, min(limit, share))


def renew_leases(
    engine: Engine,
    run_id: int,
    worker: str,
    hosts: list[str],
    *,
    lease: timedelta = DEFAULT_LEASE,
    now: datetime | None = None,
) -> list[str]:
    """Extend the leases `worker` holds on `hosts`; return the hosts it no longer holds.

    A host comes back when its lease expired and another worker claimed it meanwhile: the
    caller should stop starting targets there (the new holder redoes them).
    """
    if not hosts:
        return []
    moment = now or utcnow()
    with engine.begin() as conn:
        conn.execute(
            update(RunHostRow)
            .where(
                RunHostRow.run_id == run_id,
                RunHostRow.worker == worker[:128],
                RunHostRow.status == HostStatus.CLAIMED.value,
                RunHostRow.host.in_(hosts),
            )
            .values(lease_until=moment + lease)
        )
        still = set(
            conn.scalars(
                select(RunHostRow.host).where(
                    RunHostRow.run_id == run_id,
                    RunHostRow.worker == worker[:128],
                    RunHostRow.status == HostStatus.CLAIMED.value,
                    RunHostRow.host.in_(hosts),
                )
            )
        )
    return [h for h in hosts if h not in still]


def release_host(
    engine: Engine,
    run_id: int,
    host: str,
    worker: str,
    *,
    claimed: Collection[int] | None = None,
    not_before: datetime | None = None,
    pace_s: float | None = None,
) -> bool:
    """Hand back a host `worker` holds once the targets it claimed (`claimed`; every target of
    the host when None) are no longer pending: done when nothing of the host is left, else
    pending again, claimable by any worker from `not_before` on, at the pace `pace_s` (seconds
    between request starts) this worker came to.

    Returns False (and leaves the claim) while a claimed target is pending, e.g. because its
    final state has not been written yet: the lease then decides who finishes it.
    """
    pending = and_(
        RunTargetRow.run_id == run_id,
        RunTargetRow.host == host,
        RunTargetRow.status == TargetStatus.PENDING.value,
    )
    with engine.begin() as conn:
        mine = pending if claimed is None else and_(pending, RunTargetRow.endpoint_id.in_(claimed))
        if conn.scalar(select(func.count()).select_from(RunTargetRow).where(mine)):
            return False
        left = (
            int(conn.scalar(select(func.count()).select_from(RunTargetRow).where(pending)) or 0)
            if claimed is not None
            else 0
        )
        values: dict[str, object] = (
            {
                "status": HostStatus.PENDING.value,
                "lease_until": not_before,
                "pace_ms": None if pace_s is None else round(pace_s * 1000, 3),
                "pending_targets": left,
            }
            if left
            else {
                "status": HostStatus.DONE.value,
                "finished_at": utcnow(),
                "lease_until": None,
                "pending_targets": 0,
            }
        )
        result = conn.execute(
            update(RunHostRow)
            .where(
                RunHostRow.run_id == run_id,
                RunHostRow.host == host,
                RunHostRow.worker == worker[:128],
                RunHostRow.status == HostStatus.CLAIMED.value,
            )
            .values(**values)
        )
        return bool(result.rowcount)


def queue_state(engine: Engine, run_id: int) -> QueueState:
    """Counts of the run's hosts by state and the earliest expiry of a held lease."""
    with engine.connect().execution_options(**{READ_ONLY: True}) as conn:
        rows = conn.execute(
            select(RunHostRow.status, func.count(), func.min(RunHostRow.lease_until))
            .where(RunHostRow.run_id == run_id)
            .group_by(RunHostRow.status)
        ).all()
    counts = {status: (count, expiry) for status, count, expiry in rows}
    held, expiry = counts.get(HostStatus.CLAIMED.value, (0, None))
    pending, next_free = counts.get(HostStatus.PENDING.value, (0, None))
    return QueueState(
        pending=pending,
        held=held,
        done=counts.get(HostStatus.DONE.value, (0, None))[0],
        next_expiry=expiry,
        next_free=next_free,
    )


def complete_if_finished(engine: Engine, run_id: int, *, note: str | None = None) -> bool:
    """Mark the run completed when every host and target is finished; True for the caller
    that did it (exactly one of the workers racing here wins)."""
    with engine.begin() as conn:
        unfinished_hosts = conn.scalar(
            select(func.count())
            .select_from(RunHostRow)
            .where(RunHostRow.run_id == run_id, RunHostRow.status != HostStatus.DONE.value)
        )
        pending_targets = conn.scalar(
            select(func.count())
            .select_from(RunTargetRow)
            .where(
                RunTargetRow.run_id == run_id,
                RunTargetRow.status == TargetStatus.PENDING.value,
            )
        )
        if unfinished_hosts or pending_targets:
            return False
        values: dict[str, object] = {"status": RunStatus.COMPLETED.value, "finished_at": utcnow()}
        if note is not None:
            values["note"] = note[:2000]
        result = conn.execute(
            update(ProbeRunRow)
            .where(ProbeRunRow.id == run_id, ProbeRunRow.status == RunStatus.RUNNING.value)
            .values(**values)
        )
        return bool(result.rowcount)


def return_claims(engine: Engine, run_id: int, worker: str) -> int:
    """Give back every host `worker` still holds (it is stopping): they become pending at once
    instead of waiting for the lease to expire. Returns how many were given back."""
    with engine.begin() as conn:
        result = conn.execute(
            update(RunHostRow)
            .where(
                RunHostRow.run_id == run_id,
                RunHostRow.worker == worker[:128],
                RunHostRow.status == HostStatus.CLAIMED.value,
            )
            .values(status=HostStatus.PENDING.value, lease_until=None)
        )
        return int(result.rowcount or 0)


def release_dead_claims(engine: Engine, run_id: int) -> int:
    """Expire the claims of workers on this machine whose process is gone (a resume after a
    crash need not wait for their leases). Returns how many hosts were freed."""
    prefix = f"{this_host()[:80]}:"
    freed = 0
    with engine.begin() as conn:
        rows = conn.execute(
            select(RunHostRow.id, RunHostRow.worker).where(
                RunHostRow.run_id == run_id,
                RunHostRow.status == HostStatus.CLAIMED.value,
                RunHostRow.worker.startswith(prefix),
            )
        ).all()
        dead = [row_id for row_id, name in rows if not _worker_alive(name, prefix)]
        if dead:
            result = conn.execute(
                update(RunHostRow)
                .where(RunHostRow.id.in_(dead), RunHostRow.status == HostStatus.CLAIMED.value)
                .values(status=HostStatus.PENDING.value, lease_until=None)
            )
            freed = int(result.rowcount or 0)
    return freed


def _worker_alive(name: str | None, prefix: str) -> bool:
    pid_text = (name or "")[len(prefix) :].split(":", 1)[0]
    return pid_text.isdigit() and process_alive(int(pid_text))


def reopen_targets(engine: Engine, run_id: int, endpoint_ids: list[int]) -> None:
    """Make these targets of a resumed run pending again, with their hosts (failed targets are
    redone on resume)."""
    if not endpoint_ids:
        return
    with engine.begin() as conn:
        conn.execute(
            update(RunTargetRow)
            .where(RunTargetRow.run_id == run_id, RunTargetRow.endpoint_id.in_(endpoint_ids))
            .values(status=TargetStatus.PENDING.value, finished_at=None, error=None)
        )
        hosts = select(RunTargetRow.host).where(
            RunTargetRow.run_id == run_id, RunTargetRow.endpoint_id.in_(endpoint_ids)
        )
        conn.execute(
            update(RunHostRow)
            .where(
                RunHostRow.run_id == run_id,
                RunHostRow.host.in_(hosts),
                RunHostRow.status == HostStatus.DONE.value,
            )
            .values(status=HostStatus.PENDING.value, finished_at=None)
        )
        conn.execute(
            update(RunHostRow)
            .where(RunHostRow.run_id == run_id, RunHostRow.host.in_(hosts))
            .values(
                pending_targets=select(func.count())
                .select_from(RunTargetRow)
                .where(
                    RunTargetRow.run_id == run_id,
                    RunTargetRow.host == RunHostRow.host,
                    RunTargetRow.status == TargetStatus.PENDING.value,
                )
                .scalar_subquery()
            )
        )


@dataclass(frozen=True, slots=True)
class RunTally:
    """A shared run as the store has it: targets by status and hosts per worker."""

    targets: dict[str, int]
    hosts_by_worker: dict[str, int]


def run_tally(engine: Engine, run_id: int) -> RunTally:
    """Count the run's targets by status and the hosts each worker handed back or holds."""
    with engine.connect() as conn:
        targets = {
            status: int(count)
            for status, count in conn.execute(
                select(RunTargetRow.status, func.count())
                .where(RunTargetRow.run_id == run_id)
                .group_by(RunTargetRow.status)
            )
        }
        workers = {
            str(worker): int(count)
            for worker, count in conn.execute(
                select(RunHostRow.worker, func.count())
                .where(RunHostRow.run_id == run_id, RunHostRow.worker.is_not(None))
                .group_by(RunHostRow.worker)
            )
        }
    return RunTally(targets, workers)
