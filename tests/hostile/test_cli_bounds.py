"""`probe check` and `probe sync` as processes against hostile servers: options, exit codes, RSS.

The process's own peak RSS (``ru_maxrss`` from ``wait4``) is compared with the same command
against a healthy payer: a 100 MiB body, a 10 GiB gzip bomb or an endless stream may cost the
capped body, never the body itself.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import pytest

from probe.fleet.config import parse_fleet_config
from probe.fleet.serve import running_fleet
from tests.hostile.conftest import assert_credentials_stayed_home

pytestmark = [pytest.mark.slow]

MEMORY_BOUND_MB = 100.0  # peak RSS above the healthy run's, with the default 20 MiB body cap
STARTUP_S = 10.0  # interpreter and imports on a loaded 2-vCPU machine, generously

CONFIG = {
    "seed": 9,
    "hosts": 2,
    "payers": [
        {"slug": "neighbour", "patients": 1},
        {"slug": "huge", "archetypes": [{"huge_body": {"mb": 100, "chunked": True}}]},
        {"slug": "bomb", "archetypes": [{"gzip_bomb": {"decompressed_mb": 10_240}}]},
        {"slug": "endless", "archetypes": ["endless_body"]},
        {"slug": "mute", "archetypes": [{"never_answers": {"scope": "data"}}], "patients": 1},
    ],
}


@dataclass
class Ran:
    code: int
    stdout: str
    stderr: str
    seconds: float
    peak_rss_mb: float

    def json(self) -> Any:
        return json.loads(self.stdout)


def run_probe(args: list[str], tmp: Path, env: dict[str, str] | None = None) -> Ran:
    """Run `python -m probe.cli ARGS` to completion; its exit code, output, time and peak RSS."""
    out, err = tmp / f"out-{time.monotonic_ns()}", tmp / f"err-{time.monotonic_ns()}"
    t0 = time.monotonic()
    with out.open("wb") as stdout, err.open("wb") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-m", "probe.cli", *args],
            stdout=stdout,
            stderr=stderr,
            env={**os.environ, **(env or {}), "COLUMNS": "200"},
        )
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
    return Ran(
        proc.returncode,
        out.read_text(),
        err.read_text(),
        time.monotonic() - t0,
        usage.ru_maxrss / 1024,  # kB on Linux
    )


def test_check_and_sync_processes_against_hostile_servers(tmp_path: Path) -> None:
    config = parse_fleet_config(CONFIG)
    runs: dict[str, Ran] = {}

    async def go() -> None:
        async with running_fleet(config) as fleet:
            check = ["check", "--format", "json", "--timeout", "2", "--max-retries", "0"]
            jobs = {slug: [*check, fleet.base_url(slug)] for slug in ("neighbour", "huge", "bomb")}
            jobs["endless"] = [*check, "--max-body-mb", "5", fleet.base_url("endless")]
            creds = fleet.credentials("mute")
            jobs["mute"] = [
                "sync",
                fleet.base_url("mute"),
                "--patient",
                fleet.patients("mute")[0],
                "--client-id",
                creds.client_id,
                "--client-secret-env",
                "HOSTILE_CS",
                "--refresh-token-env",
                "HOSTILE_RT",
                "--format",
                "json",
                "--timeout",
                "1",
                "--max-retries",
                "0",
                "--deadline",
                "20",
            ]
            env = {"HOSTILE_CS": creds.client_secret, "HOSTILE_RT": creds.refresh_token}
            for name, args in jobs.items():  # one at a time: the timings are the point
                runs[name] = await anyio.to_thread.run_sync(run_probe, args, tmp_path, env)
            assert_credentials_stayed_home(fleet)

    anyio.run(go)
    baseline = runs["neighbour"]
    assert baseline.code == 0, baseline.stderr
    for name in ("huge", "bomb", "endless"):
        ran = runs[name]
        assert ran.code == 1, (name, ran.stderr)  # a required check failed
        checks = {c["id"]: c for c in ran.json()["checks"]}
        reachable = checks["metadata.reachable"]
        assert reachable["evidence"]["error_class"] == "body_too_large", reachable
        assert ran.seconds < STARTUP_S + 2 * 2.0, (name, ran.seconds)
        growth = ran.peak_rss_mb - baseline.peak_rss_mb
        assert growth < MEMORY_BOUND_MB, (name, ran.peak_rss_mb, baseline.peak_rss_mb)
    endless = {c["id"]: c for c in runs["endless"].json()["checks"]}["metadata.reachable"]
    assert "5242880 bytes" in endless["message"]  # --max-body-mb 5 took effect

    mute = runs["mute"]
    result = mute.json()
    codes = {f["code"] for f in result["findings"]}
    assert {"no_response", "circuit_open"} <= codes, codes
    assert mute.code == 1 and result["outcome"] == "failed"
    assert mute.seconds < STARTUP_S + 20.0
    print({k: (v.code, round(v.seconds, 1), round(v.peak_rss_mb)) for k, v in runs.items()})
