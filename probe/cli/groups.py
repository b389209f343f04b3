"""The command group every `probe` group uses: a --help that costs nothing when not given, and
option values converted without pydantic when they are plain (probe.cli.coercion)."""

from __future__ import annotations

from typer._click.core import Command, Context  # typer 0.29 carries its own click
from typer._click.formatting import HelpFormatter
from typer.core import TyperGroup, TyperOption


class HelpGroup(TyperGroup):
    """A typer group whose --help option defaults to False."""

    def get_help_option(self, ctx: Context) -> TyperOption | None:
        """The --help option, defaulting to False: typer coerces a missing (None) value through
        pydantic, an import of about 0.1 s that every sub-command would pay at start-up."""
        option = super().get_help_option(ctx)
        if option is not None and option.default is None:
            option.default = False
        return option

    def get_command(self, ctx: Context, cmd_name: str) -> Command | None:
        """The sub-command `cmd_name`, its plain option values converted without pydantic."""
        command = super().get_command(ctx, cmd_name)
        if command is None:
            return None
        try:
            from probe.cli.coercion import plain_values
        except ImportError:  # a typer without the internals it uses: typer converts, as before
            return command
        return plain_values(command)

    def format_commands(self, ctx: Context, formatter: HelpFormatter) -> None:
        """The sub-commands, each with its whole summary (wrapped, never cut with "...")."""
        rows = []
        for name in self.list_commands(ctx):
            command = self.get_command(ctx, name)
            if command is not None and not command.hidden:
                rows.append((name, command.get_short_help_str(limit=1000)))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)
