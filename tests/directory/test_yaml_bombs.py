"""Hostile YAML (issue 18, item 6 and 8): aliases, recursion, nesting, size, credentials in URLs.

Every file is refused with a ``file:line: ...`` error and exit 2 before any data is built,
never a MemoryError or RecursionError traceback, through ``probe directory validate``,
``probe run --dry-run`` and ``probe score --rubric``.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from probe.cli.app import app
from probe.directory.schema import (
    MAX_YAML_BYTES,
    MAX_YAML_DEPTH,
    DirectoryError,
    load_directory,
    parse_directory,
)
from probe.score.rubric import RubricError, load_rubric, parse_rubric

LAUGHS = (
    "\n".join(
        ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
        + [
            f"{name}: &{name} [{', '.join([f'*{prev}'] * 9)}]"
            for prev, name in zip("abcdefgh", "bcdefghi", strict=True)
        ]
    )
    + "\n"
)  # 9**9 strings (387 million) from about 360 bytes

BOMBS = {
    "billion_laughs": (LAUGHS, 2),
    "self_list": ("loop: &a [*a]\n", 1),
    "self_mapping": ("version: 1\npayers:\n  - &p {name: X, endpoints: [], me: *p}\n", 3),
    "merge_key": (
        "version: 1\nbase: &b {base_url: https://a.example/r4}\npayers:\n"
        "  - name: X\n    endpoints:\n      - <<: *b\n",
        6,
    ),
}


def write(tmp_path: Path, text: str, name: str = "endpoints.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize("name", sorted(BOMBS))
def test_aliases_are_refused_before_data_is_built(tmp_path: Path, name: str) -> None:
    text, line = BOMBS[name]
    path = write(tmp_path, text)
    started = time.monotonic()
    with pytest.raises(DirectoryError) as caught:
        load_directory(path)
    assert time.monotonic() - started < 2
    [problem] = caught.value.problems
    assert problem.startswith(f"{path}:{line}: YAML alias *")
    assert "not allowed" in problem


@pytest.mark.parametrize("name", sorted(BOMBS))
def test_aliases_are_refused_in_rubrics(tmp_path: Path, name: str) -> None:
    text, line = BOMBS[name]
    with pytest.raises(RubricError) as caught:
        parse_rubric(text, "rubric.yaml")
    assert caught.value.problems[0].startswith(f"rubric.yaml:{line}: YAML alias *")


@pytest.mark.parametrize("depth", [MAX_YAML_DEPTH + 1, 5_000, 200_000])
def test_nesting_is_bounded(tmp_path: Path, depth: int) -> None:
    text = "version: 1\npayers: " + "[" * depth + "]" * depth + "\n"
    with pytest.raises(DirectoryError) as caught:
        parse_directory(text, Path("deep.yaml"))
    [problem] = caught.value.problems
    assert problem.startswith("deep.yaml:2: ")
    assert "nest" in problem  # ours ("nested deeper than 32 levels") or libyaml's own bound
    with pytest.raises(RubricError):
        parse_rubric(text, "deep.yaml")


def test_nesting_within_the_bound_is_fine() -> None:
    inner = "[" * (MAX_YAML_DEPTH - 2) + "]" * (MAX_YAML_DEPTH - 2)
    with pytest.raises(DirectoryError) as caught:
        parse_directory(f"version: 1\npayers: []\nextra: {inner}\n", Path("ok.yaml"))
    # refused by the schema (an unknown key), not by the bound
    assert all("nest" not in p for p in caught.value.problems)


def test_anchors_without_aliases_still_load(tmp_path: Path) -> None:
    text = "version: 1\npayers: &all\n  - name: X\n    endpoints:\n      - base_url: https://a.example/r4\n"
    directory = load_directory(write(tmp_path, text))
    assert directory.payers[0].name == "X"


def test_size_bound_names_the_bound_without_parsing(tmp_path: Path) -> None:
    path = tmp_path / "huge.yaml"
    line = "# " + "x" * 1021 + "\n"
    with path.open("w", encoding="utf-8") as out:
        for _ in range(MAX_YAML_BYTES // len(line) + 2):
            out.write(line)
    started = time.monotonic()
    with pytest.raises(DirectoryError) as caught:
        load_directory(path)
    with pytest.raises(RubricError) as rubric_caught:
        load_rubric(path)
    assert time.monotonic() - started < 2
    for problem in (caught.value.problems[0], rubric_caught.value.problems[0]):
        assert problem.startswith(f"{path}:1: ")
        assert "20 MiB bound" in problem
    with pytest.raises(DirectoryError) as text_caught:
        parse_directory("#" * (MAX_YAML_BYTES + 1), Path("t.yaml"))
    assert "20 MiB bound" in text_caught.value.problems[0]


def _probe(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "probe", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.mark.parametrize("name", ["billion_laughs", "self_list"])
def test_commands_exit_2_with_a_line_not_a_traceback(tmp_path: Path, name: str) -> None:
    text, line = BOMBS[name]
    path = write(tmp_path, text)
    for args in (
        ["directory", "validate", str(path)],
        ["run", str(path), "--dry-run"],
        ["score", "--rubric", str(path), "--db", f"sqlite:///{tmp_path / 'none.db'}"],
    ):
        done = _probe(*args)
        assert done.returncode == 2, (args, done.stderr)
        assert "Traceback" not in done.stderr
        assert "Error" not in done.stderr.replace("error", "")  # no MemoryError/RecursionError
        assert f"{path}:{line}:" in done.stderr.replace("\n", "")


@pytest.mark.parametrize(
    ("field", "yaml_line"),
    [
        ("base_url: https://user:PASSWORD1@a.example/r4", "base_url"),
        ("sandbox_url: https://user:PASSWORD1@sb.a.example/r4", "sandbox_url"),
        ("portal_url: https://user:PASSWORD1@dev.a.example/", "portal_url"),
        (
            "credentials: {kind: backend_services, client_id: c, private_key: {env: K}, "
            "token_url: 'https://user:PASSWORD1@a.example/token'}",
            "token_url",
        ),
        (
            "credentials: {kind: refresh_token, client_id: c, auth_method: none, "
            "refresh_token: {env: R}, token_url: 'https://PASSWORD1@a.example/token'}",
            "token_url",
        ),
    ],
)
def test_credentials_in_urls_are_refused(tmp_path: Path, field: str, yaml_line: str) -> None:
    base = "" if field.startswith("base_url") else "        base_url: https://a.example/r4\n"
    text = f"version: 1\npayers:\n  - name: X\n    endpoints:\n      - {field}\n{base}"
    path = write(tmp_path, text)
    with pytest.raises(DirectoryError) as caught:
        load_directory(path)
    [problem] = caught.value.problems
    assert problem.startswith(f"{path}:5: payers.0.endpoints.0.")
    assert yaml_line in problem
    assert "user name or password" in problem
    assert "PASSWORD1" not in problem
    result = CliRunner().invoke(app, ["run", str(path), "--dry-run"])
    assert result.exit_code == 2
    assert "PASSWORD1" not in result.output


def test_the_secrets_file_is_bounded_too(tmp_path: Path) -> None:
    from probe.directory.schema import SecretRef
    from probe.directory.secrets import SecretError, SecretSource

    path = write(tmp_path, LAUGHS, "secrets.yaml")
    with pytest.raises(SecretError) as caught:
        SecretSource(path).resolve(SecretRef(secret="a"))
    assert f"{path}:2: YAML alias *a is not allowed" in str(caught.value)
