"""The `probe` command: the root of the command line, its sub-commands loaded when invoked.

Each command lives in its own module of :mod:`probe.cli` and is imported only when it runs (or
when its help is shown), so ``probe --help`` and ``probe check --help`` start without importing
SQLAlchemy, Alembic, fhir.resources or the fleet. Exit codes: 0 success, 1 a failed gate or
required check, 2 usage or configuration error, 3 the run lock is held, 4 the store is
unusable, 130 interrupted.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

import click
import typer
from typer.core import TyperGroup


@dataclass(frozen=True, slots=True)
class LazyCommand:
    """Where a sub-command is defined: a module of probe.cli and the function or Typer in it."""

    module: str
    attribute: str


#: Every sub-command, in the order ``probe --help`` lists them.
COMMANDS: dict[str, LazyCommand] = {
    "run": LazyCommand("probe.cli.run", "run_command"),
    "history": LazyCommand("probe.cli.history", "history_command"),
    "score": LazyCommand("probe.cli.score", "score_command"),
    "report": LazyCommand("probe.cli.report", "report_command"),
    "prerelease": LazyCommand("probe.cli.prerelease", "prerelease_command"),
    "check": LazyCommand("probe.cli.check", "check_command"),
    "sync": LazyCommand("probe.cli.sync", "sync_command"),
    "demo": LazyCommand("probe.cli.demo", "demo_command"),
    "db": LazyCommand("probe.cli.db", "db_app"),
    "fleet": LazyCommand("probe.cli.fleet", "fleet_app"),
    "directory": LazyCommand("probe.cli.directory", "directory_app"),
    "import": LazyCommand("probe.cli.import_log", "import_app"),
    "drift": LazyCommand("probe.cli.drift", "drift_app"),
}


def load_command(name: str) -> click.Command:
    """The click command of sub-command `name` (its module imported now)."""
    where = COMMANDS[name]
    target = getattr(importlib.import_module(where.module), where.attribute)
    if isinstance(target, typer.Typer):
        command = typer.main.get_command(target)
    else:
        single = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
        single.command(name)(target)
        command = typer.main.get_command(single)
    command.name = name
    return command


class LazyGroup(TyperGroup):
    """A command group whose sub-commands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        """The sub-command names, in help order."""
        return [*COMMANDS, *(n for n in super().list_commands(ctx) if n not in COMMANDS)]

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        """The sub-command `cmd_name`, imported and cached; None when there is no such command."""
        if cmd_name not in self.commands and cmd_name in COMMANDS:
            self.commands[cmd_name] = load_command(cmd_name)
        return super().get_command(ctx, cmd_name)


app = typer.Typer(
    name="probe",
    cls=LazyGroup,
    help="Conformance prober for US payer FHIR Patient Access APIs (CMS-9115-F).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _root() -> None:
    """Conformance prober for US payer FHIR Patient Access APIs (CMS-9115-F)."""


def main() -> None:
    """Console-script entry point."""
    app()
