"""`--help` reads well at 80 columns for every command, `probe --version`, and a closed pipe on
standard output is not an error."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from typer._click.core import Command
from typer.core import TyperGroup
from typer.testing import CliRunner

from probe.cli.app import COMMANDS, app, load_command, probe_version
from probe.cli.options_help import METAVARS

TYPE_METAVAR = re.compile(r"<(str|bool|int|float|path|file|list\[[^\]]*\]|[a-z]+ range)>")


def every_command() -> list[list[str]]:
    """Every command and sub-command of probe, as argv prefixes."""
    out: list[list[str]] = [[]]
    for name in COMMANDS:
        command = load_command(name)
        out.append([name])
        if isinstance(command, TyperGroup):
            out += [[name, sub] for sub in command.commands]
    return out


def help_at(argv: list[str], columns: int) -> str:
    """`probe ARGV --help` as a person sees it on a screen `columns` wide."""
    done = subprocess.run(
        [sys.executable, "-m", "probe.cli", *argv, "--help"],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": str(columns)},
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.parametrize("argv", every_command(), ids=lambda a: " ".join(a) or "probe")
def test_help_reads_well_at_80_columns(argv: list[str]) -> None:
    text = help_at(argv, 80)
    assert "…" not in text
    assert TYPE_METAVAR.search(text) is None, TYPE_METAVAR.search(text)
    assert "{" not in text.splitlines()[0]  # the usage line: BASE_URL, not {base_url}
    assert max(len(line) for line in text.splitlines()) <= 80
    # Every option is shown whole, with its metavar from the table.
    for option, metavar in METAVARS.items():
        if re.search(rf"^\s+(-\w, )?{re.escape(option)}\b", text, re.M):
            assert re.search(rf"{re.escape(option)} {re.escape(metavar)}\b", text), option


def test_every_option_has_a_named_metavar() -> None:
    """No option falls back to a word for its type: each is in METAVARS or names its own."""
    unnamed = []
    for argv in every_command()[1:]:
        command: Command = load_command(argv[0], polish=False)
        if len(argv) == 2:
            assert isinstance(command, TyperGroup)
            command = command.commands[argv[1]]
        for param in command.params:
            opts = getattr(param, "opts", [])
            flag = getattr(param, "is_flag", False)
            named = set(opts) & METAVARS.keys() or param.metavar is not None
            if param.param_type_name == "option" and not flag and "--help" not in opts:
                unnamed += [] if named else [(" ".join(argv), opts)]
    assert unnamed == []


def test_long_option_names_and_env_vars_are_whole_at_80_columns() -> None:
    text = help_at(["run"], 80)
    for whole in ("--drift-slower-percent PERCENT", "--endpoint-deadline SECONDS",
                  "$PROBE_DATABASE_URL", "--db URL", "--timeout SECONDS"):  # fmt: skip
        assert whole in text


def test_help_wraps_on_a_narrower_screen() -> None:
    text = help_at(["run"], 60)
    assert max(map(len, text.splitlines())) <= 60
    assert "…" not in text and "--drift-slower-percent PERCENT" in text


def test_version() -> None:
    done = CliRunner().invoke(app, ["--version"])
    assert done.exit_code == 0
    assert done.output == f"probe {probe_version()}\n"
    assert re.fullmatch(r"\d+\.\d+\.\d+\S*", probe_version())


def test_version_is_listed_in_the_root_help() -> None:
    assert "--version" in help_at([], 80)


def closed_pipe(*argv: str, cwd: Path | None = None) -> subprocess.CompletedProcess[bytes]:
    """Run probe with standard output a pipe whose reader is already gone."""
    read, write = os.pipe()
    os.close(read)
    try:
        return subprocess.run(
            [sys.executable, "-m", "probe.cli", *argv],
            stdout=write,
            stderr=subprocess.PIPE,
            cwd=cwd,
            timeout=120,
            check=False,
        )
    finally:
        os.close(write)


@pytest.mark.parametrize("argv", [["--help"], ["run", "--help"], ["--version"]])
def test_a_closed_pipe_is_not_an_error(argv: list[str]) -> None:
    done = closed_pipe(*argv)
    assert done.returncode == 0, done.stderr
    assert done.stderr == b""
