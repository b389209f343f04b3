"""Commands that only read the store never create a database and all say the same thing when
there is none; unknown checks, unconfirmed downgrades and empty resumes are said plainly."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from probe.cli import db as db_cli
from probe.cli.app import app
from probe.cli.reading import NO_DATABASE, NOTHING_TO_RESUME
from tests.cli.test_help import closed_pipe

READ_COMMANDS = [
    ["drift"],
    ["drift", "detect", "1"],
    ["history", "https://payer.example/fhir"],
    ["history", "https://payer.example/fhir", "--check", "metadata.reachable"],
    ["score"],
    ["score", "--format", "json"],
    ["report", "--html", "report.html"],
    ["prerelease", "http://127.0.0.1:9/fhir", "--baseline-run", "1"],  # a stored baseline
]


def probe_in(cwd: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    """`probe ARGV` run as a user would, in `cwd` (whose default store is ./probe.db)."""
    env = {k: v for k, v in os.environ.items() if k != "PROBE_DATABASE_URL"}
    return subprocess.run(
        [sys.executable, "-m", "probe.cli", *argv],
        cwd=cwd,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize("argv", READ_COMMANDS, ids=" ".join)
def test_read_commands_never_create_a_database(argv: list[str], tmp_path: Path) -> None:
    done = probe_in(tmp_path, *argv)
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr == "error: " + NO_DATABASE.format(path="probe.db") + "\n"
    assert done.stdout == ""
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_the_database_url_is_named_as_given(tmp_path: Path) -> None:
    db = tmp_path / "nested" / "absent.db"
    result = CliRunner().invoke(app, ["drift", "--db", f"sqlite:///{db}"])
    assert result.exit_code == 2
    assert NO_DATABASE.format(path=db) in result.stderr
    assert not db.exists() and not db.parent.exists()


def test_history_of_no_such_check(store_url: str) -> None:
    runner = CliRunner()
    assert runner.invoke(app, ["db", "upgrade", "--db", store_url]).exit_code == 0
    args = ["history", "https://payer.example/fhir", "--db", store_url]
    typo = runner.invoke(app, [*args, "--check", "metadata.reachabel"])
    assert typo.exit_code == 2
    assert "no such check: 'metadata.reachabel'; did you mean metadata.reachable" in typo.stderr
    unknown = runner.invoke(app, [*args, "--check", "no.such"])
    assert unknown.exit_code == 2
    assert unknown.stderr.strip() == "error: no such check: 'no.such'"
    known = runner.invoke(app, [*args, "--check", "metadata.reachable"])
    assert known.exit_code == 2 and "no stored observations" in known.stderr  # a known check


def test_downgrade_without_a_terminal_needs_yes(store_url: str) -> None:
    runner = CliRunner()
    assert runner.invoke(app, ["db", "upgrade", "--db", store_url]).exit_code == 0
    refused = runner.invoke(app, ["db", "downgrade", "base", "--db", store_url], input="y\n")
    assert refused.exit_code == 2
    assert "without a terminal to ask on, pass --yes" in refused.stderr
    assert "Aborted" not in refused.output
    current = runner.invoke(app, ["db", "current", "--db", store_url])
    assert "(head)" in current.stdout  # nothing was dropped


def test_downgrade_on_a_terminal_asks(store_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    runner = CliRunner()
    assert runner.invoke(app, ["db", "upgrade", "--db", store_url]).exit_code == 0
    monkeypatch.setattr(db_cli, "can_ask", lambda: True)
    declined = runner.invoke(app, ["db", "downgrade", "base", "--db", store_url], input="n\n")
    assert declined.exit_code == 2 and "downgrade not confirmed" in declined.stderr
    agreed = runner.invoke(app, ["db", "downgrade", "base", "--db", store_url], input="y\n")
    assert agreed.exit_code == 0 and "downgraded from" in agreed.stdout


def test_downgrade_on_a_closed_input_is_not_an_abort(store_url: str) -> None:
    runner = CliRunner()
    assert runner.invoke(app, ["db", "upgrade", "--db", store_url]).exit_code == 0
    done = subprocess.run(
        [sys.executable, "-m", "probe.cli", "db", "downgrade", "base", "--db", store_url],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2 and "pass --yes" in done.stderr


DIRECTORY = """\
payers:
  - name: Nowhere Health
    lives: 1000
    endpoints:
      - base_url: http://127.0.0.1:9/fhir
"""


def test_resume_with_nothing_to_resume_says_so(tmp_path: Path) -> None:
    directory = tmp_path / "endpoints.yaml"
    directory.write_text(DIRECTORY, encoding="utf-8")
    db = f"sqlite:///{tmp_path / 'probe.db'}"
    done = CliRunner().invoke(app, ["run", str(directory), "--resume", "--db", db])
    assert done.exit_code == 0, done.output
    assert NOTHING_TO_RESUME in " ".join(done.stderr.split())
    runs = CliRunner().invoke(app, ["history", "http://127.0.0.1:9/fhir", "--db", db])
    assert runs.exit_code == 2 and "no stored observations" in runs.stderr  # no run started


def test_a_closed_pipe_after_a_table_is_not_an_error(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'probe.db'}"
    assert CliRunner().invoke(app, ["db", "upgrade", "--db", db]).exit_code == 0
    done = closed_pipe("drift", "--db", db)  # rich prints "no drift events" into a closed pipe
    assert done.returncode == 0, done.stderr
    assert done.stderr == b""
