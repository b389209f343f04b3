"""`probe drift`: list stored drift events; `probe drift detect RUN`: (re)detect a stored run.

Exit codes: 0 success, 2 bad usage or an unusable database (one line on stderr, never a
traceback). See docs/drift.md.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Annotated, Any

if TYPE_CHECKING:
    from probe.drift.classify import ChangeKind
    from probe.drift.events import DriftEvent
    from probe.drift.notify import NotifyResult
import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from probe.cli.fail import fail
from probe.cli.groups import HelpGroup
from probe.cli.machine import contract_json
from probe.cli.options import DbOption
from probe.cli.reading import read_store
from probe.cli.safe_text import cell, line
from probe.cli.width import fit_columns, output_console

KIND_STYLE = {"breaking": "bold red", "notable": "yellow", "cosmetic": "dim"}
#: The columns a narrow screen gives up, least useful first (the run and payer stay).
NARROW_DROPS = ("detected", "endpoint", "reason")
_RELATIVE = re.compile(r"^\s*(\d+)\s*([dhw])\s*$", re.IGNORECASE)

drift_app = typer.Typer(
    cls=HelpGroup,
    name="drift",
    help="Drift events: what changed at each endpoint between nightly runs (docs/drift.md).",
    invoke_without_command=True,
)
_err = Console(stderr=True, highlight=False)


def parse_since(value: str, now: datetime | None = None) -> datetime:
    """`--since`: an ISO date (UTC midnight), an ISO datetime, or a span ago (7d, 12h, 2w)."""
    now = now or datetime.now(UTC)
    relative = _RELATIVE.match(value)
    if relative:
        count, unit = int(relative.group(1)), relative.group(2).lower()
        span = {
            "h": timedelta(hours=count),
            "d": timedelta(days=count),
            "w": timedelta(weeks=count),
        }
        return now - span[unit]
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        raise ValueError(
            f"--since takes a date (2025-06-01), a date and time (2025-06-01T08:00:00Z) or a "
            f"span ago (7d, 12h, 2w), not {value!r}"
        ) from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def parse_kind(value: str | None) -> ChangeKind | None:
    """`--kind`: the least severe kind to list (breaking, notable or cosmetic)."""
    from probe.drift.classify import ChangeKind

    if value is None:
        return None
    try:
        return ChangeKind(value.lower())
    except ValueError:
        raise ValueError(f"--kind must be breaking, notable or cosmetic, not {value!r}") from None


def _short(value: Any, width: int = 60) -> str:
    if value is None:
        return "—"
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return text if len(text) <= width else text[: width - 1] + "…"


def events_table(events: Sequence[DriftEvent], title: str = "drift events") -> Table:
    """A rich table of drift events: run, payer, endpoint, kind, change, before → after, reason."""
    from probe.drift.classify import counts_by_kind

    counts = counts_by_kind(events)
    caption = ", ".join(f"{n} {k}" for k, n in counts.items())
    table = Table(title=title, caption=f"{len(events)} event(s): {caption}")
    table.add_column("detected", no_wrap=True)
    table.add_column("run", justify="right")
    table.add_column("payer", min_width=10)
    table.add_column("endpoint", overflow="fold", min_width=20)
    table.add_column("kind", no_wrap=True)
    table.add_column("change", overflow="fold", min_width=24)
    table.add_column("before → after", overflow="fold", min_width=20)
    table.add_column("reason", overflow="fold", min_width=16)
    for e in events:
        table.add_row(
            e.detected_at.strftime("%Y-%m-%d %H:%M"),
            f"{e.run_id}" + (f" (vs {e.previous_run_id})" if e.previous_run_id else ""),
            cell(e.payer),
            cell(e.base_url),
            Text(str(e.kind), style=KIND_STYLE[str(e.kind)]),
            cell(e.change_id),
            cell(f"{_short(e.before)} → {_short(e.after)}"),
            cell(e.reason),
        )
    return table


@drift_app.callback()
def drift_command(
    ctx: typer.Context,
    since: Annotated[
        str | None, typer.Option(help="only events detected since: 2025-06-01, 7d, 12h")
    ] = None,
    db: DbOption = None,
    output_format: Annotated[str, typer.Option("--format", help="table or json")] = "table",
    payer: Annotated[
        list[str] | None, typer.Option("--payer", help="only this payer (repeatable)")
    ] = None,
    kind: Annotated[
        str | None, typer.Option(help="least severe kind listed: breaking, notable, cosmetic")
    ] = None,
    run: Annotated[int | None, typer.Option(help="only events of this run")] = None,
    limit: Annotated[int | None, typer.Option(min=1, help="at most this many events")] = None,
) -> None:
    """List stored drift events (newest run first, most severe first)."""
    from probe.drift.events import list_drift_events
    from probe.store.errors import StoreError

    if ctx.invoked_subcommand is not None:
        return
    if output_format.lower() not in ("table", "json"):
        fail(f"--format must be table or json, not {output_format!r}")
    try:
        since_at = parse_since(since) if since else None
        min_kind = parse_kind(kind)
    except ValueError as exc:
        fail(str(exc))
    try:
        with read_store(db) as store, store.session() as session:  # never creates a database
            events = list_drift_events(
                session,
                since=since_at,
                run_id=run,
                payers=payer or (),
                min_kind=min_kind,
                limit=limit,
            )
    except StoreError as exc:
        fail(str(exc))
    if output_format.lower() == "json":
        sys.stdout.write(contract_json("drift", {"events": [e.to_json() for e in events]}) + "\n")
        return
    console = output_console()
    if not events:
        console.print(
            "no drift events" + (f" since {since_at:%Y-%m-%d %H:%M} UTC" if since_at else "")
        )
        return
    console.print(fit_columns(events_table(events), console.width, NARROW_DROPS, ("change",)))


@drift_app.command("detect")
def detect_command(
    run_id: Annotated[int, typer.Argument(help="the stored run to compare with its previous run")],
    db: DbOption = None,
    slower_percent: Annotated[
        float, typer.Option(min=0, help="a sync this much slower (median, %) ...")
    ] = 50.0,
    slower_seconds: Annotated[
        float, typer.Option(min=0, help="... and this many seconds slower is notable")
    ] = 2.0,
    notify_webhook_url: Annotated[
        str | None,
        typer.Option("--notify-webhook", help="POST the events found new to this URL (JSON)"),
    ] = None,
) -> None:
    """(Re)detect a stored run's drift: idempotent, only new events are stored and posted."""
    import anyio

    from probe.drift.events import DriftError, detect_drift
    from probe.drift.notify import notify_webhook, validate_webhook_url
    from probe.drift.settings import DriftThresholds
    from probe.store.errors import StoreError

    try:
        webhook = validate_webhook_url(notify_webhook_url) if notify_webhook_url else None
    except ValueError as exc:
        fail(str(exc))
    try:
        with read_store(db) as store:
            detection = detect_drift(store, run_id, DriftThresholds(slower_percent, slower_seconds))
    except (StoreError, DriftError) as exc:
        fail(str(exc))
    console = output_console()
    console.print(line(detection.summary()))
    if detection.events:
        table = events_table(detection.events, f"drift of run {run_id}")
        console.print(fit_columns(table, console.width, NARROW_DROPS, ("change",)))
    if webhook and detection.new_events:
        events = detection.new_events

        async def post() -> NotifyResult:
            return await notify_webhook(webhook, events)

        console.print(line(anyio.run(post).summary()))
