"""Helpers for the `probe authorize` tests: free loopback ports, Chromium, a fleet of journeys."""

from __future__ import annotations

import os
import random
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest

from probe.fleet.config import JOURNEYS, FleetConfig, parse_fleet_config
from tests.store.conftest import pg_admin, store, store_url  # noqa: F401


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now, below the kernel's ephemeral range.

    A redirect port is registered with the payer and fixed, so it is listened on again and
    again. A port from the ephemeral range (what binding port 0 gives) can be taken in between
    as the local port of any outgoing connection (the browser's, the store's), and the next
    attempt's listen then fails with "Address already in use".
    """
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    for _ in range(200):
        port = random.randrange(20000, max(20001, low))
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port below the ephemeral range")


def slug_of(journey: str) -> str:
    """The fleet slug of the payer that walks `journey`."""
    return "j-" + journey.replace("_", "-")


def journey_fleet(client_auth: str = "client_secret_basic") -> FleetConfig:
    """A fleet with one payer per login journey."""
    payers: list[dict[str, Any]] = [
        {"slug": slug_of(j), "oauth": {"journey": j, "client_auth": client_auth}} for j in JOURNEYS
    ]
    return parse_fleet_config({"seed": 13, "hosts": 2, "payers": payers})


def ensure_chromium() -> str:
    """Debian's Chromium; installed with apt-get when missing and running as root, else fail."""
    found = shutil.which("chromium") or (
        "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None
    )
    if found:
        return found
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], check=False, env=env, timeout=600)
        done = subprocess.run(
            ["apt-get", "install", "-y", "-qq", "chromium"],
            env=env,
            timeout=900,
            capture_output=True,
            text=True,
        )
        if done.returncode == 0 and Path("/usr/bin/chromium").exists():
            return "/usr/bin/chromium"
        pytest.fail(f"apt-get install -y chromium failed: {done.stderr[-2000:]}", pytrace=False)
    pytest.fail(
        "headless Chromium is needed and was not found at /usr/bin/chromium; install it with "
        "`apt-get install -y chromium`",
        pytrace=False,
    )


@pytest.fixture(scope="session")
def chromium() -> str:
    """The Chromium executable the browser tests drive."""
    return ensure_chromium()


async def probe_cli(args: list[str], env: dict[str, str], cwd: Path) -> tuple[int, str, str]:
    """Run `python -m probe.cli ARGS` in a subprocess; exit code, stdout, stderr."""
    result = await anyio.run_process(
        [sys.executable, "-m", "probe.cli", *args],
        check=False,
        env={**os.environ, **env, "COLUMNS": "200"},
        cwd=cwd,
    )
    return result.returncode, result.stdout.decode(), result.stderr.decode()
