"""Option values converted without pydantic (probe.cli.coercion) exactly as typer converts them:
every option of every command, on plain, malformed and out-of-range input; and parsing
`probe sync`'s command line imports no pydantic."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from typer._click.core import Command, Context
from typer._click.exceptions import BadParameter
from typer._coercion import build_runtime_param
from typer.core import TyperGroup, _TyperParameter

from probe.cli.app import COMMANDS, load_command
from probe.cli.coercion import PlainRuntimeParam, is_plain, plain_value

RAW: list[Any] = [
    None,
    "",
    "0",
    "1",
    "5",
    "007",
    "1000",
    "1001",
    "-1",
    "+5",
    " 5",
    "5 ",
    "1_000",
    "1.5",
    "0.05",
    "0.0001",
    ".5",
    "5.",
    "1e3",
    "nan",
    "inf",
    "abc",
    "٣",
    "99999999999999999999",
    "x\udcff",
    "table",
    3,
    0,
    2.5,
    True,
]


def _commands(command: Command) -> Iterator[Command]:
    yield command
    if isinstance(command, TyperGroup):
        for sub in command.commands.values():
            yield from _commands(sub)


def _params() -> Iterator[tuple[str, Command, _TyperParameter]]:
    for name in COMMANDS:
        for command in _commands(load_command(name)):
            for param in command.params:
                if isinstance(param, _TyperParameter):
                    yield name, command, param


def _outcome(convert: Any, value: Any, param: _TyperParameter, ctx: Context) -> tuple[str, Any]:
    try:
        return ("value", convert.coerce(value, param=param, ctx=ctx))
    except BadParameter as exc:
        return ("error", exc.format_message())


def test_plain_values_are_converted_as_typer_converts_them() -> None:
    compared = plain = 0
    for _, command, param in _params():
        descriptor = param.type_descriptor
        if descriptor.is_file:  # never plain: typer opens the file (or standard input)
            assert not is_plain(plain_value(descriptor, "x"))
            continue
        ctx = Context(command)
        ours = PlainRuntimeParam(descriptor.parameter_info, descriptor.annotation, descriptor)
        for value in [*RAW, param.default]:
            param._runtime_param = None
            expected = _outcome(build_runtime_param(descriptor), value, param, ctx)
            got = _outcome(ours, value, param, ctx)
            assert got == expected, (command.name, param.name, value)
            assert type(got[1]) is type(expected[1]), (command.name, param.name, value)
            compared += 1
            plain += value is not None and is_plain(plain_value(descriptor, value))
    assert compared > 1000 and plain > 200


def test_sync_command_line_is_parsed_without_pydantic() -> None:
    code = """
import json, sys
from typer._click.core import Context
import typer.main
from probe.cli.app import app
group = typer.main.get_group(app)
ctx = Context(group, info_name="probe")
command = group.get_command(ctx, "sync")
sub = command.make_context("sync", [
    "https://fhir.example.org/r4", "--patient", "p1", "--token-env", "TOKEN", "--format",
    "json", "--page-size", "50", "--max-pages", "7", "--deadline", "30.5", "--timeout", "3",
    "--max-body-mb", "2.5", "--max-references", "0", "--label", "Jane",
], parent=ctx)
print(json.dumps({"pydantic": "pydantic" in sys.modules, "params": sub.params}, default=str))
"""
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    out = json.loads(done.stdout)
    assert out["pydantic"] is False
    params = out["params"]
    assert params["page_size"] == 50 and params["max_pages"] == 7 and params["max_references"] == 0
    assert params["deadline"] == 30.5 and params["timeout"] == 3.0 and params["max_body_mb"] == 2.5
    assert params["label"] == "Jane" and params["token_store"] is None


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--max-pages", "0"], "Invalid value for '--max-pages'"),
        (["--page-size", "1001"], "Invalid value for '--page-size'"),
        (["--deadline", "soon"], "Invalid value for '--deadline'"),
    ],
)
def test_out_of_range_and_malformed_values_are_still_usage_errors(
    argv: list[str], message: str
) -> None:
    from typer.testing import CliRunner

    from probe.cli.app import app

    result = CliRunner().invoke(
        app, ["sync", "https://fhir.example.org/r4", "--patient", "p", *argv]
    )
    assert result.exit_code == 2
    assert message in result.output
