"""`make demo` end to end: `probe demo` serves the fleet, crawls, scores and reports.

Each test runs the demo as a user would (its own process, a fresh working directory) and reads
what it left behind: the exit code, the scorecard on stdout, the HTML report and `./probe.db`.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import anyio
import httpx
import pytest
import yaml

from probe.fleet import journeys
from probe.fleet.app import Fleet
from probe.fleet.config import load_fleet_config

DEMO_CONFIG = Path(journeys.__file__).parent / "data" / "demo-fleet.yaml"
pytestmark = [pytest.mark.slow]

DEMO_PAYERS = 22
DEMO_ENDPOINTS = 29  # six payers have a sandbox as well, one a sandbox only


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.2", 0))
        return int(s.getsockname()[1])


def demo(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "probe.cli", "demo", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "COLUMNS": "200"},
    )


def check_kept_secrets(done: subprocess.CompletedProcess[str]) -> None:
    """--keep: the secrets file stays, its path is printed, and the printed `export BM_RT=...`
    yields Blue Meadow's refresh token, which the fleet (same seed) accepts."""
    secrets = Path(done.stdout.split("  secrets       ", 1)[1].split(" (kept", 1)[0])
    assert secrets.name == "fleet.secrets.yaml" and secrets.stat().st_mode & 0o777 == 0o600
    assert f"work directory kept: {secrets.parent}" in done.stderr
    export = next(ln.strip() for ln in done.stdout.splitlines() if "export BM_RT=" in ln)
    shown = subprocess.run(
        ["bash", "-c", f'{export} && printf %s "$BM_RT"'], capture_output=True, text=True
    ).stdout
    values = yaml.safe_load(secrets.read_text(encoding="utf-8"))
    assert shown == values["blue-meadow/refresh_token"] and shown.startswith("rt-")
    assert (secrets.parent / "fleet.yaml").exists()
    fleet = Fleet(load_fleet_config(DEMO_CONFIG), port=free_port())
    site = fleet.site("blue-meadow")

    async def refresh() -> httpx.Response:
        async with httpx.AsyncClient(transport=fleet.transport()) as client:
            return await client.post(
                site.token_url,
                data={"grant_type": "refresh_token", "refresh_token": shown},
                auth=("fleet-client-blue-meadow", values["blue-meadow/client_secret"]),
            )

    answer = anyio.run(refresh)
    assert answer.status_code == 200, answer.text
    assert answer.json()["access_token"]
    shutil.rmtree(secrets.parent)


def stored(db: Path, sql: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(db) as conn:
        return conn.execute(sql).fetchall()


def test_demo_twice_builds_one_history_of_the_same_endpoints(tmp_path: Path) -> None:
    port = free_port()
    first = demo(tmp_path, "--port", str(port))
    assert first.returncode == 0, first.stderr[-3000:]
    assert f"fleet of {DEMO_PAYERS} payers is up" in first.stderr
    assert f"port {port}" in first.stderr
    assert "crawl summary" in first.stdout
    assert "state-of-the-payer@" in first.stdout and "Vendors (median" in first.stdout
    report = tmp_path / "probe-report.html"
    assert report.stat().st_size > 100_000 and "<html" in report.read_text()[:500].lower()

    summary = first.stdout.split("\nprobe demo: run 1 probed", 1)[1]
    assert f" {DEMO_ENDPOINTS} endpoints of {DEMO_PAYERS} payers (5 vendors)" in summary
    assert "best payer" in summary and "worst payer" in summary and "best vendor" in summary
    assert "most common failures" in summary
    assert f"report        {report}" in summary
    assert f"database      {tmp_path / 'probe.db'}" in summary
    assert "next steps:" in summary and "probe score --payer" in summary
    assert "probe demo --keep" in summary  # how to keep the secrets for probe sync
    assert "portal.tls_valid" not in summary  # not applicable on loopback: never a failure

    second = demo(tmp_path, "--port", str(port), "--keep")
    assert second.returncode == 0, second.stderr[-3000:]
    assert "probe demo: run 2 probed" in second.stdout
    check_kept_secrets(second)
    db = tmp_path / "probe.db"
    assert stored(db, "select kind, status from probe_runs order by id") == [
        ("nightly", "completed"),
        ("nightly", "completed"),
    ]
    # The same base URLs both times: one endpoint row each, not one per demo.
    assert stored(db, "select count(*) from endpoints") == [(DEMO_ENDPOINTS,)]
    assert stored(db, "select count(distinct endpoint_id) from run_targets") == [(DEMO_ENDPOINTS,)]


def test_demo_moves_to_a_free_port_when_its_own_is_taken(tmp_path: Path) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.2", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        ran = demo(tmp_path, "--port", str(port))
    assert ran.returncode == 0, ran.stderr[-3000:]
    assert f"port {port} is taken; using a free one" in ran.stderr
    assert "state-of-the-payer@" in ran.stdout


def listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.2", port)) == 0


@pytest.mark.parametrize("after", ["fleet of", "demo: probe run", "demo: probe score"])
def test_ctrl_c_stops_the_demo_and_its_fleet(after: str, tmp_path: Path) -> None:
    """Ctrl-C at each stage, sent just as the demo starts the stage's process (a fork race)."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "probe.cli", "demo", "--port", str(port)],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stderr is not None
    deadline = time.monotonic() + 120
    lines: list[str] = []
    for line in process.stderr:
        lines.append(line)
        if after in line or time.monotonic() > deadline:
            break
    assert listening(port), "".join(lines)
    process.send_signal(signal.SIGINT)
    _, rest = process.communicate(timeout=60)
    output = "".join(lines) + rest
    assert process.returncode == 130, output[-3000:]
    assert "stopped by SIGINT" in output and "fleet stopped" in output
    assert not listening(port)
