"""The observation store: what probe saw, in SQLite or PostgreSQL, kept across runs.

Typical use (synchronous; async code wraps calls in ``anyio.to_thread.run_sync``)::

    store = open_store(url)                      # migrates an empty database to head
    ids = store.upsert_directory(directory)      # endpoint ids by Target.key
    with store.run_lock("nightly"):
        run_id = store.start_run(RunKind.NIGHTLY, {"concurrency": 8})
        with store.writer(run_id) as writer:
            writer.add_exchanges(endpoint_id, report.exchanges)
            writer.add_check_results(endpoint_id, report.results)
            writer.mark_target(endpoint_id, TargetStatus.DONE)
        store.finish_run(run_id, RunStatus.COMPLETED)
"""

from probe.store.catalog import ensure_endpoint, find_endpoint, upsert_directory
from probe.store.engine import (
    DEFAULT_URL,
    ENV_VAR,
    create_store_engine,
    downgrade,
    head_revision,
    open_store,
    resolve_url,
    revision_state,
    safe_url,
    upgrade,
)
from probe.store.errors import RunLockHeld, StoreError
from probe.store.handle import Store
from probe.store.locks import RunLock, acquire_run_lock
from probe.store.queries import (
    check_history,
    document_body,
    document_history,
    request_stats_by_step,
    run_history,
)
from probe.store.runs import (
    finish_run,
    latest_resumable_run,
    mark_stale_runs_interrupted,
    register_targets,
    resume_run,
    start_run,
    unfinished_targets,
)
from probe.store.sanitize import content_hash, strip_url_secrets
from probe.store.tables import DocumentKind, RunKind, RunStatus, TargetStatus
from probe.store.writer import StoreWriter, WriterStats

__all__ = [
    "DEFAULT_URL",
    "ENV_VAR",
    "DocumentKind",
    "RunKind",
    "RunLock",
    "RunLockHeld",
    "RunStatus",
    "Store",
    "StoreError",
    "StoreWriter",
    "TargetStatus",
    "WriterStats",
    "acquire_run_lock",
    "check_history",
    "content_hash",
    "create_store_engine",
    "document_body",
    "document_history",
    "downgrade",
    "ensure_endpoint",
    "find_endpoint",
    "finish_run",
    "head_revision",
    "latest_resumable_run",
    "mark_stale_runs_interrupted",
    "open_store",
    "register_targets",
    "request_stats_by_step",
    "resolve_url",
    "resume_run",
    "revision_state",
    "run_history",
    "safe_url",
    "start_run",
    "strip_url_secrets",
    "unfinished_targets",
    "upgrade",
    "upsert_directory",
]
