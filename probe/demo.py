"""`make demo`: serve a fleet of ~20 simulated payers on loopback and probe every one of them.

Starts ``probe fleet serve`` (the demo fleet of ``probe/fleet/data/demo-fleet.yaml``) in its own
process group, waits until it answers, then runs the nightly crawl ``probe run DIRECTORY`` (or,
where that command does not exist, ``probe check`` on each base URL), prints a summary and stops
the fleet. The fleet never outlives the demo: it is stopped in a ``finally`` block, on
SIGINT/SIGTERM/SIGHUP, and (on Linux) by the kernel if the demo itself is killed.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from types import FrameType
from typing import Any

import httpx

from probe.directory import load_directory, targets

FLEET_START_TIMEOUT = 60.0
PROBE_TIMEOUT = 100.0
REPORT = "probe-report.html"


class _Stopped(Exception):
    """A signal asked the demo to stop."""


def _on_signal(signum: int, frame: FrameType | None) -> None:
    raise _Stopped(signal.Signals(signum).name)


def _die_with_parent() -> None:
    """In the child: get SIGTERM when the demo dies, even by SIGKILL (Linux prctl)."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _spawn(args: list[str], **kwargs: Any) -> subprocess.Popen[bytes]:
    return subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
        [sys.executable, "-m", "probe.cli", *args],
        start_new_session=True,
        preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
        **kwargs,
    )


def _stop(process: subprocess.Popen[bytes] | None, name: str) -> None:
    """Stop a child and its whole process group: SIGTERM, then SIGKILL after 10 s."""
    if process is None or process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=5)
    print(f"demo: {name} stopped", file=sys.stderr)


@contextlib.contextmanager
def _signals_stop_the_demo() -> Iterator[None]:
    wanted = [signal.SIGINT, signal.SIGTERM, signal.SIGHUP]
    previous = {sig: signal.signal(sig, _on_signal) for sig in wanted}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _wait_ready(process: subprocess.Popen[bytes], directory_file: Path, log: Path) -> str:
    """Wait for the fleet's directory and a health answer; returns the first host's origin."""
    deadline = time.monotonic() + FLEET_START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the fleet exited ({process.returncode}): {log.read_text()}")
        if directory_file.exists():
            base = load_directory(directory_file).payers[0].endpoints[0].base_url
            origin = base.split("/payers/", 1)[0]
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(origin + "/_fleet/health", timeout=2).status_code == 200:
                    return origin
        time.sleep(0.1)
    raise RuntimeError("the fleet did not answer within a minute")


def _has_command(name: str) -> bool:
    try:
        from probe.cli import app
    except ImportError:
        return False
    return any(
        (c.name or (c.callback.__name__ if c.callback else "")) == name
        for c in app.registered_commands
    )


def _probe(args: list[str], what: str, timeout: float = PROBE_TIMEOUT) -> int:
    """Run one probe command in the foreground (the default store: probe.db in this directory)."""
    print(f"demo: probe {' '.join(args)}", file=sys.stderr)
    process = _spawn(args)
    try:
        return process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        print(f"demo: {what} took too long; stopping it", file=sys.stderr)
        return 1
    finally:
        _stop(process, what)


def _run_crawl(directory_file: Path, workdir: Path) -> int:
    # The fleet lives on loopback, so the demo can be less polite than a nightly run.
    args = ["run", str(directory_file), "--rate", "50", "--per-host", "4"]
    status = _probe([*args, "--token-store", str(workdir / "tokens.yaml")], "probe run")
    if status != 0:
        return status
    _probe(["score"], "probe score", timeout=60)
    if _has_command("report"):
        _probe(["report", "--html", REPORT], "probe report", timeout=60)
        print(f"demo: HTML report written to {Path(REPORT).resolve()}", file=sys.stderr)
    return status


def _run_checks(directory_file: Path) -> int:
    worst = 0
    rows = []
    for target in targets(load_directory(directory_file)):
        process = _spawn(
            ["check", target.base_url, "--format", "json", "--timeout", "10"],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        try:
            out, _ = process.communicate(timeout=60)
        finally:
            _stop(process, "probe check")
        # Exit 1 means "a required check failed": expected for the fleet's broken payers.
        if process.returncode not in (0, 1):
            worst = max(worst, process.returncode or 0)
        try:
            summary = json.loads(out)["summary"]
        except (ValueError, KeyError, TypeError):
            summary = {}
        rows.append((target.payer.name, target.environment, summary))
    for name, env, summary in rows:
        counts = ", ".join(f"{k} {v}" for k, v in summary.items() if v) or "no report"
        print(f"  {name:<32} {env:<10} {counts}")
    return worst


def _fleet_summary(origin: str) -> None:
    with contextlib.suppress(httpx.HTTPError, ValueError):
        stats = httpx.get(origin + "/_fleet/stats?all=1", timeout=5).json()
        print(f"\nfleet: {stats['total_requests']} requests served")
        for host, counters in stats["hosts"].items():
            statuses = ", ".join(f"{k}: {v}" for k, v in counters["statuses"].items())
            print(
                f"  {host:<12} {counters['requests']:>5} requests, at most "
                f"{counters['max_concurrent']} at once, {counters['resets']} resets ({statuses})"
            )


def main(argv: list[str] | None = None) -> int:
    """Run the demo; 0 when the probe ran to completion (findings included), else non-zero."""
    parser = argparse.ArgumentParser(prog="python -m probe.demo", description=__doc__)
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument("--checks", action="store_true", help="use probe check, not probe run")
    options = parser.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="probe-demo-"))
    directory_file = workdir / "endpoints.yaml"
    log = workdir / "fleet.log"
    fleet: subprocess.Popen[bytes] | None = None
    status = 1
    started = time.monotonic()
    try:
        with (
            _signals_stop_the_demo(),
            resources.as_file(
                resources.files("probe.fleet").joinpath("data/demo-fleet.yaml")
            ) as config,
            log.open("wb") as log_handle,
        ):
            fleet = _spawn(
                [
                    "fleet",
                    "serve",
                    "--config",
                    str(config),
                    "--directory-out",
                    str(directory_file),
                    "--secrets-out",
                    str(workdir / "secrets.yaml"),
                ],
                stdout=subprocess.DEVNULL,
                stderr=log_handle,
            )
            origin = _wait_ready(fleet, directory_file, log)
            count = len(load_directory(directory_file).payers)
            print(
                f"demo: fleet of {count} payers is up ({log.read_text().strip()})", file=sys.stderr
            )
            if _has_command("run") and not options.checks:
                status = _run_crawl(directory_file, workdir)
            else:
                print("demo: probe check on every endpoint", file=sys.stderr)
                status = _run_checks(directory_file)
            _fleet_summary(origin)
    except _Stopped as stop:
        print(f"demo: stopped by {stop}", file=sys.stderr)
        status = 130
    except RuntimeError as exc:
        print(f"demo: {exc}", file=sys.stderr)
        status = 1
    finally:
        _stop(fleet, "fleet")
        if options.keep:
            print(f"demo: work directory kept: {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    print(f"demo: done in {time.monotonic() - started:.0f}s (exit {status})", file=sys.stderr)
    return status


if __name__ == "__main__":
    raise SystemExit(main())
