"""A real SIGTERM to a `probe run` process, then `probe run --resume` (SQLite and PostgreSQL).

The interrupted run keeps what it observed and is marked interrupted; the resumed run finishes
only what was left, so each endpoint ends with exactly one set of observations.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import create_engine, func, select
from sqlalchemy.exc import SQLAlchemyError

from probe.store.tables import CheckResultRow, HttpRequestRow, ProbeRunRow, RunTargetRow
from tests.hostile.conftest import fleet_process

pytestmark = pytest.mark.slow

PAYERS = 12


def probe(*args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "probe.cli", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )


def test_sigterm_then_resume(store_url: str, tmp_path: Path) -> None:
    config = {
        "seed": 5,
        "hosts": 3,
        "payers": [
            {
                "slug": f"slow-{i}",
                "patients": 1,
                "archetypes": [{"slow": {"median_ms": 120, "sigma": 0}}],
            }
            for i in range(PAYERS)
        ],
    }
    engine = create_engine(store_url)
    with fleet_process(config, tmp_path / "fleet") as fleet:
        args = [
            "run",
            str(fleet.directory),
            "--db",
            store_url,
            "--concurrency",
            "2",
            "--per-host",
            "1",
            "--no-portal",
        ]
        first = probe(*args)
        deadline = time.monotonic() + 60
        done = 0
        while time.monotonic() < deadline and first.poll() is None:
            time.sleep(0.2)
            try:
                with engine.connect() as conn:
                    done = (
                        conn.scalar(
                            select(func.count())
                            .select_from(RunTargetRow)
                            .where(RunTargetRow.status == "done")
                        )
                        or 0
                    )
            except SQLAlchemyError:  # the schema may not exist yet
                continue
            if done >= 2:
                break
        assert first.poll() is None, "the crawl finished before it could be interrupted"
        first.send_signal(signal.SIGTERM)
        _, err = first.communicate(timeout=60)
        assert first.returncode == 130, err.decode()
        assert b"probe run --resume" in err
        with engine.connect() as conn:
            status, finished = conn.execute(
                select(ProbeRunRow.status, ProbeRunRow.finished_at)
            ).one()
            kept = conn.scalar(
                select(func.count()).select_from(RunTargetRow).where(RunTargetRow.status == "done")
            )
        assert status == "interrupted" and finished is not None
        assert 2 <= kept < PAYERS

        second = probe(*args, "--resume")
        out, err = second.communicate(timeout=120)
        assert second.returncode == 0, err.decode()
        assert f"{kept} already done".encode() in out

    with engine.connect() as conn:
        runs = conn.execute(select(ProbeRunRow.status)).all()
        targets = conn.execute(select(RunTargetRow.status)).all()
        reachable = conn.scalar(
            select(func.count())
            .select_from(CheckResultRow)
            .where(CheckResultRow.check_id == "metadata.reachable")
        )
        metadata_requests = conn.scalar(
            select(func.count())
            .select_from(HttpRequestRow)
            .where(HttpRequestRow.step == "discovery", HttpRequestRow.url.like("%/metadata"))
        )
    engine.dispose()
    assert [r.status for r in runs] == ["completed"]  # one run, resumed to completion
    assert [t.status for t in targets] == ["done"] * PAYERS
    # Nothing duplicated, nothing lost: one verdict and one /metadata request per endpoint.
    assert reachable == PAYERS
    assert metadata_requests == PAYERS
