"""`probe run --workers N` starts its other workers before its run exists (`--join-pipe`).

They load the directory while worker 1 loads it and registers the run, then wait on standard
input for the run's id. These tests cover the parts a crawl does not: a worker that is never
told a run exits without a word and without touching the store, a bad directory is reported
once (by worker 1) with no worker left behind, and the id is read strictly.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

from probe.cli.run_workers import wait_for_run_id

GOOD = """\
version: 1
payers:
- name: Pipe Payer
  endpoints:
  - base_url: http://127.0.0.1:9/fhir
"""


def _probe(*args: str, stdin: int | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "probe", "run", *args],
        capture_output=True,
        text=True,
        timeout=120,
        stdin=stdin,
    )


def _processes_naming(marker: str) -> list[int]:
    """Live processes whose command line contains `marker` (this machine's /proc)."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if marker in cmdline:
            found.append(int(pid))
    return found


@pytest.mark.parametrize(
    ("text", "expected"),
    [("12\n", 12), ("7", 7), ("", None), ("\n", None), ("-3\n", None), ("x1\n", None)],
)
def test_the_run_id_is_read_strictly(text: str, expected: int | None) -> None:
    assert wait_for_run_id(io.StringIO(text)) == expected


def test_a_closed_stream_reads_as_no_run() -> None:
    stream = io.StringIO("5\n")
    stream.close()
    assert wait_for_run_id(stream) is None


def test_a_worker_never_told_a_run_exits_quietly_without_touching_the_store(
    tmp_path: Path,
) -> None:
    directory = tmp_path / "endpoints.yaml"
    directory.write_text(GOOD)
    db = tmp_path / "never.db"
    done = _probe(
        str(directory), "--db", f"sqlite:///{db}", "--join-pipe", stdin=subprocess.DEVNULL
    )
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")
    assert not db.exists()  # it waited for the id before opening the store


def test_join_pipe_is_not_combined_with_workers(tmp_path: Path) -> None:
    directory = tmp_path / "endpoints.yaml"
    directory.write_text(GOOD)
    done = _probe(
        str(directory), "--db", f"sqlite:///{tmp_path / 'x.db'}", "--join-pipe", "--workers", "2"
    )
    assert done.returncode == 2
    assert "--join cannot be combined with --resume or --workers" in done.stderr


def test_a_bad_directory_is_reported_once_and_no_worker_is_left(tmp_path: Path) -> None:
    directory = tmp_path / "bad-directory-for-pipe-test.yaml"
    directory.write_text("version: 1\npayers:\n- name: A\n  endpoints:\n  - base_url: 12\n")
    done = _probe(str(directory), "--db", f"sqlite:///{tmp_path / 'x.db'}", "--workers", "3")
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("base_url") == 1, done.stderr  # worker 1 alone reports it
    assert "worker exit codes" not in done.stderr
    assert done.stdout == ""
    assert _processes_naming(str(directory)) == []  # the other workers were ended, not orphaned
    assert not (tmp_path / "x.db").exists()


def test_an_unknown_only_name_is_reported_once(tmp_path: Path) -> None:
    directory = tmp_path / "endpoints.yaml"
    directory.write_text(GOOD)
    done = _probe(
        str(directory),
        "--db",
        f"sqlite:///{tmp_path / 'x.db'}",
        "--workers",
        "2",
        "--only",
        "Nobody",
    )
    assert done.returncode == 2
    assert done.stderr.count("--only names no payer") == 1, done.stderr
