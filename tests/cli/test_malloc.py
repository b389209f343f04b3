"""Few malloc arenas for `probe run` (glibc), and nothing at all elsewhere."""

from __future__ import annotations

import ctypes
import subprocess
import sys

import pytest

from probe.cli import malloc


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc only")
def test_the_arena_limit_is_accepted_by_glibc() -> None:
    assert malloc.limit_malloc_arenas(2) is True


def test_no_c_library_is_no_error(monkeypatch: pytest.MonkeyPatch) -> None:
    def missing(*_args: object, **_kwargs: object) -> object:
        raise OSError("no libc here")

    monkeypatch.setattr(ctypes, "CDLL", missing)
    assert malloc.limit_malloc_arenas(2) is False
    monkeypatch.setattr(malloc.sys, "platform", "darwin")
    assert malloc.limit_malloc_arenas(2) is False


def test_probe_run_sets_it_before_its_threads_start() -> None:
    """`probe run` calls it at the top of the command (a dry run is enough to see it)."""
    code = (
        "import sys, probe.cli.malloc as m\n"
        "calls = []\n"
        "real = m.limit_malloc_arenas\n"
        "m.limit_malloc_arenas = lambda *a: calls.append(a) or real(*a)\n"
        "from probe.cli.app import main\n"
        "sys.argv = ['probe', 'run', 'endpoints.yaml', '--dry-run']\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "print('CALLS', len(calls))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert "CALLS 1" in done.stdout, done.stdout[-2000:] + done.stderr[-2000:]
