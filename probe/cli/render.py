"""Rendering reports for people (rich tables) and machines (JSON); no probing logic here."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.console import Console
from rich.table import Table
from rich.text import Text

from probe.cli.machine import contract_json, strict_json
from probe.cli.safe_text import cell, line
from probe.models import Status

if TYPE_CHECKING:
    from probe.models import Report
    from probe.sync.result import SyncResult

STATUS_STYLE = {
    Status.PASS: "green",
    Status.FAIL: "bold red",
    Status.WARN: "yellow",
    Status.SKIP: "dim",
    Status.ERROR: "magenta",
}


def report_json(report: Report) -> str:
    """The report as the ``check`` JSON contract (pretty-printed, strict, strings made safe)."""
    return contract_json("check", report.to_json())


def report_sarif(report: Report) -> str:
    """The report as a SARIF 2.1.0 log (strict JSON, strings made safe)."""
    from probe import __version__
    from probe.contracts.sarif import check_sarif

    return strict_json(check_sarif(report, version=__version__))


def report_table(report: Report) -> Table:
    """A rich table with one row per check: status, id, severity, message."""
    table = Table(
        title=line(f"probe check {report.base_url}"),
        caption=line(_summary_line(report)),
        show_lines=False,
        expand=False,
    )
    table.add_column("status", no_wrap=True)
    table.add_column("check", no_wrap=True)
    table.add_column("severity", no_wrap=True)
    table.add_column("message", overflow="fold")
    for result in report.results:
        table.add_row(
            Text(str(result.status).upper(), style=STATUS_STYLE[result.status]),
            cell(result.id),
            cell(result.spec.severity),
            cell(result.message),
        )
    return table


def _summary_line(report: Report) -> str:
    counts = ", ".join(f"{n} {status}" for status, n in report.summary.items() if n)
    verdict = "FAILED" if report.failed_required else "passed"
    return f"{verdict}: {counts} in {report.duration_ms:.0f} ms"


def print_report(report: Report, console: Console) -> None:
    """Print the report table to `console`."""
    console.print(report_table(report))


def sync_tables(result: SyncResult) -> list[Table]:
    """Rich tables for one sync: headline figures, resources by type, requests by step."""
    head = Table(
        title=line(f"probe sync {result.base_url} patient {result.patient_label}"),
        show_header=False,
    )
    head.add_column("figure")
    head.add_column("value", overflow="fold")
    duration = f"{result.duration_ms:.0f} ms" if result.duration_ms is not None else "-"
    refs = result.references
    rate = f"{refs.rate:.1%}" if refs.rate is not None else "no references"
    head.add_row(
        "outcome",
        cell(result.outcome, style="green" if result.outcome == "completed" else "yellow"),
    )
    head.add_row("duration", duration)
    head.add_row("pages / bytes", f"{result.pages} / {result.bytes}")
    head.add_row(
        "$everything",
        cell(
            f"{result.everything.support_level}"
            + (" (fallback to searches)" if result.everything.fallback_used else "")
        ),
    )
    head.add_row(
        "references",
        f"{refs.found} found, {refs.in_bundle} in bundle, {refs.fetched} fetched, "
        f"{refs.resolved} resolved ({rate}), {refs.other_origin} other origin",
    )
    head.add_row(
        "tokens",
        cell(
            f"{result.tokens.kind}; refresh token issued: {result.tokens.refresh_token_issued}; "
            f"access token lifetime: {result.tokens.access_token_lifetime_s} s"
        ),
    )
    types = Table(title="resources by type")
    types.add_column("type")
    types.add_column("distinct", justify="right")
    types.add_column("invalid (R4)", justify="right")
    for rtype, count in result.resources_by_type.items():
        types.add_row(cell(rtype), str(count), str(result.validation_failures.get(rtype, 0)))
    steps = Table(title="requests by step")
    steps.add_column("step")
    steps.add_column("status: count")
    for step, codes in result.requests_by_step.items():
        steps.add_row(cell(step), cell(", ".join(f"{code}: {n}" for code, n in codes.items())))
    tables = [head, types, steps]
    if result.findings:
        findings = Table(title="findings")
        findings.add_column("code")
        findings.add_column("message", overflow="fold")
        for f in result.findings:
            findings.add_row(cell(f.code), cell(f.message))
        tables.append(findings)
    return tables


def sync_json(result: SyncResult) -> str:
    """One sync as the ``sync`` JSON contract (pretty-printed, strict, strings made safe)."""
    return contract_json("sync", result.to_json())
