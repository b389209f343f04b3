"""The `probe` command: the root of the command line, its sub-commands loaded when invoked.

Each command lives in its own module of :mod:`probe.cli` and is imported only when it runs (or
when its help is shown), so ``probe --help`` and ``probe check --help`` start without importing
SQLAlchemy, Alembic, fhir.resources or the fleet. Exit codes: 0 success, 1 a failed gate or
required check, 2 usage or configuration error, 3 the run lock is held, 4 the store is
unusable, 130 interrupted.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
from dataclasses import dataclass
from typing import Annotated, NoReturn

import typer
from typer._click.core import Command, Context  # typer 0.29 carries its own click
from typer._click.formatting import HelpFormatter
from typer._click.utils import PacifyFlushWrapper
from typer.core import TyperCommand

from probe.cli.groups import HelpGroup
from probe.cli.options_help import polish_help
from probe.cli.quick_exit import end_now_if_asked


@dataclass(frozen=True, slots=True)
class LazyCommand:
    """Where a sub-command is defined (a module of probe.cli and the function or Typer in it) and
    its one-line summary for ``probe --help`` (a test keeps it equal to the command's own)."""

    module: str
    attribute: str
    summary: str


#: Every sub-command, in the order ``probe --help`` lists them.
COMMANDS: dict[str, LazyCommand] = {
    "run": LazyCommand(
        "probe.cli.run",
        "run_command",
        "Crawl every endpoint of a directory into the store (the nightly job), then detect drift.",
    ),
    "history": LazyCommand(
        "probe.cli.history",
        "history_command",
        "Show how an endpoint fared in stored runs, newest first, and when its documents changed.",
    ),
    "score": LazyCommand(
        "probe.cli.score",
        "score_command",
        "Rank payers and vendors on the State of the Payer rubric from stored observations.",
    ),
    "report": LazyCommand(
        "probe.cli.report",
        "report_command",
        "Write a self-contained HTML report: rankings, scorecards with evidence, charts over time.",
    ),
    "prerelease": LazyCommand(
        "probe.cli.prerelease",
        "prerelease_command",
        "Test a release candidate end to end, compare it with production, gate a payer's CI.",
    ),
    "check": LazyCommand(
        "probe.cli.check",
        "check_command",
        "Run the discovery suite against one FHIR base URL.",
    ),
    "authorize": LazyCommand(
        "probe.cli.authorize",
        "authorize_command",
        "Walk the SMART patient authorization in a real browser and report how it ended.",
    ),
    "sync": LazyCommand(
        "probe.cli.sync",
        "sync_command",
        "Sync one test patient ($everything, paging, fallback, references) and print figures.",
    ),
    "demo": LazyCommand(
        "probe.cli.demo",
        "demo_command",
        "Serve simulated payers on loopback, crawl them, print the scores, write the HTML report.",
    ),
    "db": LazyCommand(
        "probe.cli.db",
        "db_app",
        "Create, inspect and migrate the observation database.",
    ),
    "fleet": LazyCommand(
        "probe.cli.fleet",
        "fleet_app",
        "A simulated fleet of payer FHIR servers on loopback (for tests, demos, benchmarks).",
    ),
    "directory": LazyCommand(
        "probe.cli.directory",
        "directory_app",
        "The payer directory (endpoints.yaml): validate it, seed it, import the CMS directory.",
    ),
    "import": LazyCommand(
        "probe.cli.import_log",
        "import_app",
        "Import what probe cannot observe (the authorization log).",
    ),
    "drift": LazyCommand(
        "probe.cli.drift",
        "drift_app",
        "Drift events: what changed at each endpoint between nightly runs (docs/drift.md).",
    ),
}


def load_command(name: str, *, polish: bool = True) -> Command:
    """The click command of sub-command `name` (its module imported now); with `polish`, its
    help made readable (:func:`probe.cli.options_help.polish_help`)."""
    where = COMMANDS[name]
    target = getattr(importlib.import_module(where.module), where.attribute)
    command: Command
    if isinstance(target, typer.Typer):
        command = typer.main.get_group(target)
    else:
        single = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
        single.command(name)(target)
        command = typer.main.get_command(single)
    command.name = name
    return polish_help(command) if polish else command


class LazyGroup(HelpGroup):
    """A command group whose sub-commands are imported on first use.

    Its own help lists the sub-commands from their summaries without importing them (building a
    typer command imports pydantic and each command's options).
    """

    _listing: bool = False

    def format_help(self, ctx: Context, formatter: HelpFormatter) -> None:
        """The group's help, its sub-commands listed by summary."""
        self._listing = True
        try:
            super().format_help(ctx, formatter)
        finally:
            self._listing = False

    def list_commands(self, ctx: Context) -> list[str]:
        """The sub-command names, in help order."""
        return [*COMMANDS, *(n for n in super().list_commands(ctx) if n not in COMMANDS)]

    def get_command(self, ctx: Context, cmd_name: str) -> Command | None:
        """The sub-command `cmd_name`, imported and cached; None when there is no such command."""
        if cmd_name not in self.commands and cmd_name in COMMANDS:
            if self._listing:
                return TyperCommand(cmd_name, help=COMMANDS[cmd_name].summary)
            self.commands[cmd_name] = load_command(cmd_name)
        return super().get_command(ctx, cmd_name)


app = typer.Typer(
    name="probe",
    cls=LazyGroup,
    help="Conformance prober for US payer FHIR Patient Access APIs (CMS-9115-F).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # click's plain help: wrapped at 80 columns, never cut (options_help)
)


def probe_version() -> str:
    """This probe's version, as installed (``0.1.0``)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("probe")
    except PackageNotFoundError:
        return "unknown (not installed)"


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"probe {probe_version()}")
        raise typer.Exit(0)


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            help="Print the version and exit.",
            is_eager=True,
            callback=_print_version,
        ),
    ] = False,
) -> None:
    """Conformance prober for US payer FHIR Patient Access APIs (CMS-9115-F)."""


def _output_closed(code: int = 0) -> NoReturn:
    """The reader of standard output went away (``probe ... | head -1``): not an error. Later
    writes, and the interpreter's last flush, go to /dev/null; exit `code` (0 unless the command
    had already failed)."""
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    sys.exit(code)


def _flush_output(code: int) -> None:
    """Flush standard output now, while a closed pipe can still be told from a failure."""
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        _output_closed(code)
    except (OSError, ValueError):
        pass


def main() -> None:
    """Console-script entry point; a closed pipe on standard output ends it quietly: no
    traceback, no "Broken pipe" message, exit 0."""
    from rich.console import Console

    # rich's own handler exits 1; typer's turns EPIPE into exit 1 behind click's
    # PacifyFlushWrapper; a plain write raises BrokenPipeError: all three end here.
    Console.on_broken_pipe = lambda self: _output_closed()  # type: ignore[method-assign]
    try:
        app()
    except BrokenPipeError:
        _output_closed()
    except SystemExit as done:
        code = done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
        if code == 1 and isinstance(sys.stdout, PacifyFlushWrapper):
            _output_closed()
        _flush_output(code)
        end_now_if_asked(code)  # a one-shot command's work is done: no teardown
        raise
    _flush_output(0)
    end_now_if_asked(0)
