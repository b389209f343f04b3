"""`probe fleet serve --directory-out FILE` writes files it marks as its own, overwrites only
those (or anything with --force), and its secrets file name is ignored by git."""

from __future__ import annotations

import fnmatch
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml

from probe.directory.schema import load_directory
from probe.fleet.catalog import DIRECTORY_HEADER, SECRETS_HEADER, fleet_generated

ROOT = Path(__file__).resolve().parents[2]
CONFIG = (
    "seed: 3\nhosts: 1\npayers:\n  - {slug: acme, name: Acme Health, archetypes: [exemplary]}\n"
)
CURATED = "# the curated payer directory\nversion: 1\npayers: []\n"


def serve(tmp_path: Path, *args: str) -> subprocess.Popen[str]:
    config = tmp_path / "fleet-config.yaml"
    config.write_text(CONFIG, encoding="utf-8")
    return subprocess.Popen(
        [sys.executable, "-m", "probe.cli", "fleet", "serve", "--config", str(config), *args],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def serve_until_written(tmp_path: Path, directory: Path, *args: str) -> str:
    """Start the fleet, wait for its directory, stop it; its stderr."""
    before = directory.stat().st_mtime_ns if directory.exists() else None
    process = serve(tmp_path, "--directory-out", str(directory), *args)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and process.poll() is None:
            if directory.exists() and directory.stat().st_mtime_ns != before:
                break
            time.sleep(0.1)
    finally:
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=30)
    return err


def test_writes_marked_files_and_overwrites_its_own(tmp_path: Path) -> None:
    directory = tmp_path / "fleet.yaml"
    err = serve_until_written(tmp_path, directory)
    secrets = tmp_path / "fleet.secrets.yaml"
    assert f"directory {directory}" in err and f"secrets {secrets}" in err
    assert directory.read_text(encoding="utf-8").startswith(DIRECTORY_HEADER)
    assert secrets.read_text(encoding="utf-8").startswith(SECRETS_HEADER)
    assert fleet_generated(directory) and fleet_generated(secrets)
    assert os.stat(secrets).st_mode & 0o777 == 0o600
    # Both still load: the directory as a directory, the secrets as YAML key: value.
    payers = load_directory(directory).payers
    assert [p.name for p in payers] == ["Acme Health"]
    assert "acme/refresh_token" in yaml.safe_load(secrets.read_text(encoding="utf-8"))
    again = serve_until_written(tmp_path, directory)  # its own files: overwritten
    assert "error" not in again and fleet_generated(directory)


def test_refuses_to_overwrite_a_curated_directory(tmp_path: Path) -> None:
    curated = tmp_path / "endpoints.yaml"
    curated.write_text(CURATED, encoding="utf-8")
    done = serve(tmp_path, "--directory-out", str(curated))
    _, err = done.communicate(timeout=60)
    assert done.returncode == 2
    assert f"{curated} exists and was not written by probe fleet serve" in err
    assert "--force" in err and "Traceback" not in err
    assert curated.read_text(encoding="utf-8") == CURATED
    assert not (tmp_path / "endpoints.secrets.yaml").exists()


def test_refuses_to_overwrite_a_secrets_file_it_did_not_write(tmp_path: Path) -> None:
    mine = tmp_path / "secrets.yaml"
    mine.write_text("prod/refresh_token: real\n", encoding="utf-8")
    done = serve(tmp_path, "--directory-out", "fleet.yaml", "--secrets-out", str(mine))
    _, err = done.communicate(timeout=60)
    assert done.returncode == 2 and "not overwriting it" in err
    assert mine.read_text(encoding="utf-8") == "prod/refresh_token: real\n"
    assert not (tmp_path / "fleet.yaml").exists()


def test_force_overwrites(tmp_path: Path) -> None:
    curated = tmp_path / "endpoints.yaml"
    curated.write_text(CURATED, encoding="utf-8")
    serve_until_written(tmp_path, curated, "--force")
    assert fleet_generated(curated)


def test_a_folder_is_not_a_directory_file(tmp_path: Path) -> None:
    done = serve(tmp_path, "--directory-out", str(tmp_path))
    _, err = done.communicate(timeout=60)
    assert done.returncode == 2 and "is a directory" in err


def test_git_ignores_fleet_secrets_files() -> None:
    patterns = [
        line.strip()
        for line in (ROOT / ".gitignore").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    for name in ("fleet.secrets.yaml", "endpoints.secrets.yaml"):
        assert any(fnmatch.fnmatch(name, p) for p in patterns), name
