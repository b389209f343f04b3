"""Politeness per host across many hosts, the process-wide cap, and the crawl's size options.

A mock fleet of several hosts records, per host and overall, how many requests were in flight
and when each started; `probe run` is checked to hand --concurrency, --total-requests,
--per-host and --rate to the crawl (and to store them with the run), and to default to values
sized for latency-bound work (docs/crawl.md).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
import yaml
from sqlalchemy import create_engine, text
from typer.testing import CliRunner

from probe.cli.app import app
from probe.crawl.crawler import crawl, select_targets
from probe.crawl.options import CrawlOptions
from probe.directory.schema import Directory, parse_directory
from probe.directory.secrets import SecretSource
from probe.http.limits import Limits
from probe.store.handle import Store
from probe.store.tables import RunStatus
from tests.crawl.test_crawl_mock import capability_statement, smart_configuration
from tests.drift.fleet_runs import Quiet

HOSTS = 4
PER_HOST_ENDPOINTS = 3


class Recorder:
    """Answers discovery on every host after `delay`; records concurrency and start times."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.in_flight: dict[str, int] = {}
        self.max_in_flight: dict[str, int] = {}
        self.total = 0
        self.max_total = 0
        self.starts: dict[str, list[float]] = {}
        self.overlapping_hosts = 0  # most hosts with a request in flight at one moment

    async def handler(self, request: httpx.Request) -> httpx.Response:
        host = request.url.host
        self.starts.setdefault(host, []).append(anyio.current_time())
        self.in_flight[host] = self.in_flight.get(host, 0) + 1
        self.max_in_flight[host] = max(self.max_in_flight.get(host, 0), self.in_flight[host])
        self.total += 1
        self.max_total = max(self.max_total, self.total)
        busy = sum(1 for n in self.in_flight.values() if n)
        self.overlapping_hosts = max(self.overlapping_hosts, busy)
        try:
            await anyio.sleep(self.delay)
            if request.url.path.endswith("/metadata"):
                return httpx.Response(
                    200,
                    content=json.dumps(capability_statement()).encode(),
                    headers={"Content-Type": "application/fhir+json"},
                )
            if request.url.path.endswith("smart-configuration"):
                return httpx.Response(200, json=smart_configuration())
            return httpx.Response(401)
        finally:
            self.in_flight[host] -= 1
            self.total -= 1


def directory() -> Directory:
    payers = [
        {
            "name": f"Payer {h}-{e}",
            "endpoints": [{"base_url": f"https://host{h}.example/payer{e}/fhir"}],
        }
        for h in range(HOSTS)
        for e in range(PER_HOST_ENDPOINTS)
    ]
    return parse_directory(yaml.safe_dump({"version": 1, "payers": payers}), Path("test.yaml"))


def crawl_with(store: Store, recorder: Recorder, options: CrawlOptions) -> tuple[float, Any]:
    d = directory()

    async def go() -> tuple[float, Any]:
        began = anyio.current_time()
        summary = await crawl(
            store,
            d,
            select_targets(d),
            options,
            Quiet(),
            secrets=SecretSource(env={}),
            transport=httpx.MockTransport(recorder.handler),
        )
        return began, summary

    return anyio.run(go)


def test_politeness_is_per_host_and_hosts_are_probed_side_by_side(store: Store) -> None:
    recorder = Recorder(delay=0.03)
    rate = 40.0
    options = CrawlOptions(
        concurrency=HOSTS * PER_HOST_ENDPOINTS,
        per_host=1,
        rate=rate,
        total_requests=64,
        limits=Limits(max_retries=0),
        portal=False,
        sync=False,
    )
    began, summary = crawl_with(store, recorder, options)
    assert summary.status is RunStatus.COMPLETED and len(summary.outcomes) == HOSTS * 3
    assert set(recorder.max_in_flight) == {f"host{h}.example" for h in range(HOSTS)}
    assert set(recorder.max_in_flight.values()) == {1}  # one at a time on every host ...
    assert recorder.overlapping_hosts == HOSTS  # ... and every host busy at once
    for host, starts in recorder.starts.items():
        assert len(starts) == PER_HOST_ENDPOINTS * 3, host
        # Starts on one host at least 1/rate apart: the last one no earlier than this bound.
        assert max(starts) - began >= (len(starts) - 1) / rate - 1e-6, host
    assert summary.host_stats["host0.example"]["max_in_flight"] == 1


def test_the_total_cap_spans_hosts(store: Store) -> None:
    recorder = Recorder(delay=0.02)
    options = CrawlOptions(
        concurrency=HOSTS * PER_HOST_ENDPOINTS,
        per_host=3,
        rate=1000,
        total_requests=2,
        limits=Limits(max_retries=0),
        portal=False,
        sync=False,
    )
    _, summary = crawl_with(store, recorder, options)
    assert summary.status is RunStatus.COMPLETED
    assert recorder.max_total == 2
    assert sum(len(s) for s in recorder.starts.values()) == HOSTS * PER_HOST_ENDPOINTS * 3


def test_defaults_are_sized_for_latency_bound_work() -> None:
    """docs/crawl.md: with H hosts, p in flight and r starts/s per host at latency L,
    politeness allows min(H*p/L, H*r) requests/s; the totals must not bind first."""
    options = CrawlOptions()
    assert (options.per_host, options.rate) == (2, 10.0)
    assert options.total_requests >= 128 * options.per_host  # 128 hosts all busy
    # 64 endpoints of ~5 requests in ~3 round trips at 150 ms: more than 16 hosts allow.
    hosts, latency, requests_per_endpoint, round_trips = 16, 0.15, 5, 3
    politeness = min(hosts * options.per_host / latency, hosts * options.rate)
    endpoints_per_s = options.concurrency / (round_trips * latency)
    assert endpoints_per_s * requests_per_endpoint > politeness


DIRECTORY = """\
payers:
  - name: Nowhere Health
    endpoints:
      - base_url: http://127.0.0.1:9/fhir
"""


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        ([], {"concurrency": 64, "total_requests": 256, "per_host": 2, "rate": 10.0}),
        (
            ["--concurrency", "7", "--total-requests", "9", "--per-host", "3", "--rate", "2.5"],
            {"concurrency": 7, "total_requests": 9, "per_host": 3, "rate": 2.5},
        ),
    ],
)
def test_probe_run_hands_its_size_options_to_the_crawl(
    tmp_path: Path, argv: list[str], expected: dict[str, float]
) -> None:
    directory_file = tmp_path / "endpoints.yaml"
    directory_file.write_text(DIRECTORY, encoding="utf-8")
    db = f"sqlite:///{tmp_path / 'probe.db'}"
    done = CliRunner().invoke(
        app,
        ["run", str(directory_file), "--db", db, "--no-sync", "--no-portal", *argv],
    )
    assert done.exit_code == 0, done.output
    engine = create_engine(db)
    try:
        with engine.connect() as conn:
            (config,) = conn.execute(text("SELECT config FROM probe_runs")).one()
    finally:
        engine.dispose()
    stored = json.loads(config) if isinstance(config, str) else config
    assert {key: stored[key] for key in expected} == expected


def test_total_requests_must_be_positive(tmp_path: Path) -> None:
    directory_file = tmp_path / "endpoints.yaml"
    directory_file.write_text(DIRECTORY, encoding="utf-8")
    done = CliRunner().invoke(app, ["run", str(directory_file), "--total-requests", "0"])
    assert done.exit_code == 2
