"""Start-up of the `probe` command beside the bare import of its CLI libraries.

Runs, interleaved, each command N times and reports the median and best wall-clock seconds:

* ``python -c "import typer, rich.console"``: the baseline (what any typer/rich CLI pays);
* ``probe --help`` and ``probe check --help`` (the console script of this checkout's venv);
* ``probe sync --help`` and ``probe run --help``.

Two settings: as this machine runs by default (``PYTHONDONTWRITEBYTECODE=1``: probe's own
modules, installed editable, are compiled at every start; site-packages has its ``.pyc``), and
with bytecode caches (a warm ``PYTHONPYCACHEPREFIX`` in a temporary directory). The target
(issue 12): both ``--help`` commands within 3x the baseline.

usage: python bench/startup.py [--runs N]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROBE = str(Path(sys.executable).with_name("probe"))
COMMANDS: dict[str, list[str]] = {
    "import typer, rich.console": [sys.executable, "-c", "import typer, rich.console"],
    "probe --help": [PROBE, "--help"],
    "probe check --help": [PROBE, "check", "--help"],
    "probe sync --help": [PROBE, "sync", "--help"],
    "probe run --help": [PROBE, "run", "--help"],
}


def _once(argv: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - started


def measure(runs: int, env: dict[str, str]) -> dict[str, list[float]]:
    """Seconds per run of every command, the commands interleaved run by run."""
    for argv in COMMANDS.values():  # warm the page cache (and the bytecode cache, if any)
        _once(argv, env)
    times: dict[str, list[float]] = {name: [] for name in COMMANDS}
    for _ in range(runs):
        for name, argv in COMMANDS.items():
            times[name].append(_once(argv, env))
    return times


def table(title: str, times: dict[str, list[float]]) -> str:
    """A Markdown table: median, best and the median's ratio to the baseline's."""
    base = statistics.median(times["import typer, rich.console"])
    lines = [
        f"{title}\n",
        "| command | median s | best s | median / baseline |",
        "| --- | ---: | ---: | ---: |",
    ]
    for name, values in times.items():
        median = statistics.median(values)
        lines.append(f"| `{name}` | {median:.3f} | {min(values):.3f} | {median / base:.2f}x |")
    return "\n".join(lines)


def main() -> None:
    """Measure both settings and print the Markdown tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    env = dict(os.environ, COLUMNS="100")
    env.setdefault("PYTHONDONTWRITEBYTECODE", "1")
    print(
        table("Without bytecode caches for probe (this machine's default)", measure(args.runs, env))
    )
    cache = tempfile.mkdtemp(prefix="probe-pycache-")
    try:
        cached = dict(env, PYTHONPYCACHEPREFIX=cache)
        cached.pop("PYTHONDONTWRITEBYTECODE")
        print()
        print(table("With bytecode caches (warm PYTHONPYCACHEPREFIX)", measure(args.runs, cached)))
    finally:
        shutil.rmtree(cache, ignore_errors=True)


if __name__ == "__main__":
    main()
