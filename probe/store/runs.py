"""The life of a probe run: start, finish, targets for resume, and cleaning up after crashes.

A run row records the host and pid of the process running it. A run still marked ``running``
whose process is gone (same host) or that is older than a threshold (another host, where the
pid cannot be checked) is marked ``interrupted`` by :func:`mark_stale_runs_interrupted`.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, insert, select, update

from probe import __version__
from probe.store.dialect import upsert
from probe.store.errors import StoreError
from probe.store.sanitize import scrub, strip_text_secrets
from probe.store.tables import ProbeRunRow, RunKind, RunStatus, RunTargetRow, TargetStatus, utcnow

#: A running run on another host is presumed dead once this old.
DEFAULT_STALE_AGE = timedelta(hours=24)


def this_host() -> str:
    """This machine's host name as stored in run and lock rows."""
    return socket.gethostname()[:255]


def process_alive(pid: int) -> bool:
    """True when a process with this pid exists on this host."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True


def start_run(
    engine: Engine,
    kind: RunKind | str,
    config: Mapping[str, Any] | None = None,
    *,
    note: str | None = None,
) -> int:
    """Record a new run as ``running`` by this host and process; return its id.

    `config` is stored with secret-named keys redacted and URLs stripped of secrets.
    """
    values: dict[str, Any] = {
        "kind": str(RunKind(kind)),
        "started_at": utcnow(),
        "status": RunStatus.RUNNING.value,
        "probe_version": __version__[:64],
        "host": this_host(),
        "pid": os.getpid(),
        "config": scrub(dict(config)) if config is not None else None,
        "note": strip_text_secrets(note) if note is not None else None,
    }
    with engine.begin() as conn:
        result = conn.execute(insert(ProbeRunRow).returning(ProbeRunRow.id), values)
        return int(result.scalar_one())


def finish_run(
    engine: Engine,
    run_id: int,
    status: RunStatus | str = RunStatus.COMPLETED,
    *,
    note: str | None = None,
) -> None:
    """Record the end of a run with its final status (not ``running``)."""
    final = RunStatus(status)
    if final is RunStatus.RUNNING:
        raise ValueError("a run cannot finish with status 'running'")
    values: dict[str, Any] = {"status": final.value, "finished_at": utcnow()}
    if note is not None:
        values["note"] = strip_text_secrets(note)
    with engine.begin() as conn:
        result = conn.execute(update(ProbeRunRow).where(ProbeRunRow.id == run_id).values(**values))
        if result.rowcount == 0:
            raise StoreError(f"no run with id {run_id}")


def resume_run(engine: Engine, run_id: int) -> None:
    """Take over an interrupted (or failed) run: mark it running again by this process."""
    with engine.begin() as conn:
        result = conn.execute(
            update(ProbeRunRow)
            .where(ProbeRunRow.id == run_id, ProbeRunRow.status != RunStatus.COMPLETED.value)
            .values(
                status=RunStatus.RUNNING.value, finished_at=None, host=this_host(), pid=os.getpid()
            )
        )
        if result.rowcount == 0:
            raise StoreError(f"run {run_id} does not exist or has already completed")


def latest_resumable_run(engine: Engine, kind: RunKind | str) -> int | None:
    """The newest run of this kind that was interrupted before finishing, if any."""
    with engine.connect() as conn:
        return conn.scalar(
            select(ProbeRunRow.id)
            .where(
                ProbeRunRow.kind == str(RunKind(kind)),
                ProbeRunRow.status == RunStatus.INTERRUPTED.value,
            )
            .order_by(ProbeRunRow.started_at.desc(), ProbeRunRow.id.desc())
            .limit(1)
        )


def mark_stale_runs_interrupted(
    engine: Engine, *, max_age: timedelta = DEFAULT_STALE_AGE, now: datetime | None = None
) -> list[int]:
    """Mark ``interrupted`` every running run whose process is gone; return their ids.

    On this host a run is stale when its pid no longer exists. On another host, where the pid
    means nothing, it is stale once older than `max_age`.
    """
    moment = now or utcnow()
    host = this_host()
    stale: list[int] = []
    with engine.begin() as conn:
        rows = conn.execute(
            select(ProbeRunRow.id, ProbeRunRow.host, ProbeRunRow.pid, ProbeRunRow.started_at).where(
                ProbeRunRow.status == RunStatus.RUNNING.value
            )
        ).all()
        for run_id, run_host, pid, started_at in rows:
            # A pid only means something on its own host; elsewhere fall back to the run's age.
            same_host = run_host == host
            if (same_host and not process_alive(pid)) or (
                not same_host and started_at < moment - max_age
            ):
                stale.append(run_id)
        if stale:
            conn.execute(
                update(ProbeRunRow)
                .where(ProbeRunRow.id.in_(stale), ProbeRunRow.status == RunStatus.RUNNING.value)
                .values(
                    status=RunStatus.INTERRUPTED.value,
                    finished_at=moment,
                    note=f"marked interrupted by {host}: process gone",
                )
            )
    return stale


def register_targets(engine: Engine, run_id: int, endpoint_ids: Iterable[int]) -> None:
    """Add the endpoints a run will probe as ``pending`` (existing targets are left alone)."""
    rows = [
        {"run_id": run_id, "endpoint_id": eid, "status": TargetStatus.PENDING.value}
        for eid in dict.fromkeys(endpoint_ids)
    ]
    if not rows:
        return
    with engine.begin() as conn:
        stmt = upsert(conn, RunTargetRow).on_conflict_do_nothing(
            index_elements=["run_id", "endpoint_id"]
        )
        conn.execute(stmt, rows)


def run_has_targets(engine: Engine, run_id: int) -> bool:
    """True when the run's targets were registered (a run killed at its start has none)."""
    with engine.connect() as conn:
        found = conn.scalar(select(RunTargetRow.id).where(RunTargetRow.run_id == run_id).limit(1))
    return found is not None


def unfinished_targets(engine: Engine, run_id: int) -> list[int]:
    """Endpoint ids of a run's targets not yet ``done`` (what a resumed run must redo)."""
    with engine.connect() as conn:
        return list(
            conn.scalars(
                select(RunTargetRow.endpoint_id)
                .where(
                    RunTargetRow.run_id == run_id, RunTargetRow.status != TargetStatus.DONE.value
                )
                .order_by(RunTargetRow.id)
            )
        )
