"""The command group every `probe` group uses: a --help that costs nothing when not given."""

from __future__ import annotations

from typer._click.core import Context  # typer 0.29 carries its own click
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
