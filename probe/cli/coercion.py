"""Plain option values converted without pydantic, as typer would convert them.

typer 0.29 converts every option value through a pydantic ``TypeAdapter`` built on first use,
for an option left at its default too: the first command-line parse imports pydantic's schema
machinery and builds one adapter per option (about 80 ms for ``probe sync``'s 26 options on an
idle 2-core machine, most of it the import). :func:`plain_values` gives a command's options a
converter that answers the plain cases itself, with the value typer's adapter would return:

- no value (``None``): ``None``, as typer's own converter does before it builds anything;
- a ``str`` option given a ``str``: the string;
- an ``int`` option given ASCII digits (or an ``int``), a ``float`` option given ASCII digits
  with at most one decimal point (or a ``float``), within the option's ``min``/``max``: the
  number.

Anything else (a number out of range, a malformed one, paths, choices, lists, files, clamped
ranges, custom parsers) goes to typer's own converter, built then: the same value, or the same
usage error, as without this module. ``tests/cli/test_sync_coercion.py`` checks the two agree on
every option of every command. It relies on typer 0.29's internals (``typer._coercion``, a
parameter's ``_runtime_param``): with a typer that has none, :class:`probe.cli.groups.HelpGroup`
leaves typer's own conversion alone (an ``ImportError`` here), and a parameter without one is
skipped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from typing import Any

from typer._click.core import Command, Context
from typer._coercion import RuntimeParam, TypeDescriptor, build_runtime_param
from typer.core import TyperGroup, _TyperParameter

_DIGITS = re.compile(r"[0-9]{1,15}")
_DECIMAL = re.compile(r"[0-9]{1,15}(?:\.[0-9]{1,15})?")
_NOT_PLAIN = object()


def _in_range(number: float, descriptor: TypeDescriptor) -> bool:
    info = descriptor.parameter_info
    return (info.min is None or number >= info.min) and (info.max is None or number <= info.max)


def plain_value(descriptor: TypeDescriptor, value: Any) -> Any:
    """`value` converted as typer's adapter converts it, when that is plain; else a sentinel
    that :func:`is_plain` rejects."""
    annotation = descriptor.annotation
    info = descriptor.parameter_info
    if info.parser is not None or descriptor.is_file or descriptor.is_choice:
        return _NOT_PLAIN
    if annotation is str:
        return value if type(value) is str else _NOT_PLAIN
    if info.clamp:
        return _NOT_PLAIN
    if annotation is int:
        if type(value) is int:
            number: int | float = value
        elif type(value) is str and _DIGITS.fullmatch(value):
            number = int(value)
        else:
            return _NOT_PLAIN
        return number if _in_range(number, descriptor) else _NOT_PLAIN
    if annotation is float:
        if type(value) is float:
            number = value
        elif type(value) is str and _DECIMAL.fullmatch(value):
            number = float(value)
        else:
            return _NOT_PLAIN
        return number if _in_range(number, descriptor) else _NOT_PLAIN
    return _NOT_PLAIN


def is_plain(converted: Any) -> bool:
    """False for the sentinel :func:`plain_value` returns when typer's converter must decide."""
    return converted is not _NOT_PLAIN


@dataclass(frozen=True)
class PlainRuntimeParam(RuntimeParam):
    """typer's converter for one option, with the plain cases answered without pydantic."""

    descriptor: TypeDescriptor

    def _coerce_value(self, value: Any, param: _TyperParameter, ctx: Context) -> Any:
        converted = plain_value(self.descriptor, value)
        if is_plain(converted):
            return converted
        full = build_runtime_param(self.descriptor)  # typer's own: the value or its error
        param._runtime_param = full
        return full._coerce_value(value, param=param, ctx=ctx)


def _plain(param: Any) -> None:
    # Only a typer parameter whose converter is still to be built (typer 0.29's internals).
    if isinstance(param, _TyperParameter) and getattr(param, "_runtime_param", False) is None:
        descriptor = param.type_descriptor
        param._runtime_param = PlainRuntimeParam(
            descriptor.parameter_info, descriptor.annotation, descriptor
        )


@cache
def _with_plain_help(cls: type[Command]) -> type[Command]:
    """`cls` whose --help option (made on first use, unset unless given) is converted plainly."""

    class PlainHelp(cls):  # type: ignore[valid-type,misc]
        def get_help_option(self, ctx: Context) -> Any:
            option = super().get_help_option(ctx)
            _plain(option)
            return option

    PlainHelp.__name__ = PlainHelp.__qualname__ = cls.__name__
    PlainHelp.__module__ = cls.__module__
    return PlainHelp


def plain_values(command: Command) -> Command:
    """Give `command`'s options (and its sub-commands', once each) the plain converter."""
    if getattr(command, "_probe_plain_values", False):
        return command
    for param in command.params:
        _plain(param)
    command.__class__ = _with_plain_help(type(command))
    command._probe_plain_values = True  # type: ignore[attr-defined]
    if isinstance(command, TyperGroup):
        for sub in command.commands.values():
            plain_values(sub)
    return command
