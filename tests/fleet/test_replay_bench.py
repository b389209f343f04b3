"""bench/scale.py's replayed fleet: answers recorded by bench/scale_fleet.py --record, served
again byte for byte by bench/replay_fleet.py on the same addresses and port; a request that was
not recorded is a counted 404."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import yaml

pytestmark = pytest.mark.slow

BENCH = Path(__file__).resolve().parents[2] / "bench"
# A /24 of its own (bench/scale.py uses 127.0.10.x upwards): the subnet is per test process.
SUBNET = 200 + os.getpid() % 50


@contextmanager
def process(*args: str) -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen([sys.executable, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)


def fetch(urls: list[tuple[str, str]]) -> list[tuple[int, list[tuple[bytes, bytes]], bytes]]:
    out = []
    with httpx.Client(timeout=10) as client:
        for url, accept in urls:
            response = client.get(url, headers={"Accept": accept})
            headers = sorted(response.headers.raw)
            out.append((response.status_code, headers, response.content))
    return out


def wait_for(path: Path, proc: subprocess.Popen[bytes], seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists():
        assert proc.poll() is None, proc.communicate()[1].decode(errors="replace")[-2000:]
        assert time.monotonic() < deadline, f"{path} did not appear"
        time.sleep(0.05)


def test_replay_serves_the_recorded_bytes_and_counts_misses(tmp_path: Path) -> None:
    config = {
        "seed": 7,
        "hosts": 2,
        "log_headers": False,
        "payers": [
            {"slug": f"p{i}", "archetypes": ["exemplary"], "patients": 1, "host": i % 2}
            for i in range(3)
        ],
    }
    config_file = tmp_path / "fleet.yaml"
    config_file.write_text(yaml.safe_dump(config))
    directory = tmp_path / "endpoints.yaml"
    recording = tmp_path / "fleet.pickle"
    misses = tmp_path / "misses.json"
    fleet_args = ["--config", str(config_file), "--subnet", str(SUBNET)]
    with process(
        str(BENCH / "scale_fleet.py"), *fleet_args,
        "--directory-out", str(directory), "--record", str(recording),
    ) as fleet:  # fmt: skip
        wait_for(directory, fleet)
        bases = [
            e["base_url"].rstrip("/")
            for payer in yaml.safe_load(directory.read_text())["payers"]
            for e in payer["endpoints"]
        ]
        assert len(bases) == 3 and all(f"127.0.{SUBNET}." in b for b in bases)
        urls = [
            (f"{base}/{path}", accept)
            for base in bases
            for path, accept in [
                ("metadata", "application/fhir+json"),
                (".well-known/smart-configuration", "application/json"),
                ("Patient?_count=1", "application/fhir+json"),
            ]
        ]
        live = fetch(urls)
        fleet.send_signal(signal.SIGTERM)
        wait_for(recording, fleet)
    assert {status for status, _, _ in live} == {200, 401}

    with process(str(BENCH / "replay_fleet.py"), "--recording", str(recording),
                 "--misses-out", str(misses)) as replay:  # fmt: skip
        assert replay.stdout is not None and replay.stdout.readline().strip() == b"ready"
        assert fetch(urls) == live  # status, every header and the body, byte for byte
        unrecorded = fetch([(f"{bases[0]}/metadata", "application/fhir+xml")])
        assert unrecorded[0][0] == 404
        replay.send_signal(signal.SIGTERM)
        replay.wait(timeout=30)
    assert json.loads(misses.read_text()) == {"misses": 1}
