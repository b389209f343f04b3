"""PostgreSQL stopped in the middle of a crawl: nothing is lost.

Each test starts a throwaway PostgreSQL cluster of its own (the machine's `initdb` and
`pg_ctl`, a free port on 127.0.0.1, a data directory under /tmp) and never touches the shared
server on 5432. The fleet runs in its own process; results are compared with an uninterrupted
crawl of the same fleet into SQLite: each check's status, the number of requests by step and
status, each sync's outcome and resources.

1. The database is stopped (`pg_ctl stop -m immediate`, a crash) and restarted a few seconds
   later: the crawl buffers, retries, completes, and every observation is there.
2. The database stays down past `--store-down-limit`: `probe run` stops cleanly with exit code
   4 and says so; once the database is back, `probe run --resume` completes the run.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import anyio
import pytest

from probe.cli.progress import LogReporter
from probe.crawl.crawler import CrawlSummary, crawl, select_targets
from probe.crawl.options import CrawlOptions
from probe.directory.schema import load_directory
from probe.directory.secrets import SecretSource
from probe.drift.settings import DriftSettings
from probe.http.limits import Limits
from probe.store.engine import open_store
from probe.store.tables import RunStatus
from tests.hostile.conftest import FleetProcess, fleet_process, kill_resume_bench

pytestmark = [pytest.mark.slow]

FLEET = {
    "seed": 17,
    "hosts": 4,
    "payers": [
        {
            "slug": f"p{i:02d}",
            "archetypes": [
                {"slow": {"median_ms": 60, "sigma": 0}},
                *(["dangling_references"] if i % 4 == 1 else []),
            ],
            "patients": 1,
        }
        for i in range(16)
    ],
}
RUN_OPTIONS = ["--concurrency", "6", "--per-host", "2", "--rate", "20", "--no-portal"]


def bench() -> ModuleType:
    return kill_resume_bench()


class Cluster:
    """A throwaway PostgreSQL cluster on a free port, run as `postgres` when we are root."""

    def __init__(self) -> None:
        found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
        found += [Path(p) for p in filter(None, [shutil.which("initdb")])]
        if not found:
            pytest.fail("no initdb on this machine (the PostgreSQL server package provides it)")
        self.bin = found[-1].parent
        self.root = Path(tempfile.mkdtemp(prefix="probe-pg-", dir="/tmp"))
        self.data = self.root / "data"
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = int(s.getsockname()[1])
        self.as_root = os.geteuid() == 0
        if self.as_root:
            shutil.chown(self.root, "postgres", "postgres")
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync")

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, tool: str, *args: str) -> None:
        command = [str(self.bin / tool), *args]
        if self.as_root:
            command = ["runuser", "-u", "postgres", "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"{tool} failed: {done.stdout}{done.stderr}")

    def start(self) -> None:
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"
        log = str(self.root / "server.log")
        self._run("pg_ctl", "-D", str(self.data), "-l", log, "-o", options, "-w", "start")

    def crash(self) -> None:
        """Stop at once, as a crash would (recovery runs on the next start)."""
        self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")

    def destroy(self) -> None:
        with contextlib.suppress(RuntimeError):  # already stopped
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    made = Cluster()
    try:
        made.start()
        yield made
    finally:
        made.destroy()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[FleetProcess, Any]]:
    """The fleet (one process for the module) and its uninterrupted crawl's results."""
    tmp = tmp_path_factory.mktemp("outage")
    with fleet_process(FLEET, tmp / "fleet") as fleet:
        db = tmp / "reference.db"
        run = [sys.executable, "-m", "probe.cli", "run", str(fleet.directory), "--db"]
        t0 = time.monotonic()
        done = subprocess.run(
            [*run, f"sqlite:///{db}", *RUN_OPTIONS], capture_output=True, timeout=300
        )
        print(f"reference crawl: {time.monotonic() - t0:.1f} s")
        assert done.returncode == 0, done.stderr.decode()[-2000:]
        kr = bench()
        latest = kr.latest_run(db)
        assert latest is not None and latest[1] == "completed"
        yield fleet, dict(kr.stored_results(db, latest[0]))


def test_postgres_crash_and_restart_mid_crawl_loses_nothing(
    cluster: Cluster, served: tuple[FleetProcess, Any]
) -> None:
    kr = bench()
    fleet, expected = served
    store = open_store(cluster.url)
    directory = load_directory(fleet.directory)
    options = CrawlOptions(
        concurrency=6,
        per_host=2,
        rate=20,
        limits=Limits(total_timeout=30),
        portal=False,
        store_down_limit=120,
        drift=DriftSettings(observe_keys=True),  # as `probe run` (the reference) does
    )
    box: dict[str, Any] = {}

    async def outage() -> None:
        await anyio.sleep(2)
        await anyio.to_thread.run_sync(cluster.crash)
        box["down_at"] = time.monotonic()
        await anyio.sleep(4)
        await anyio.to_thread.run_sync(cluster.start)
        box["up_at"] = time.monotonic()

    async def go() -> None:
        async with anyio.create_task_group() as tg:
            tg.start_soon(outage)
            box["summary"] = await crawl(
                store,
                directory,
                select_targets(directory),
                options,
                LogReporter(io.StringIO()),
                secrets=SecretSource(Path(str(directory.secrets_file))),
            )
            box["done_at"] = time.monotonic()

    try:
        anyio.run(go)
    finally:
        store.close()
    summary: CrawlSummary = box["summary"]
    # The outage happened while the crawl ran (had it finished meanwhile, the end of the run
    # waits for the database: writer.close(retry_for=...)).
    assert box["down_at"] < box["done_at"] and box["up_at"] <= box["done_at"]
    assert summary.status is RunStatus.COMPLETED and summary.store_error is None
    assert len(summary.outcomes) == len(expected)
    got = kr.stored_results(cluster.url, summary.run_id)
    assert kr.differences(expected, got) == []


def test_a_store_down_past_its_limit_stops_the_run_and_resume_completes_it(
    cluster: Cluster, served: tuple[FleetProcess, Any]
) -> None:
    kr = bench()
    fleet, expected = served
    args = [sys.executable, "-m", "probe.cli", "run", str(fleet.directory), "--db", cluster.url]
    args += [*RUN_OPTIONS, "--store-down-limit", "3"]
    process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while kr.latest_run(cluster.url) is None:  # the run has started: targets listed
        assert time.monotonic() < deadline and process.poll() is None
        time.sleep(0.2)
    time.sleep(2)
    cluster.crash()
    down_at = time.monotonic()
    _, err = process.communicate(timeout=120)
    stopped_after = time.monotonic() - down_at
    stderr = err.decode()
    assert process.returncode == 4, stderr[-3000:]
    assert "the store has been unreachable" in stderr, stderr[-3000:]
    assert "probe run --resume" in stderr, stderr[-3000:]
    print(f"stopped {stopped_after:.1f} s after the crash")
    assert stopped_after < 30, stopped_after  # 3 s limit, plus flush backoff and shutdown

    cluster.start()
    latest = kr.latest_run(cluster.url)
    assert latest is not None and latest[1] == "running"  # it could not say more
    resumed = subprocess.run([*args, "--resume"], capture_output=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr.decode()[-3000:]
    assert b"already done" in resumed.stdout
    final = kr.latest_run(cluster.url)
    assert final is not None and final[0] == latest[0] and final[1] == "completed"
    got = kr.stored_results(cluster.url, final[0])
    assert kr.differences(expected, got) == []
