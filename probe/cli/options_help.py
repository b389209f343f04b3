"""How options and arguments read in ``--help``: one metavar per option name, plain layout.

typer names a value by its Python type (``<str>``, ``<list[str]>``, ``<float range>``) and lays
help out in rich panels that cut option names and long words at 80 columns
(``--drift-slower-p…``, ``$PROBE_DATABASE_…``). :func:`polish_help` gives every option of a
command the metavar of :data:`METAVARS` (the option's own ``metavar=`` wins; an option not listed
gets a word for its type, never a Python type name), every argument its name in capitals, and
switches the command to click's plain layout, which wraps help text under a long option name
instead of cutting it.
"""

from __future__ import annotations

from typer._click.core import Command, Context  # typer 0.29 carries its own click
from typer.core import TyperArgument, TyperGroup, TyperOption

#: The value an option takes, by option name, as ``--help`` shows it.
METAVARS: dict[str, str] = {
    "--algorithm": "ALG",
    "--as-of": "DATE",
    "--auth-method": "METHOD",
    "--baseline": "URL",
    "--baseline-endpoint": "URL",
    "--baseline-run": "RUN_ID",
    "--breaker-threshold": "N",
    "--browsers": "N",
    "--ca-bundle": "PATH",
    "--check": "CHECK_ID",
    "--client-id": "CLIENT_ID",
    "--client-secret-env": "ENV_VAR",
    "--concurrency": "N",
    "--config": "PATH",
    "--db": "URL",
    "--deadline": "SECONDS",
    "--directory-out": "PATH",
    "--drift-slower-percent": "PERCENT",
    "--drift-slower-seconds": "SECONDS",
    "--endpoint-deadline": "SECONDS",
    "--environment": "ENV",
    "--fail-on": "KIND",
    "--fail-under": "POINTS",
    "--format": "FORMAT",
    "--hosts": "N",
    "--html": "PATH",
    "--junit": "PATH",
    "--key-id": "KID",
    "--kind": "KIND",
    "--label": "LABEL",
    "--limit": "N",
    "--login-recipe": "PATH",
    "--markdown": "PATH",
    "--max-body-mb": "MIB",
    "--max-json-depth": "N",
    "--max-pages": "N",
    "--max-redirects": "N",
    "--max-references": "N",
    "--max-retries": "N",
    "--notify-webhook": "URL",
    "--only": "PAYER",
    "--out": "PATH",
    "--page-size": "N",
    "--password-env": "ENV_VAR",
    "--patient": "PATIENT_ID",
    "--payer": "PAYER",
    "--per-host": "N",
    "--port": "PORT",
    "--private-key-env": "ENV_VAR",
    "--rate": "PER_SECOND",
    "--redirect-port": "PORT",
    "--refresh-token-env": "ENV_VAR",
    "--rubric": "PATH",
    "--run": "RUN_ID",
    "--scope": "SCOPES",
    "--secrets-out": "PATH",
    "--shard": "I/N",
    "--since": "WHEN",
    "--slower-percent": "PERCENT",
    "--slower-seconds": "SECONDS",
    "--store-down-limit": "SECONDS",
    "--timeout": "SECONDS",
    "--token-env": "ENV_VAR",
    "--token-store": "PATH",
    "--token-url": "URL",
    "--username-env": "ENV_VAR",
    "--window": "MONTHS",
}

#: A word for an option's value by the type typer names, for an option METAVARS does not list.
_BY_TYPE = {
    "int": "N",
    "int range": "N",
    "float": "NUMBER",
    "float range": "NUMBER",
    "path": "PATH",
    "file": "PATH",
    "directory": "PATH",
}


def metavar_for(option: TyperOption) -> str:
    """The metavar `option` shows: its own, else METAVARS', else a word for its type."""
    if option.metavar is not None:
        return option.metavar
    for name in option.opts:
        if name in METAVARS:
            return METAVARS[name]
    typed = (option.display_type(None) or "").strip("<>")  # type: ignore[arg-type]
    return _BY_TYPE.get(typed, "TEXT")


class _PlainArgument(TyperArgument):
    """An argument shown by its metavar alone (``BASE_URL``, ``[FILE]``), without a type."""

    def display_type_rich(self, ctx: Context) -> str | None:
        """No type beside the argument's name: the name says what it is."""
        return None

    def _usage_display_name(self) -> str:
        name = self.display_name_raw if self.required else f"[{self.display_name_raw}]"
        return name + ("..." if self.nargs != 1 else "")


def polish_help(command: Command) -> Command:
    """`command` and its sub-commands with plain ``--help`` and meaningful metavars."""
    if hasattr(command, "rich_markup_mode"):
        command.rich_markup_mode = None
    for param in command.params:
        if isinstance(param, TyperOption) and not param.is_flag and not param.count:
            param.metavar = metavar_for(param)
        elif isinstance(param, TyperArgument):
            if param.metavar is None and param.name:
                param.metavar = param.name.upper()
            param.__class__ = _PlainArgument
    if isinstance(command, TyperGroup):
        for sub in command.commands.values():
            polish_help(sub)
    return command
