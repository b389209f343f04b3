"""`probe directory ...`: validate an endpoints file, seed it from payers.csv, import the CMS
State Medicaid Agency endpoint directory.

Exit codes: 0 success (an import that had to skip values still succeeds; they are reported on
stderr), 2 an invalid endpoints file or an unreadable/unrecognisable input. No tracebacks.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from probe.cli.fail import fail
from probe.cli.groups import HelpGroup

if TYPE_CHECKING:
    from probe.directory.records import ImportIssue

directory_app = typer.Typer(
    cls=HelpGroup,
    help="The payer directory (endpoints.yaml): validate it, seed it, import the CMS directory.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _stderr() -> Console:
    return Console(stderr=True, highlight=False, soft_wrap=False)


def issues_table(issues: Sequence[ImportIssue], title: str) -> Table:
    """The report of unusable values as a rich table (values shown literally, never as markup)."""
    from probe.directory.cells import one_line

    table = Table(title=title, title_justify="left", show_lines=False, expand=False)
    for name, style in (
        ("Row", "cyan"),
        ("Line", "dim"),
        ("Payer / state", ""),
        ("Column", "dim"),
        ("Value", "yellow"),
        ("Reason", ""),
        ("Effect", ""),
    ):
        table.add_column(name, style=style, overflow="fold")
    for issue in issues:
        effect = Text("value ignored") if issue.row_imported else Text("row not imported", "red")
        table.add_row(
            str(issue.row),
            str(issue.line),
            Text(issue.payer),
            Text(issue.column),
            Text(one_line(issue.value, 60) or "(empty)"),
            Text(issue.reason),
            effect,
        )
    return table


def _write(text: str, out: Path | None) -> None:
    if out is None:
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    try:
        out.write_text(text, encoding="utf-8")
    except OSError as exc:
        fail(f"cannot write {out}: {exc.strerror or exc}")


@directory_app.command()
def validate(
    file: Annotated[Path, typer.Argument(help="the endpoints file, e.g. endpoints.yaml")],
) -> None:
    """Validate an endpoints file: every problem by file, line and field (exit 2), or a summary."""
    from probe.directory.schema import DirectoryError, Environment, load_directory

    try:
        directory = load_directory(file)
    except DirectoryError as exc:
        for problem in exc.problems:
            typer.echo(problem, err=True)
        typer.echo(f"{file}: {len(exc.problems)} problem(s)", err=True)
        raise typer.Exit(2) from None
    endpoints = [e for p in directory.payers for e in p.endpoints]
    sandbox = sum(
        (e.environment is Environment.SANDBOX) + (e.sandbox_url is not None) for e in endpoints
    )
    with_credentials = sum(e.credentials is not None for e in endpoints)
    typer.echo(
        f"{file}: valid: {len(directory.payers)} payers, {len(endpoints)} endpoints, "
        f"{sandbox} sandbox URLs, {with_credentials} with credentials"
    )


@directory_app.command()
def seed(
    csv_file: Annotated[
        Path, typer.Argument(metavar="CSV", help="payers.csv (payer, base_url, sandbox_url, ...)")
    ],
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="write the YAML here (default: stdout)")
    ] = None,
) -> None:
    """Seed an endpoints file from payers.csv: one entry per payer, rows merged (deterministic)."""
    from probe.directory.records import ImportFormatError
    from probe.directory.seed import render_seed, seed_from_csv

    try:
        result = seed_from_csv(csv_file)
        text = render_seed(result, str(csv_file))
    except ImportFormatError as exc:
        fail(str(exc))
    except ValueError as exc:  # an entry the schema refuses: a bug here, but never a traceback
        fail(f"{csv_file}: cannot build a valid directory: {exc}")
    if result.issues:
        _stderr().print(issues_table(result.issues, f"Values of {csv_file} not used"))
    _write(text, out)
    if out is not None:
        for line in result.summary(str(csv_file)):
            typer.echo(line)
        typer.echo(f"wrote {out}")


@directory_app.command("import-cms")
def import_cms_command(
    csv_file: Annotated[
        Path,
        typer.Argument(metavar="FILE", help="the CMS SMA endpoint directory CSV, as published"),
    ],
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="write the YAML here (default: stdout)")
    ] = None,
) -> None:
    """Import the CMS State Medicaid Agency endpoint directory; report every unusable value.

    The YAML goes to --out (or stdout, where the summary becomes its header comment); the report
    of unusable values goes to stderr as a table; with --out the summary goes to stdout.
    """
    from probe.directory.cms import import_cms, render_cms
    from probe.directory.records import ImportFormatError

    try:
        result = import_cms(csv_file)
        text = render_cms(result, str(csv_file))
    except ImportFormatError as exc:
        fail(str(exc))
    except ValueError as exc:  # an entry the schema refuses: a bug here, but never a traceback
        fail(f"{csv_file}: cannot build a valid directory: {exc}")
    if result.issues:
        _stderr().print(issues_table(result.issues, f"Values of {csv_file} not used"))
    _write(text, out)
    if out is not None:
        for line in result.summary(str(csv_file)):
            typer.echo(line)
        typer.echo(f"wrote {out}")
