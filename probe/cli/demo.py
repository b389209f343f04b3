"""`make demo`: serve a fleet of ~20 simulated payers on loopback and probe every one of them.

Starts ``probe fleet serve`` (the demo fleet of ``probe/fleet/data/demo-fleet.yaml``) in its own
process group on a fixed port (so that repeated demos probe the same base URLs and the default
store ``./probe.db`` builds one history), waits until it answers, runs the nightly crawl
``probe run DIRECTORY``, ``probe score`` and ``probe report --html``, and stops the fleet. The
fleet never outlives the demo: it is stopped in a ``finally`` block, on SIGINT/SIGTERM/SIGHUP,
and (on Linux) by the kernel if the demo itself is killed.
"""

from __future__ import annotations

import contextlib
import ctypes
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
from typing import TYPE_CHECKING, Annotated, Any

import typer

from probe.cli.fleet import require_fleet_extra

if TYPE_CHECKING:
    from probe.directory.schema import Directory

FLEET_START_TIMEOUT = 60.0
PROBE_TIMEOUT = 100.0
LOGIN_TIMEOUT = 240.0  # more for `probe run` while test members sign in through the browser
REPORT = "probe-report.html"
DEMO_PORT = 8791  # fixed, so that repeated demos probe the same base URLs and build one history
DIRECTORY_FILE = "fleet.yaml"  # in the demo's work directory, with the secrets beside it
SECRETS_FILE = "fleet.secrets.yaml"


class _Stopped(Exception):
    """A signal asked the demo to stop."""


_stop_requested: list[str] = []  # the signals received; the demo stops at its next check


def _on_signal(signum: int, frame: FrameType | None) -> None:
    # Only record it: an exception raised from a handler can land in a fork hook of
    # subprocess.Popen, where Python prints and drops it (a Ctrl-C the demo would never see).
    _stop_requested.append(signal.Signals(signum).name)


def _check_stop() -> None:
    """Raise `_Stopped` when a signal asked the demo to stop."""
    if _stop_requested:
        raise _Stopped(_stop_requested[0])


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
    _stop_requested.clear()
    previous = {sig: signal.signal(sig, _on_signal) for sig in wanted}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _wait_ready(process: subprocess.Popen[bytes], directory_file: Path, log: Path) -> str:
    """Wait for the fleet's directory and a health answer; returns the first host's origin."""
    import httpx

    from probe.directory.schema import load_directory

    deadline = time.monotonic() + FLEET_START_TIMEOUT
    while time.monotonic() < deadline:
        _check_stop()
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


def _probe(args: list[str], what: str, timeout: float = PROBE_TIMEOUT) -> int:
    """Run one probe command in the foreground (the default store: probe.db in this directory)."""
    _check_stop()
    print(f"demo: probe {' '.join(args)}", file=sys.stderr)
    process = _spawn(args)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            _check_stop()
            with contextlib.suppress(subprocess.TimeoutExpired):
                return process.wait(timeout=0.1)
        print(f"demo: {what} took too long; stopping it", file=sys.stderr)
        return 1
    finally:
        _stop(process, what)


def _free_port_block(first: int, count: int) -> int:
    """The first port of `count` consecutive ports free on 127.0.0.1, from `first` on (another
    demo running at the same time holds the fleet's usual redirect ports)."""
    import socket

    for start in range(first, 65535 - count, count):
        try:
            for port in range(start, start + count):
                with socket.socket() as sock:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the listener
                    sock.bind(("127.0.0.1", port))
        except OSError:
            continue
        return start
    return first


#: The payers whose members sign in during the demo: a clean consent journey, an eligibility
#: error on the callback and an identity-verification dead end, kept few so the demo stays quick.
DEMO_LOGIN_PAYERS = ("Blue Meadow Health", "Harbor Care Plan", "Pine Valley Medicaid",
                     "Cascade Family Health", "Redwood Community Plan")  # fmt: skip


def _only_some_logins(directory: Directory) -> Directory:
    """`directory` with member logins kept only for DEMO_LOGIN_PAYERS."""
    payers = []
    for payer in directory.payers:
        if payer.name not in DEMO_LOGIN_PAYERS:
            endpoints = [
                e.model_copy(
                    update={
                        "test_patients": [
                            p.model_copy(update={"authorize": None}) for p in e.test_patients
                        ]
                    }
                )
                for e in payer.endpoints
            ]
            payer = payer.model_copy(update={"endpoints": endpoints})
        payers.append(payer)
    return directory.model_copy(update={"payers": payers})


def _member_logins(directory_file: Path) -> bool:
    """Give the fleet's test members browser logins (`authorize:` blocks) in the directory;
    False (said once) when Playwright or Chromium is missing, and the demo runs without them."""
    import yaml

    from probe.crawl.authorizing import login_unavailable
    from probe.directory.schema import load_directory
    from probe.fleet.catalog import (
        AUTHORIZE_PORT,
        directory_text,
        member_login_secrets,
        with_member_logins,
        write_secrets,
    )

    missing = login_unavailable()
    if missing is not None:
        print(
            f"demo: {missing}; test members are not signed in through a browser, so the "
            "Patient Experience metrics stay 'not enough data'",
            file=sys.stderr,
        )
        return False
    directory = load_directory(directory_file)
    first_port = _free_port_block(AUTHORIZE_PORT, len(directory.payers))
    directory = _only_some_logins(with_member_logins(directory, first_port))
    if directory.secrets_file is None:
        return False
    secrets_file = Path(directory.secrets_file)
    values = yaml.safe_load(secrets_file.read_text(encoding="utf-8")) or {}
    write_secrets(secrets_file, {**values, **member_login_secrets(directory)})
    directory_file.write_text(directory_text(directory), encoding="utf-8")
    print("demo: test members sign in through headless Chromium during probe run", file=sys.stderr)
    return True


def _run_crawl(directory_file: Path, workdir: Path, logins: bool = False) -> int:
    # The fleet lives on loopback, so the demo can be less polite than a nightly run.
    args = ["run", str(directory_file), "--rate", "50", "--per-host", "4"]
    timeout = PROBE_TIMEOUT + (LOGIN_TIMEOUT if logins else 0.0)
    status = _probe(
        [*args, "--token-store", str(workdir / "tokens.yaml")], "probe run", timeout=timeout
    )
    if status != 0:
        return status
    status = _probe(["score"], "probe score", timeout=60)
    if status != 0:
        return status
    status = _probe(["report", "--html", REPORT], "probe report", timeout=60)
    if status == 0:
        print(f"demo: HTML report written to {Path(REPORT).resolve()}", file=sys.stderr)
    return status


def _fleet_summary(origin: str) -> None:
    import httpx

    with contextlib.suppress(httpx.HTTPError, ValueError):
        stats = httpx.get(origin + "/_fleet/stats?all=1", timeout=5).json()
        print(f"\nfleet: {stats['total_requests']} requests served")
        for host, counters in stats["hosts"].items():
            statuses = ", ".join(f"{k}: {v}" for k, v in counters["statuses"].items())
            print(
                f"  {host:<12} {counters['requests']:>5} requests, at most "
                f"{counters['max_concurrent']} at once, {counters['resets']} resets ({statuses})"
            )


def _start_fleet(workdir: Path, config: Path, port: int) -> tuple[subprocess.Popen[bytes], str]:
    """Start `probe fleet serve` on `port` (0: any free one); the process and its first origin.

    Raises `PortTaken` when the port is in use on one of the fleet's addresses.
    """
    directory_file = workdir / DIRECTORY_FILE
    log = workdir / "fleet.log"
    with log.open("wb") as log_handle:
        fleet = _spawn(
            [
                "fleet",
                "serve",
                "--config",
                str(config),
                "--port",
                str(port),
                "--directory-out",
                str(directory_file),
                "--secrets-out",
                str(workdir / SECRETS_FILE),
            ],
            stdout=subprocess.DEVNULL,
            stderr=log_handle,
        )
    try:
        return fleet, _wait_ready(fleet, directory_file, log)
    except RuntimeError:
        _stop(fleet, "fleet")
        if port and "cannot listen" in log.read_text():
            raise PortTaken(port) from None
        raise
    except BaseException:  # a signal (_Stopped) or Ctrl-C while waiting
        _stop(fleet, "fleet")
        raise


class PortTaken(Exception):
    """The demo's fixed port is taken on one of the fleet's addresses."""


def demo_command(
    port: Annotated[
        int,
        typer.Option(help="the fleet's port (any free one when taken; 0: any)", min=0, max=65535),
    ] = DEMO_PORT,
    keep: Annotated[
        bool,
        typer.Option(
            "--keep",
            help="keep the work directory: the fleet's directory and secrets file (mode 0600), "
            "its log and the rotated tokens; their paths are printed",
        ),
    ] = False,
) -> None:
    """Serve simulated payers on loopback, crawl them, print the scores, write the HTML report."""
    raise typer.Exit(run_demo(port, keep=keep))


def run_demo(port: int = DEMO_PORT, *, keep: bool = False) -> int:
    """Run the demo; 0 when the probe ran to completion (findings included), else non-zero."""
    require_fleet_extra()
    from probe.directory.schema import load_directory

    workdir = Path(tempfile.mkdtemp(prefix="probe-demo-"))
    directory_file = workdir / DIRECTORY_FILE
    fleet: subprocess.Popen[bytes] | None = None
    status = 1
    started = time.monotonic()
    try:
        with (
            _signals_stop_the_demo(),
            resources.as_file(
                resources.files("probe.fleet").joinpath("data/demo-fleet.yaml")
            ) as config,
        ):
            try:
                fleet, origin = _start_fleet(workdir, config, port)
            except PortTaken as taken:
                print(f"demo: port {taken} is taken; using a free one", file=sys.stderr)
                fleet, origin = _start_fleet(workdir, config, 0)
            count = len(load_directory(directory_file).payers)
            up = (workdir / "fleet.log").read_text().strip()
            print(f"demo: fleet of {count} payers is up ({up})", file=sys.stderr)
            status = _run_crawl(directory_file, workdir, logins=_member_logins(directory_file))
            _check_stop()
            _fleet_summary(origin)
    except _Stopped as stop:
        print(f"demo: stopped by {stop}", file=sys.stderr)
        status = 130
    except RuntimeError as exc:
        print(f"demo: {exc}", file=sys.stderr)
        status = 1
    finally:
        _stop(fleet, "fleet")
        if keep:
            print(
                f"demo: work directory kept: {workdir} (directory {DIRECTORY_FILE}, "
                f"secrets {SECRETS_FILE})",
                file=sys.stderr,
            )
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    seconds = time.monotonic() - started
    if status == 0:
        _print_summary(seconds, workdir / SECRETS_FILE if keep else None)
    print(f"demo: done in {seconds:.0f}s (exit {status})", file=sys.stderr)
    return status


def _print_summary(seconds: float, secrets: Path | None) -> None:
    """The one-screen summary and next steps (docs: probe/cli/demo_summary.py)."""
    from probe.cli.demo_summary import read_facts, summary_lines
    from probe.store.errors import StoreError

    try:
        facts = read_facts()
    except (StoreError, OSError) as exc:
        print(f"demo: no summary: {exc}", file=sys.stderr)
        return
    except typer.Exit:  # no database or rubric: said on stderr already
        return
    if facts is not None:
        print("\n" + "\n".join(summary_lines(facts, Path(REPORT), seconds, secrets)))
