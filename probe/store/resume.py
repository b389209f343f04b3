"""Clearing a target's partial observations before a resumed run redoes it (no duplicates)."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import Engine, delete

from probe.store.tables import CheckResultRow, DocumentSightingRow, HttpRequestRow, SyncJobRow


def clear_target_observations(engine: Engine, run_id: int, endpoint_ids: Iterable[int]) -> int:
    """Delete what a run stored for these endpoints; returns the number of rows deleted."""
    ids = list(dict.fromkeys(endpoint_ids))
    if not ids:
        return 0
    deleted = 0
    with engine.begin() as conn:
        for table in (HttpRequestRow, CheckResultRow, SyncJobRow, DocumentSightingRow):
            result = conn.execute(
                delete(table).where(table.run_id == run_id, table.endpoint_id.in_(ids))
            )
            deleted += result.rowcount or 0
    return deleted
