"""Crawl progress: a rich progress bar on a terminal, plain log lines otherwise (cron)."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, TextIO

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from probe.cli.safe_text import cell, safe, safe_markup
from probe.http.redact import redact_url

if TYPE_CHECKING:
    from probe.crawl.crawler import TargetOutcome
    from probe.store.tables import RunStatus


def _describe(outcome: TargetOutcome) -> str:
    t = outcome.target
    if outcome.error and not outcome.error.startswith("endpoint_deadline"):
        return (
            f"{t.payer.name} {t.environment} {redact_url(t.base_url)}: probe error {outcome.error}"
        )
    counts = outcome.status_counts()
    failed = outcome.failed_required
    parts = [
        f"{t.payer.name} {t.environment} {redact_url(t.base_url)}:",
        f"{counts['pass']} pass, {counts['fail']} fail, {counts['warn']} warn",
    ]
    if failed:
        parts.append(f"(required failed: {', '.join(failed[:3])}{'…' if len(failed) > 3 else ''})")
    if outcome.error:  # a bound on the whole endpoint, e.g. endpoint_deadline
        parts.append(outcome.error)
    for s in outcome.syncs:
        duration = f"{s.duration_ms / 1000:.1f}s" if s.duration_ms is not None else "-"
        parts.append(f"sync {s.patient_label} {s.outcome} in {duration}")
    return " ".join(parts)


class LogReporter:
    """One plain, parseable line per event (for cron and systemd journals)."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr

    def _line(self, text: str) -> None:
        stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        self.stream.write(f"{stamp} probe: {safe(text, one_line=True)}\n")
        self.stream.flush()

    def started(self, run_id: int, total: int, resumed: bool) -> None:
        """Log the start of the run."""
        verb = "resuming" if resumed else "starting"
        self._line(f"run={run_id} {verb}: {total} endpoints to probe")

    def target_done(self, outcome: TargetOutcome, done: int, total: int) -> None:
        """Log one finished target."""
        self._line(f"[{done}/{total}] {_describe(outcome)}")

    def finished(self, status: RunStatus, probed: int) -> None:
        """Log the end of the run."""
        self._line(f"run {status}: {probed} endpoints probed")


class RichReporter:
    """A progress bar with counts and ETA on a terminal."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.progress = Progress(
            TextColumn("[bold]probe run"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[last]}"),
            TimeRemainingColumn(),
            console=console,
            transient=True,
        )
        self.task: TaskID | None = None

    def started(self, run_id: int, total: int, resumed: bool) -> None:
        """Show the bar."""
        self.console.print(
            f"run {run_id}: {'resuming' if resumed else 'probing'} {total} endpoints"
        )
        self.progress.start()
        self.task = self.progress.add_task("crawl", total=total, last="")

    def target_done(self, outcome: TargetOutcome, done: int, total: int) -> None:
        """Advance the bar."""
        if self.task is not None:
            name = safe_markup(safe(outcome.target.payer.name, one_line=True)[:30])
            self.progress.update(self.task, advance=1, last=name)

    def finished(self, status: RunStatus, probed: int) -> None:
        """Remove the bar."""
        self.progress.stop()


def reporter_for(console: Console) -> LogReporter | RichReporter:
    """Rich progress on a terminal, log lines when not a TTY (cron)."""
    if console.is_terminal:
        return RichReporter(console)
    return LogReporter()


#: The summary table's columns a narrow screen gives up, least useful first.
SUMMARY_DROPS = ("base URL", "sync", "warn")


def summary_table(outcomes: Sequence[TargetOutcome]) -> Table:
    """The end-of-run table: one row per target, sorted by payer (columns: SUMMARY_DROPS)."""
    table = Table(title="crawl summary")
    table.add_column("payer", min_width=16)
    table.add_column("env")
    table.add_column("base URL", overflow="fold", min_width=24)
    table.add_column("pass", justify="right")
    table.add_column("fail", justify="right")
    table.add_column("warn", justify="right")
    table.add_column("required failures", overflow="fold", min_width=22)
    table.add_column("sync", overflow="fold", min_width=16)
    for o in sorted(outcomes, key=lambda o: (o.target.payer.name, str(o.target.environment))):
        counts = o.status_counts()
        syncs = ", ".join(
            f"{s.outcome} {s.duration_ms / 1000:.1f}s" if s.duration_ms is not None else s.outcome
            for s in o.syncs
        )
        table.add_row(
            cell(o.target.payer.name),
            cell(o.target.environment),
            cell(redact_url(o.target.base_url)),
            str(counts["pass"]),
            str(counts["fail"]),
            str(counts["warn"]),
            cell(o.error or ", ".join(o.failed_required) or "-"),
            cell(syncs or "-"),
        )
    return table
