"""The root command: lazy sub-commands whose summaries match their own help, start-up imports
kept light, and the fleet's server as an optional extra."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from probe.cli.app import COMMANDS, load_command

HEAVY = (
    "sqlalchemy",
    "alembic",
    "fhir.resources",
    "pydantic",
    "starlette",
    "uvicorn",
    "httpx",
    "jinja2",
)


@pytest.mark.parametrize("name", list(COMMANDS))
def test_summary_matches_the_commands_own_help(name: str) -> None:
    command = load_command(name)
    assert command.name == name
    assert command.get_short_help_str(limit=300) == COMMANDS[name].summary


def _modules_after(*argv: str) -> list[str]:
    code = (
        "import sys, json\n"
        "from probe.cli.app import app\n"
        f"try:\n    app({list(argv)!r})\n"
        "except SystemExit:\n    pass\n"
        "print(json.dumps(sorted(sys.modules)), file=sys.stderr)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    return list(json.loads(done.stderr.strip().splitlines()[-1]))


@pytest.mark.parametrize(
    "argv",
    [("--help",), ("check", "--help"), ("sync", "--help"), ("run", "--help"), ("db", "--help")],
)
def test_help_imports_nothing_heavy(argv: tuple[str, ...]) -> None:
    loaded = _modules_after(*argv)
    heavy = sorted(m for m in loaded if m.split(".")[0] in HEAVY or m.startswith(HEAVY))
    assert heavy == []
    assert not [m for m in loaded if m.startswith("probe.store") or m.startswith("probe.fleet")]


def test_root_help_imports_no_command_module() -> None:
    loaded = _modules_after("--help")
    commands = {c.module for c in COMMANDS.values()}
    assert sorted(commands & set(loaded)) == []


def test_fleet_serve_without_the_extra_says_how_to_install_it() -> None:
    code = (
        "import sys\n"
        "sys.modules['starlette'] = None\n"
        "from probe.cli.app import app\n"
        "app(['fleet', 'serve'])\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 2, done.stderr
    assert "pip install 'probe[fleet]'" in done.stderr
    assert "starlette" in done.stderr
    assert "Traceback" not in done.stderr
