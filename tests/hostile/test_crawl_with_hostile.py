"""A crawl of 200 endpoints, 20 % of them hostile, equals a crawl of the 160 healthy ones alone.

Both crawls run against fresh fleets of the same seed on 8 loopback hosts (the hostile payers
have addresses of their own), served by `probe fleet serve` in its own process. For every healthy payer the stored results must be the same:
each check's status, each sync's outcome and its resources by type. The hostile payers must
each end with their target finished (done or failed with a named error), and no Authorization
header may reach another origin.
"""

from __future__ import annotations

import io
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import anyio
import pytest
from sqlalchemy import select

from probe.cli.progress import LogReporter
from probe.crawl.crawler import CrawlSummary, crawl, select_targets
from probe.crawl.options import CrawlOptions
from probe.directory.schema import load_directory
from probe.directory.secrets import SecretSource
from probe.http.limits import Limits
from probe.store.engine import open_store
from probe.store.tables import CheckResultRow, EndpointRow, RunStatus, RunTargetRow, SyncJobRow
from probe.sync.limits import SyncLimits
from tests.hostile.conftest import fleet_process

pytestmark = [pytest.mark.slow]

HEALTHY = [  # the fleet's deterministic quirks: same answers whatever else the crawl meets
    "exemplary",
    "exemplary",
    "exemplary",
    "no_smart_config",
    "metadata_auth",
    "html_login",
    "legacy_stu3",
    "r4_400",
    "dstu2_conformance",
    "oidc_at_smart_path",
    "smart_minimal",
    "everything_unsupported",
    "paging_loop",
    "paging_skip",
    "paging_cross_origin",
    "dangling_references",
    "contained_references",
    "plain_json",
    "moved",
    "rate_limited",
]
HOSTILE: list[dict[str, Any]] = [
    {"trickle": {"scope": "discovery"}},
    {"trickle": {"scope": "data"}},
    {"endless_body": {}},
    {"endless_body": {"scope": "data"}},
    {"huge_body": {"mb": 100}},
    {"huge_body": {"mb": 100, "chunked": True, "scope": "data"}},
    {"gzip_bomb": {}},
    {"gzip_bomb": {"scope": "data"}},
    {"deep_json": {}},
    {"deep_json": {"scope": "data"}},
    {"redirect_loop": {}},
    {"redirect_loop": {"scope": "data"}},
    {"redirect_cross_origin": {}},
    {"redirect_cross_origin": {"scope": "data"}},
    {"redirect_cross_origin": {"scope": "token"}},
    {"next_link_elsewhere": {"to": "link_local"}},
    {"next_link_elsewhere": {"to": "other_loopback"}},
    {"next_link_elsewhere": {"to": "private"}},
    {"invalid_utf8": {}},
    {"invalid_utf8": {"scope": "data"}},
    {"lying_length": {"declared": "longer"}},
    {"lying_length": {"declared": "longer", "scope": "data"}},
    {"lying_length": {"declared": "shorter", "scope": "discovery"}},
    {"never_answers": {"scope": "discovery"}},
    {"never_answers": {"scope": "data"}},
    {"never_answers": {"scope": "token"}},
]
N_HEALTHY, N_HOSTILE = 160, 40


def fleet_config(with_hostile: bool) -> dict[str, Any]:
    payers: list[dict[str, Any]] = [
        {"slug": f"ok-{i:03d}", "archetypes": [HEALTHY[i % len(HEALTHY)]], "patients": 1}
        for i in range(N_HEALTHY)
    ]
    if with_hostile:
        for i in range(N_HOSTILE):
            archetype = HOSTILE[i % len(HOSTILE)]
            # Spread through the list, as they would be in a real directory.
            payers.insert(i * 5, {"slug": f"bad-{i:02d}", "archetypes": [archetype], "patients": 1})
    return {"seed": 31, "hosts": 8, "payers": payers}


def crawl_fleet(with_hostile: bool, tmp: Path) -> tuple[CrawlSummary, dict[str, Any], float]:
    """Serve the fleet in its own process, crawl it into a fresh SQLite store."""
    name = "all" if with_hostile else "healthy"
    store = open_store(f"sqlite:///{tmp / name}.db")
    box: dict[str, Any] = {}
    with fleet_process(fleet_config(with_hostile), tmp / name) as fleet:
        directory = load_directory(fleet.directory)
        options = CrawlOptions(
            concurrency=48,
            per_host=4,
            rate=500,
            total_requests=96,
            limits=Limits(
                connect_timeout=3,
                read_timeout=4,
                total_timeout=6,
                max_retries=1,
                backoff_base=0.05,
            ),
            sync_limits=SyncLimits(page_size=50, deadline_s=40),
            endpoint_deadline=60,
            portal=False,
        )
        secrets = SecretSource(Path(str(directory.secrets_file)))

        async def go() -> None:
            box["summary"] = await crawl(
                store,
                directory,
                select_targets(directory),
                options,
                LogReporter(io.StringIO()),
                secrets=secrets,
            )

        t0 = time.monotonic()
        try:
            anyio.run(go)
            seconds = time.monotonic() - t0
            box["results"] = stored_results(store)
        finally:
            store.close()
        fleet.assert_credentials_stayed_home()
    return box["summary"], box["results"], seconds


def stored_results(store: Any) -> dict[str, Any]:
    """Per payer slug: check statuses, sync outcomes with resources, target status and error."""
    out: dict[str, Any] = defaultdict(lambda: {"checks": {}, "syncs": [], "target": None})
    with store.session() as s:
        slug = {
            e.id: e.base_url.split("/payers/")[1].split("/")[0]
            for e in s.scalars(select(EndpointRow))
        }
        for eid, check_id, status in s.execute(
            select(CheckResultRow.endpoint_id, CheckResultRow.check_id, CheckResultRow.status)
        ):
            out[slug[eid]]["checks"][check_id] = status
        for eid, label, outcome, resources in s.execute(
            select(
                SyncJobRow.endpoint_id,
                SyncJobRow.patient_label,
                SyncJobRow.outcome,
                SyncJobRow.resources_by_type,
            )
        ):
            out[slug[eid]]["syncs"].append((label, outcome, resources))
        for eid, status, error in s.execute(
            select(RunTargetRow.endpoint_id, RunTargetRow.status, RunTargetRow.error)
        ):
            out[slug[eid]]["target"] = (status, error)
    return dict(out)


def test_hostile_fifth_of_the_directory_changes_nothing_for_the_rest(tmp_path: Path) -> None:
    mixed, with_hostile, mixed_s = crawl_fleet(True, tmp_path)
    alone, healthy_only, alone_s = crawl_fleet(False, tmp_path)
    print(f"200 endpoints in {mixed_s:.1f} s; the 160 healthy alone in {alone_s:.1f} s")
    assert mixed.status is RunStatus.COMPLETED and alone.status is RunStatus.COMPLETED
    assert len(mixed.outcomes) == N_HEALTHY + N_HOSTILE and len(alone.outcomes) == N_HEALTHY
    healthy = sorted(s for s in with_hostile if s.startswith("ok-"))
    assert len(healthy) == N_HEALTHY and sorted(healthy_only) == healthy
    different = [s for s in healthy if with_hostile[s] != healthy_only[s]]
    assert not different, {s: (with_hostile[s], healthy_only[s]) for s in different[:3]}
    assert all(r["target"] == ("done", None) for r in healthy_only.values())
    # Every hostile endpoint finished: done, or failed with a named bound.
    hostile = {s: r for s, r in with_hostile.items() if s.startswith("bad-")}
    assert len(hostile) == N_HOSTILE
    for slug, r in hostile.items():
        status, error = r["target"]
        finished = status == "done" or (
            status == "failed" and error.startswith("endpoint_deadline")
        )
        assert finished, (slug, status, error)
    # Hosts that kept failing were cut off, and the summary says so.
    assert mixed.open_circuits and all(c.host.startswith("127.0.1.") for c in mixed.open_circuits)
    assert mixed_s < 150, mixed_s
