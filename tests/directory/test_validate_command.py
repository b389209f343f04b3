"""`probe directory validate`: every problem on stderr with exit 2, or a one-line summary."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from probe.cli.app import app
from probe.cli.directory import directory_app

FULL = """\
version: 1
secrets_file: secrets.yaml
payers:
  - name: Acme
    endpoints:
      - base_url: https://a.example/r4
        sandbox_url: https://sb.a.example/r4
        credentials: {kind: bearer, token: {env: ACME_TOKEN}}
      - environment: sandbox
        base_url: https://demo.a.example/r4
  - name: Beta
    endpoints:
      - base_url: https://b.example/fhir
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "endpoints.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_valid_file_summary(tmp_path: Path) -> None:
    path = write(tmp_path, FULL)
    result = CliRunner().invoke(directory_app, ["validate", str(path)])
    assert result.exit_code == 0
    assert result.stdout == (
        f"{path}: valid: 2 payers, 3 endpoints, 2 sandbox URLs, 1 with credentials\n"
    )
    assert result.stderr == ""


def test_invalid_file_lists_every_problem_and_exits_2(tmp_path: Path) -> None:
    text = FULL.replace("{env: ACME_TOKEN}", "hunter2").replace("name: Beta", "name: Acme")
    text = text.replace("https://b.example/fhir", "b.example")
    path = write(tmp_path, text)
    result = CliRunner().invoke(directory_app, ["validate", str(path)])
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        f"{path}:8: payers.0.endpoints.0.credentials.token: secrets must not be written in this "
        "file; use {env: VARIABLE} or {secret: KEY} with secrets_file",
        f"{path}:11: payers.1.name: payer name 'Acme' appears twice (first at line 4)",
        f"{path}:13: payers.1.endpoints.0.base_url: must be an absolute http(s) URL",
        f"{path}: 3 problem(s)",
    ]
    assert "hunter2" not in result.output  # the secret is never echoed


def test_yaml_syntax_error_exits_2(tmp_path: Path) -> None:
    path = write(tmp_path, "payers:\n  - name: [unclosed\n")
    result = CliRunner().invoke(directory_app, ["validate", str(path)])
    assert result.exit_code == 2
    assert result.stderr.startswith(f"{path}:3: YAML syntax: ")
    assert "Traceback" not in result.output


def test_missing_file_and_directory_exit_2(tmp_path: Path) -> None:
    for path in (tmp_path / "missing.yaml", tmp_path):
        result = CliRunner().invoke(directory_app, ["validate", str(path)])
        assert result.exit_code == 2
        assert result.stderr.startswith(f"{path}: cannot read: ")
        assert result.exception is None or isinstance(result.exception, SystemExit)


def test_markup_like_text_is_printed_literally(tmp_path: Path) -> None:
    path = write(tmp_path, "payers:\n  - name: '[bold]x[/bold]'\n    endpoints: []\n")
    result = CliRunner().invoke(directory_app, ["validate", str(path)])
    assert result.exit_code == 2
    assert "payers.0.endpoints: List should have at least 1 item" in result.stderr


def test_wired_into_the_probe_cli(tmp_path: Path) -> None:
    path = write(tmp_path, FULL)
    result = CliRunner().invoke(app, ["directory", "validate", str(path)])
    assert result.exit_code == 0 and "valid: 2 payers" in result.stdout
    help_text = CliRunner().invoke(app, ["directory", "--help"]).stdout
    assert "import-cms" in help_text and "seed" in help_text and "validate" in help_text
