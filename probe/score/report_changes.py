"""Drift events for the HTML score report (``probe report --html``): a "Changes" row per event.

The report's scorecards list ``ReportPayer.changes`` (:class:`probe.score.report_html.ChangeEvent`)
per payer; this turns stored drift events of the scoring window into those rows. Cosmetic
events are left out of the report (``probe drift --kind cosmetic`` lists them).
"""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from probe.drift.classify import ChangeKind
from probe.drift.events import DriftEvent, list_drift_events
from probe.score.inputs import as_utc
from probe.score.report_html import ChangeEvent


def _value(value: Any, width: int = 80) -> str:
    if value is None:
        return "none"
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return text if len(text) <= width else text[: width - 1] + "…"


def change_event(event: DriftEvent) -> ChangeEvent:
    """One drift event as a report row: kind, what changed and why, and its evidence."""
    summary = (
        f"{event.change_id} ({event.environment} {event.base_url}): {event.reason} "
        f"[{_value(event.before)} → {_value(event.after)}]"
    )
    evidence = [f"run:{event.run_id}"]
    if event.previous_run_id is not None:
        evidence.append(f"previous_run:{event.previous_run_id}")
    if event.id is not None:
        evidence.append(f"drift_event:{event.id}")
    return ChangeEvent(event.detected_at, str(event.kind), summary, tuple(evidence))


def report_changes(
    session: Session,
    *,
    since: datetime,
    until: datetime,
    min_kind: ChangeKind = ChangeKind.NOTABLE,
) -> dict[str, list[ChangeEvent]]:
    """Breaking and notable drift events detected in ``[since, until]``, by payer name."""
    out: dict[str, list[ChangeEvent]] = defaultdict(list)
    end = as_utc(until)
    for event in list_drift_events(session, since=as_utc(since), min_kind=min_kind):
        if event.detected_at <= end:
            out[event.payer].append(change_event(event))
    return dict(out)
