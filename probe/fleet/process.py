"""Serving a fleet from its own `probe fleet serve` process (benchmarks, tests, scripts).

A crawl and the servers it probes should not share one event loop: a client busy validating
resources would make a healthy server look slow. This starts the fleet elsewhere and waits
until its directory file exists (the fleet writes it once every server listens).
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml


@contextmanager
def fleet_subprocess(
    config: dict[str, Any], workdir: Path, *, hosts: int | None = None, start_timeout: float = 60
) -> Iterator[Path]:
    """Serve `config` with `probe fleet serve` for the block; yields its directory file.

    The process runs in its own session and is always stopped (SIGTERM, then SIGKILL).
    """
    workdir.mkdir(parents=True, exist_ok=True)
    config_file = workdir / "fleet.yaml"
    config_file.write_text(yaml.safe_dump(config))
    directory = workdir / "endpoints.yaml"
    directory.unlink(missing_ok=True)
    args = ["fleet", "serve", "--config", str(config_file), "--directory-out", str(directory)]
    if hosts is not None:
        args += ["--hosts", str(hosts)]
    process = subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
        [sys.executable, "-m", "probe.cli", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + start_timeout
        while not directory.exists():
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                err = process.communicate()[1].decode(errors="replace")
                raise RuntimeError(f"the fleet did not start: {err[-2000:]}")
            time.sleep(0.05)
        yield directory
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
