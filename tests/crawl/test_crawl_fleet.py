"""`probe run` over a 54-payer fleet of mixed archetypes on real loopback hosts.

Checked from the store: each archetype's fault observed and classified, every endpoint probed
exactly once; checked from the fleet's own counters: the per-host concurrency limit held.
"""

from __future__ import annotations

import io
import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import anyio
import pytest
from sqlalchemy import select

from probe.cli.progress import LogReporter
from probe.crawl.crawler import CrawlSummary, crawl, select_targets
from probe.crawl.options import CrawlOptions
from probe.directory.secrets import SecretSource
from probe.fleet.archetypes import HOSTILE, ArchetypeName
from probe.fleet.config import parse_fleet_config
from probe.fleet.serve import running_fleet
from probe.http.limits import Limits
from probe.store.handle import Store
from probe.store.tables import (
    CheckResultRow,
    EndpointRow,
    HttpRequestRow,
    RunStatus,
    RunTargetRow,
    SyncJobRow,
)
from probe.sync.limits import SyncLimits
from tests.fleet_files import fleet_directory

pytestmark = pytest.mark.slow

# Every archetype but the hostile ones and huge_patient (10,000 resources: a benchmark's job).
ARCHETYPES = [
    a.value for a in ArchetypeName if a not in HOSTILE and a is not ArchetypeName.HUGE_PATIENT
]
PER_HOST = 2


def fleet_config() -> dict[str, Any]:
    payers: list[dict[str, Any]] = []
    for copy in range(2):
        for name in ARCHETYPES:
            archetype: Any = {"slow": {"median_ms": 30, "sigma": 0}} if name == "slow" else name
            payers.append(
                {
                    "slug": f"{name.replace('_', '-')}-{copy}",
                    "archetypes": [archetype],
                    "patients": 1,
                }
            )
    for i in range(10):  # slow exemplary payers make per-host concurrency observable
        payers.append(
            {
                "slug": f"busy-{i}",
                "archetypes": [{"slow": {"median_ms": 40, "sigma": 0}}],
                "patients": 1,
            }
        )
    return {"seed": 21, "hosts": 6, "payers": payers}


def test_crawl_of_a_mixed_fleet(store: Store, tmp_path: Path) -> None:
    config = parse_fleet_config(fleet_config())
    assert len(config.all_payers) >= 50
    box: dict[str, Any] = {}

    async def go() -> None:
        async with running_fleet(config) as fleet:
            directory, secrets = fleet_directory(fleet, tmp_path)
            options = CrawlOptions(
                concurrency=16,
                per_host=PER_HOST,
                rate=200,
                limits=Limits(total_timeout=20, max_retries=2, backoff_base=0.05),
                sync_limits=SyncLimits(page_size=20),
            )
            box["slugs"] = {p.name: p for p in directory.payers}
            box["summary"] = await crawl(
                store,
                directory,
                select_targets(directory),
                options,
                LogReporter(io.StringIO()),
                secrets=SecretSource(secrets),
            )
            box["hosts"] = {addr: fleet.stats.host(addr).max_concurrent for addr in fleet.addresses}
            box["directory"] = directory

    anyio.run(go)
    summary: CrawlSummary = box["summary"]
    assert summary.status is RunStatus.COMPLETED
    # The per-host limit held, measured by the servers themselves (and it was reached).
    assert max(box["hosts"].values()) == PER_HOST, box["hosts"]

    with store.session() as s:
        endpoints = {e.id: e for e in s.scalars(select(EndpointRow))}
        targets = s.execute(select(RunTargetRow.endpoint_id, RunTargetRow.status)).all()
        checks = s.execute(
            select(
                CheckResultRow.endpoint_id,
                CheckResultRow.check_id,
                CheckResultRow.status,
                CheckResultRow.message,
            )
        ).all()
        requests = s.execute(
            select(
                HttpRequestRow.endpoint_id,
                HttpRequestRow.url,
                HttpRequestRow.step,
                HttpRequestRow.status,
            )
        ).all()
        syncs = s.execute(
            select(SyncJobRow.endpoint_id, SyncJobRow.outcome, SyncJobRow.details)
        ).all()

    # Every endpoint (production + the sandbox_only payers' sandboxes) probed exactly once.
    expected_targets = len(select_targets(box["directory"]))
    assert len(targets) == expected_targets == len(summary.outcomes)
    assert {status for _, status in targets} == {"done"}
    metadata_fetches: dict[int, int] = defaultdict(int)
    for eid, url, step, _ in requests:
        if step == "discovery" and url.endswith("/metadata"):
            metadata_fetches[eid] += 1
    assert set(metadata_fetches.values()) == {1}, "an endpoint's /metadata was requested twice"

    def slug_of(eid: int) -> str:
        return endpoints[eid].base_url.split("/payers/")[1].split("/")[0]

    verdicts: dict[str, dict[str, tuple[str, str]]] = defaultdict(dict)
    for eid, check_id, status, message in checks:
        if endpoints[eid].environment == "production":
            verdicts[slug_of(eid)][check_id] = (status, message)
    sync_by: dict[str, list[tuple[str, dict[str, Any]]]] = defaultdict(list)
    for eid, outcome, details in syncs:
        sync_by[slug_of(eid)].append(
            (outcome, details if isinstance(details, dict) else json.loads(details))
        )
    statuses_by: dict[str, set[int | None]] = defaultdict(set)
    for eid, _, _, status in requests:
        statuses_by[slug_of(eid)].add(status)

    def check(slug: str, check_id: str) -> tuple[str, str]:
        return verdicts[slug][check_id]

    def findings(slug: str) -> set[str]:
        return {f["code"] for _, d in sync_by[slug] for f in d.get("findings", [])}

    for copy in range(2):
        sfx = f"-{copy}"
        ex = "exemplary" + sfx
        assert all(
            st in ("pass", "warn")
            for cid, (st, _) in verdicts[ex].items()
            if cid.startswith(("metadata.", "smart."))
        ), verdicts[ex]
        assert [o for o, _ in sync_by[ex]] == ["completed"]
        assert sync_by[ex][0][1]["everything"]["support_level"] == "paged"
        assert check(ex, "auth.anonymous_refused") == ("pass", "refused without a token: HTTP 401")
        assert check("open-data" + sfx, "auth.anonymous_refused")[0] == "fail"
        assert (
            "member data is served to anyone"
            in check("open-data" + sfx, "auth.anonymous_refused")[1]
        )
        assert check("metadata-auth" + sfx, "metadata.reachable")[0] == "fail"
        assert "must be public" in check("metadata-auth" + sfx, "metadata.reachable")[1]
        assert check("html-login" + sfx, "metadata.is_capability_statement")[0] == "fail"
        assert "HTML page" in check("html-login" + sfx, "metadata.is_capability_statement")[1]
        assert check("legacy-stu3" + sfx, "metadata.fhir_version")[0] == "fail"
        assert check("r4-400" + sfx, "metadata.fhir_version")[0] == "warn"
        assert "DSTU2" in check("dstu2-conformance" + sfx, "metadata.is_capability_statement")[1]
        assert check("no-smart-config" + sfx, "smart.reachable")[0] == "fail"
        assert "OpenID Connect" in check("oidc-at-smart-path" + sfx, "smart.required_fields")[1]
        assert check("smart-minimal" + sfx, "smart.required_fields")[0] == "fail"
        assert check("smart-minimal" + sfx, "smart.pkce_s256")[0] == "fail"
        assert check("plain-json" + sfx, "metadata.json_format")[0] == "warn"
        assert check("moved" + sfx, "metadata.reachable")[0] == "fail"
        assert "another origin" in check("moved" + sfx, "metadata.reachable")[1]
        assert check("sandbox-only" + sfx, "metadata.reachable")[1].startswith("connection refused")
        assert (
            sync_by["everything-unsupported" + sfx][0][1]["everything"]["support_level"]
            == "unsupported"
        )
        assert "paging_loop" in findings("paging-loop" + sfx)
        assert "paging_incomplete" in findings("paging-skip" + sfx)
        # The server skips pages in every search, so no fallback can recover the record.
        assert [o for o, _ in sync_by["paging-skip" + sfx]] == ["partial"]
        assert "next_link_cross_origin" in findings("paging-cross-origin" + sfx)
        # Its searches also page to the other host: the record stays incomplete, and says so.
        assert [o for o, _ in sync_by["paging-cross-origin" + sfx]] == ["partial"]
        assert "dangling_references" in findings("dangling-references" + sfx)
        assert 429 in statuses_by["rate-limited" + sfx]
        for slug in (
            "everything-unsupported",
            "paging-loop",
            "rate-limited",
            "expiring-tokens",
            "contained-references",
            "slow",
            "plain-json",
        ):
            assert [o for o, _ in sync_by[slug + sfx]] == ["completed"], (slug, sync_by[slug + sfx])
    sandboxes = [e for e in endpoints.values() if e.environment == "sandbox"]
    assert len(sandboxes) == 2
    for sandbox in sandboxes:
        reach = [
            st for eid, cid, st, _ in checks if eid == sandbox.id and cid == "metadata.reachable"
        ]
        assert reach == ["pass"]
