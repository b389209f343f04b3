"""Helpers for the hostile-server suite: peak memory of this process, header hygiene, fleets."""

from __future__ import annotations

import gc
import importlib.util
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import yaml

from probe.fleet.app import Fleet
from probe.fleet.config import parse_fleet_config
from probe.fleet.process import fleet_subprocess
from probe.fleet.sites import layout
from tests.store.conftest import (  # noqa: F401  (store fixtures)
    endpoint_id,
    outage,
    pg_admin,
    run_id,
    store,
    store_url,
)

_STATUS = Path("/proc/self/status")


def _status_kb(field: str) -> int:
    match = re.search(rf"^{field}:\s+(\d+) kB", _STATUS.read_text(), re.MULTILINE)
    assert match, f"no {field} in /proc/self/status"
    return int(match.group(1))


@dataclass
class PeakMemory:
    """RSS when the block began and the highest RSS reached inside it (kB)."""

    start_kb: int = 0
    peak_kb: int = 0

    @property
    def growth_mb(self) -> float:
        """How far above its starting RSS the process went, in MiB."""
        return (self.peak_kb - self.start_kb) / 1024


@contextmanager
def peak_memory() -> Iterator[PeakMemory]:
    """Measure the peak RSS growth of this process inside the block.

    Writing 5 to /proc/self/clear_refs resets the kernel's high-water mark (VmHWM), so the peak
    read at the end is the peak of this block alone, not of the whole pytest session.
    """
    gc.collect()
    Path("/proc/self/clear_refs").write_text("5")
    measured = PeakMemory(start_kb=_status_kb("VmRSS"))
    try:
        yield measured
    finally:
        measured.peak_kb = _status_kb("VmHWM")


def assert_credentials_stayed_home(fleet: Fleet) -> None:
    """No Authorization header reached any host but the one of the payer it belongs to.

    Every request the fleet received is logged with its headers, per host (ordinary hosts by the
    ASGI app, hostile hosts by the hostile server), so this covers redirects, next links,
    references and token URLs alike.
    """
    for record in fleet.stats.records():
        if record.authorization is None:
            continue
        assert record.payer is not None, f"credentials sent to {record.host}{record.path}"
        home = fleet.site(record.payer).home_host
        assert record.host == home, (
            f"an Authorization header for {record.payer} (home {home}) reached {record.host}"
            f"{record.path}"
        )


@dataclass
class FleetProcess:
    """A `probe fleet serve` process: its directory file, port and the sites' layout."""

    directory: Path
    config: dict[str, Any]
    port: int

    def home_host(self, slug: str) -> str:
        """The address serving a payer's data and OAuth (where its credentials belong)."""
        _, sites = layout(parse_fleet_config(self.config), self.port)
        return sites[slug].home_host

    def records(self) -> list[dict[str, Any]]:
        """Every request the fleet logged, with headers (credential values masked)."""
        _, sites = layout(parse_fleet_config(self.config), self.port)
        host = next(iter(sites.values())).host
        url = f"http://{host}:{self.port}/_fleet/stats?all=1&records=1000000"
        return list(httpx.get(url, timeout=30).json()["records"])

    def assert_credentials_stayed_home(self) -> None:
        """The out-of-process form of :func:`assert_credentials_stayed_home`."""
        _, sites = layout(parse_fleet_config(self.config), self.port)
        for record in self.records():
            if not any(name == "authorization" for name, _ in record["headers"]):
                continue
            payer = record["payer"]
            assert payer is not None, record
            home = sites[payer].home_host
            assert record["host"] == home, f"{payer}'s credentials reached {record['host']}"


@contextmanager
def fleet_process(config: dict[str, Any], workdir: Path) -> Iterator[FleetProcess]:
    """Serve `config` with `probe fleet serve` in its own process for the block.

    A crawl and the servers it probes in one event loop would compete for it: a client busy
    validating resources would make a healthy server look slow. Real servers run elsewhere.
    """
    with fleet_subprocess(config, workdir) as directory:
        base = yaml.safe_load(directory.read_text())["payers"][0]["endpoints"][0]["base_url"]
        yield FleetProcess(directory, config, int(httpx.URL(base).port or 80))


def kill_resume_bench() -> ModuleType:
    """bench/kill_resume.py as a module (its crawl comparison is shared with these tests)."""
    name = "probe_bench_kill_resume"
    if name in sys.modules:
        return sys.modules[name]
    path = Path(__file__).resolve().parents[2] / "bench" / "kill_resume.py"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while the class is made
    spec.loader.exec_module(module)
    return module
