"""Crawling a simulated fleet in-process, twice, with the payer changed in between."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import anyio

from probe.crawl.crawler import CrawlSummary, TargetOutcome, crawl, select_targets
from probe.crawl.options import CrawlOptions
from probe.directory.secrets import SecretSource
from probe.drift.settings import DriftSettings
from probe.fleet.app import Fleet
from probe.fleet.changes import PayerChange, change_fleet
from probe.fleet.config import parse_fleet_config
from probe.http.limits import Limits
from probe.store.handle import Store
from probe.store.tables import RunStatus
from probe.sync.limits import SyncLimits
from tests.fleet_files import fleet_directory


class Quiet:
    """A crawl reporter that prints nothing."""

    def started(self, run_id: int, total: int, resumed: bool) -> None:
        pass

    def target_done(self, outcome: TargetOutcome, done: int, total: int) -> None:
        pass

    def finished(self, status: RunStatus, outcomes: Any) -> None:
        pass


def fleet_config(payers: list[dict[str, Any]], seed: int = 11) -> Any:
    """A two-host fleet config of these payers."""
    return parse_fleet_config({"seed": seed, "hosts": 2, "payers": payers})


def crawl_fleet(
    store: Store,
    tmp_path: Path,
    payers: list[dict[str, Any]],
    changes: Mapping[str, PayerChange] | None = None,
    *,
    drift: DriftSettings | None = None,
    page_size: int = 200,
) -> CrawlSummary:
    """One nightly crawl (keys observed) of a fleet built from `payers`, with `changes` applied."""
    fleet = Fleet(fleet_config(payers), port=8080)
    if changes:
        change_fleet(fleet, changes)
    directory, secrets = fleet_directory(fleet, tmp_path, "fleet-secrets.yaml")
    options = CrawlOptions(
        concurrency=4,
        per_host=2,
        rate=1000,
        limits=Limits(max_retries=0),
        sync_limits=SyncLimits(page_size=page_size, validate=False),
        portal=False,
        drift=drift or DriftSettings(observe_keys=True),
    )
    box: list[CrawlSummary] = []

    async def go() -> None:
        box.append(
            await crawl(
                store,
                directory,
                select_targets(directory),
                options,
                Quiet(),
                secrets=SecretSource(secrets),
                transport=fleet.transport(),
            )
        )

    anyio.run(go)
    return box[0]
