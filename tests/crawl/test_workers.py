"""Several workers share one run: same results as one worker, a killed worker's hosts are taken
over, and per-host politeness holds across processes (the fleet's own counters show it).

The fleet runs in its own process; every crawl is a `probe run` process, as in production.
Each test runs on SQLite and on the real PostgreSQL (the `store_url` fixture).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, select

from probe.store.tables import RunHostRow
from tests.hostile.conftest import FleetProcess, fleet_process, kill_resume_bench

pytestmark = [pytest.mark.slow]

PER_HOST = 2
FLEET = {
    "seed": 29,
    "hosts": 8,
    "payers": [
        {
            "slug": f"w{i:02d}",
            "archetypes": [{"slow": {"median_ms": 250, "sigma": 0}}],
            "patients": 1,
        }
        for i in range(16)
    ],
}
RUN = ["--concurrency", "4", "--per-host", str(PER_HOST), "--rate", "50", "--no-portal"]


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[FleetProcess, Any]]:
    """The fleet, and its results crawled by one worker into SQLite (the reference)."""
    workdir = tmp_path_factory.mktemp("workers-fleet")
    with fleet_process(FLEET, workdir) as served:
        db = workdir / "reference.db"
        done = _probe_run(served.directory, f"sqlite:///{db}")
        assert done.returncode == 0, done.stderr[-3000:]
        kr = kill_resume_bench()
        run = kr.latest_run(db)
        assert run is not None and run[1] == "completed"
        yield served, kr.stored_results(db, run[0])


def _command(directory: Path, db: str, *extra: str) -> list[str]:
    return [sys.executable, "-m", "probe", "run", str(directory), "--db", db, *RUN, *extra]


def _spawn(directory: Path, db: str, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        _command(directory, db, *extra), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def _probe_run(directory: Path, db: str, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        _command(directory, db, *extra), capture_output=True, text=True, timeout=300
    )


def _reset_fleet_counters(fleet: FleetProcess) -> None:
    host = fleet.home_host("w00")
    httpx.delete(f"http://{host}:{fleet.port}/_fleet/stats", timeout=10).raise_for_status()


def _max_in_flight_per_host(fleet: FleetProcess) -> dict[str, int]:
    host = fleet.home_host("w00")
    stats = httpx.get(f"http://{host}:{fleet.port}/_fleet/stats?all=1", timeout=10).json()
    return {h: v["max_concurrent"] for h, v in stats["hosts"].items()}


def _hosts(db: str, run_id: int) -> list[tuple[str, str, str | None, int]]:
    engine = create_engine(db)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                select(RunHostRow.host, RunHostRow.status, RunHostRow.worker, RunHostRow.claims)
                .where(RunHostRow.run_id == run_id)
                .order_by(RunHostRow.host)
            ).all()
    finally:
        engine.dispose()
    return [tuple(r) for r in rows]  # type: ignore[misc]


def test_two_workers_store_what_one_worker_stores_and_stay_polite(
    fleet: tuple[FleetProcess, Any], store_url: str
) -> None:
    served, expected = fleet
    kr = kill_resume_bench()
    _reset_fleet_counters(served)
    done = _probe_run(served.directory, store_url, "--workers", "2")
    assert done.returncode == 0, done.stderr[-3000:]
    run = kr.latest_run(store_url)
    assert run is not None and run[1] == "completed"
    # The first worker reports the whole run, from the store, after the table of its own
    # endpoints (printed while the other worker finishes; that one's output goes nowhere).
    assert f"run {run[0]} as a whole: 16 endpoints (16 done); 2 workers took" in done.stdout
    assert done.stdout.count("crawl summary") == 1
    assert done.stdout.index("crawl summary") < done.stdout.index(f"run {run[0]} completed")
    assert kr.differences(expected, kr.stored_results(store_url, run[0])) == []
    hosts = _hosts(store_url, run[0])
    assert len(hosts) == 8 and all(status == "done" for _, status, _, _ in hosts)
    workers = {worker.rsplit(":", 2)[1] for _, _, worker, _ in hosts if worker}
    assert len(workers) == 2, hosts  # both processes took part
    # Politeness per host holds across the two processes: never more than --per-host at once.
    peaks = _max_in_flight_per_host(served)
    assert peaks and max(peaks.values()) <= PER_HOST, peaks
    assert max(peaks.values()) == PER_HOST  # the limit was reached, so the bound means something


def test_a_killed_worker_s_hosts_are_finished_by_the_other(
    fleet: tuple[FleetProcess, Any], store_url: str
) -> None:
    served, expected = fleet
    kr = kill_resume_bench()
    first = _spawn(served.directory, store_url, "--lease", "2")
    try:
        deadline = time.monotonic() + 60
        while (run := kr.latest_run(store_url)) is None:
            assert time.monotonic() < deadline and first.poll() is None
            time.sleep(0.1)
        second = _spawn(served.directory, store_url, "--lease", "2", "--join", str(run[0]))
        # Kill the joiner as soon as it holds a host, mid-work.
        deadline = time.monotonic() + 60
        marker = f":{second.pid}:"
        while not any(
            w and marker in w and status == "claimed"
            for _, status, w, _ in _hosts(store_url, run[0])
        ):
            assert time.monotonic() < deadline, _hosts(store_url, run[0])
            assert second.poll() is None, second.communicate()[1][-3000:]
            time.sleep(0.02)
        os.kill(second.pid, signal.SIGKILL)
        second.wait(timeout=30)
        _out, err = first.communicate(timeout=300)
    finally:
        for process in (first,):
            if process.poll() is None:
                process.kill()
    assert first.returncode == 0, err[-3000:]
    final = kr.latest_run(store_url)
    assert final is not None and final == (run[0], "completed")
    # Nothing lost, nothing twice: the same results as one worker alone.
    assert kr.differences(expected, kr.stored_results(store_url, run[0])) == []
    hosts = _hosts(store_url, run[0])
    assert all(status == "done" for _, status, _, _ in hosts)
    assert any(claims >= 2 for _, _, _, claims in hosts), hosts  # one host was taken over


def test_sigterm_to_the_first_worker_stops_them_all_and_resume_finishes(
    fleet: tuple[FleetProcess, Any], store_url: str
) -> None:
    served, expected = fleet
    kr = kill_resume_bench()
    first = _spawn(served.directory, store_url, "--workers", "2")
    deadline = time.monotonic() + 60
    # Wait until both workers hold hosts, then interrupt the first one only (as `kill PID`).
    while len({w for _, status, w, _ in _hosts_of_latest(store_url) if status == "claimed"}) < 2:
        assert time.monotonic() < deadline and first.poll() is None
        time.sleep(0.05)
    first.send_signal(signal.SIGTERM)
    _, err = first.communicate(timeout=60)  # returns only once the other worker stopped too
    assert first.returncode == 130, err[-3000:]
    run = kr.latest_run(store_url)
    assert run is not None and run[1] == "interrupted"
    resumed = _probe_run(served.directory, store_url, "--resume")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert kr.latest_run(store_url) == (run[0], "completed")
    assert kr.differences(expected, kr.stored_results(store_url, run[0])) == []


def _hosts_of_latest(db: str) -> list[tuple[str, str, str | None, int]]:
    run = kill_resume_bench().latest_run(db)
    return [] if run is None else _hosts(db, run[0])
