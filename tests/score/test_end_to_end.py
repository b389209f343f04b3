"""End to end: a fleet of mixed archetypes on loopback, crawled into the store, an authorization
log imported, scored and reported; on SQLite and on PostgreSQL.

The exemplary payer must outrank every broken one, and the points of the exemplary payer and of
four broken ones are pinned metric by metric, each explained. The directory the fleet writes is
given the same configured facts for every payer (developer portal, inactive-member access,
portal opt-in, lines of business), so that what separates the payers is what probe observed on
the wire and what the authorization log says.
"""

from __future__ import annotations

import json
import statistics
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from probe.cli.app import app
from probe.crawl.crawler import CrawlSummary, TargetOutcome, crawl, select_targets
from probe.crawl.options import CrawlOptions
from probe.directory.schema import Directory, EndpointFacts, LineOfBusiness, LinesOfBusiness
from probe.directory.secrets import SecretSource
from probe.fleet.catalog import write_secrets
from probe.fleet.config import parse_fleet_config
from probe.fleet.serve import running_fleet
from probe.store.handle import Store
from probe.store.tables import EndpointRow, PayerRow, RunStatus, SyncJobRow
from tests.score.test_report_html import render_in_chromium
from tests.store import conftest as store_fixtures

pg_admin = store_fixtures.pg_admin
store_url = store_fixtures.store_url
store = store_fixtures.store

pytestmark = pytest.mark.slow

# slug -> (payer name, archetypes, vendor)
FLEET: dict[str, tuple[str, list[Any], str]] = {
    "exemplary": ("Exemplary Health", ["exemplary"], "Gold Standard FHIR"),
    "legacy-stu3": ("Legacy STU3 Plan", ["legacy_stu3"], "Gold Standard FHIR"),
    "everything-unsupported": (
        "No Everything Plan",
        ["everything_unsupported"],
        "Gold Standard FHIR",
    ),
    "no-smart-config": ("No SMART Plan", ["no_smart_config"], "Patchwork Health IT"),
    "metadata-auth": ("Locked Metadata Plan", ["metadata_auth"], "Patchwork Health IT"),
    "html-login": ("HTML Login Plan", ["html_login"], "Patchwork Health IT"),
    "dangling-references": ("Dangling Plan", ["dangling_references"], "Patchwork Health IT"),
    "flaky": ("Flaky Plan", [{"flaky": {"error_rate": 0.4}}], "Patchwork Health IT"),
    "sandbox-only": ("Sandbox Only Plan", ["sandbox_only"], "Patchwork Health IT"),
}
# Authorization log per payer: (successful, failed, bounced, failed with query_ineligible).
AUTHORIZATIONS: dict[str, tuple[int, int, int, int]] = {
    "Exemplary Health": (19, 0, 2, 1),  # 19 of 20 = 95.0%: the top band includes 95
    "Legacy STU3 Plan": (9, 1, 0, 0),  # 90%
    "No Everything Plan": (10, 0, 0, 0),  # 100%
    "No SMART Plan": (9, 1, 0, 0),  # 90%
    "Locked Metadata Plan": (8, 2, 0, 0),  # 80%
    "HTML Login Plan": (6, 4, 1, 0),  # 60%
    "Dangling Plan": (7, 3, 0, 0),  # 70%
    "Flaky Plan": (5, 5, 0, 0),  # 50%
    # Sandbox Only Plan: production is down, so no live authorization at all.
}
SUCCESS_STATES = ("Authorized", "Exchanged", "Revoked")


class Quiet:
    """A crawl reporter that prints nothing."""

    def started(self, run_id: int, total: int, resumed: bool) -> None:
        """Nothing to show."""

    def target_done(self, outcome: TargetOutcome, done: int, total: int) -> None:
        """Nothing to show."""

    def finished(self, status: RunStatus, outcomes: Any) -> None:
        """Nothing to show."""


def fleet_config() -> Any:
    return parse_fleet_config(
        {
            "seed": 7,
            "hosts": 3,
            "payers": [
                {"slug": slug, "name": name, "archetypes": archetypes}
                for slug, (name, archetypes, _vendor) in FLEET.items()
            ],
        }
    )


def configured(directory: Directory) -> Directory:
    """The fleet's directory with vendors and the same configured facts for every payer."""
    vendors = {name: vendor for name, _a, vendor in FLEET.values()}
    lines = [LineOfBusiness.COMMERCIAL, LineOfBusiness.MEDICAID]
    facts = EndpointFacts(member_portal_opt_in_required=False, inactive_member_access_months=60)
    payers = []
    for payer in directory.payers:
        endpoints = [
            e.model_copy(update={"portal_url": "https://developer.example/fhir", "facts": facts})
            for e in payer.endpoints
        ]
        payers.append(
            payer.model_copy(
                update={
                    "vendor": vendors[payer.name],
                    "lines_of_business": LinesOfBusiness(offered=lines, supported=lines),
                    "endpoints": endpoints,
                }
            )
        )
    return directory.model_copy(update={"payers": payers})


def crawl_fleet(store: Store, tmp_path: Path) -> tuple[Directory, CrawlSummary]:
    """Serve the fleet on loopback and crawl all of it into the store."""
    out: list[tuple[Directory, CrawlSummary]] = []

    async def go() -> None:
        async with running_fleet(fleet_config()) as fleet:
            secrets = tmp_path / "fleet.secrets.yaml"
            write_secrets(secrets, fleet.secrets())
            directory = configured(fleet.directory(str(secrets)))
            # The Flaky Plan fails 40% of requests; a circuit breaker would (rightly) stop
            # probing its host and leave its metrics without data. Scoring is under test here,
            # so the breaker is off (tests/hostile/ covers it).
            options = CrawlOptions(
                concurrency=8, per_host=4, rate=1000, portal=False, breaker_threshold=0
            )
            summary = await crawl(
                store,
                directory,
                select_targets(directory),
                options,
                Quiet(),
                secrets=SecretSource(secrets, env={}),
            )
            out.append((directory, summary))

    anyio.run(go)
    return out[0]


def authorization_log(directory: Directory, as_of: datetime, path: Path) -> None:
    """The CSV authorization log, spread over the last weeks, plus one attempt long ago."""
    base = {p.name: p.endpoints[0].base_url for p in directory.payers}
    rows = ["endpoint,attempted_at,state,query_ineligible,id"]
    for name, (good, failed, bounced, ineligible) in AUTHORIZATIONS.items():
        states = [SUCCESS_STATES[i % 3] for i in range(good)]
        states += ["Failed"] * failed + ["Bounced"] * bounced
        for i, state in enumerate(states):
            at = as_of - timedelta(days=1 + i, hours=i)
            rows.append(f"{base[name]},{at.isoformat()},{state},false,{name[:3]}-{i}")
        for i in range(ineligible):
            at = as_of - timedelta(days=2, minutes=i)
            rows.append(f"{base[name]},{at.isoformat()},Failed,true,{name[:3]}-inel-{i}")
    # Eight months ago: outside the six-month window, so it must not count.
    old = as_of - timedelta(days=240)
    rows.append(f"{base['Exemplary Health']},{old.isoformat()},Failed,false,old-1")
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")


def sync_points(store: Store, payer: str) -> int:
    """Sync speed points from the stored syncs' median duration without probe's own politeness
    waits (`details.timing.scored_ms`, as the engine scores it; wall-clock, so not pinned).

    Bands: < 1 s 5, < 5 s 4, < 10 s 3, < 30 s 2, <= 60 s 1, else 0.
    """
    with store.session() as session:
        rows = session.execute(
            select(
                SyncJobRow.created_at,
                SyncJobRow.completed_at,
                SyncJobRow.outcome,
                SyncJobRow.details,
            )
            .join(EndpointRow, EndpointRow.id == SyncJobRow.endpoint_id)
            .join(PayerRow, PayerRow.id == EndpointRow.payer_id)
            .where(PayerRow.name == payer, EndpointRow.environment == "production")
        ).all()
    durations = [
        min(
            (done - created).total_seconds(),
            ((details or {}).get("timing") or {}).get("scored_ms", float("inf")) / 1000,
        )
        for created, done, outcome, details in rows
        if done is not None and outcome in ("completed", "partial")
    ]
    if not durations:
        return 0
    median = statistics.median(durations)
    for limit, points in ((1, 5), (5, 4), (10, 3), (30, 2)):
        if median < limit:
            return points
    return 1 if median <= 60 else 0


def test_exemplary_outranks_every_broken_payer(
    store: Store, store_url: str, tmp_path: Path
) -> None:
    directory, summary = crawl_fleet(store, tmp_path)
    assert summary.status is RunStatus.COMPLETED
    assert len(summary.outcomes) == len(FLEET) + 1  # plus the sandbox of Sandbox Only Plan
    as_of = datetime.now(UTC) + timedelta(seconds=1)

    log = tmp_path / "authorizations.csv"
    authorization_log(directory, as_of, log)
    runner = CliRunner()
    imported = runner.invoke(app, ["import", "authorizations", str(log), "--db", store_url])
    assert imported.exit_code == 0, imported.output
    assert "0 updated, 0 already imported" in imported.stdout

    result = runner.invoke(
        app, ["score", "--db", store_url, "--as-of", as_of.isoformat(), "--format", "json"]
    )
    assert result.exit_code == 0, result.output
    card = json.loads(result.stdout)
    payers = {p["payer"]: p for p in card["payers"]}
    assert set(payers) == {name for name, _a, _v in FLEET.values()}

    def points(name: str) -> dict[str, int]:
        return {m["metric"]: m["points"] for m in payers[name]["metrics"]}

    exemplary = points("Exemplary Health")
    assert exemplary == {
        "status": 10,  # the fleet's organization status is Live
        "sandbox": 0,  # not enough data: the exemplary payer declares no sandbox
        "capability_statement": 2,  # /metadata served an R4 CapabilityStatement
        "smart_configuration": 2,  # .well-known/smart-configuration served JSON
        "auth_success": 14,  # 19 of 20 = 95.0% (2 bounced excluded; the old failure is
        #                      outside the window): [95, 100] includes 95
        "refresh_token": 2,  # a refresh token was issued; its lifetime is never announced
        "inactive_member_access": 6,  # configured 60 months: "5+ years"
        "portal_opt_in": 6,  # configured: not required
        "eligibility_errors": 4,  # one callback carried query_ineligible
        "lines_of_business": 3,  # commercial and medicaid offered, both supported
        "request_success": 10,  # every $everything / paging request got a 200
        "reference_resolution": 5,  # $everything bundles every referenced resource: no read
        #                             was needed, and the syncs resolved 100% in the Bundle
        "carin_bb": 6,  # EOB, Coverage and Patient came back
        "clinical": 4,  # Condition, Observation, Procedure, ... (capped at 4)
        "sync_speed": sync_points(store, "Exemplary Health"),  # loopback: under a second
        "everything": 3,  # $everything with proper paging
        "developer_portal": 2,  # configured portal URL
    }
    not_enough = set(payers["Exemplary Health"]["not_enough_data"])
    assert not_enough == {"sandbox"}

    assert points("Dangling Plan") == {
        **exemplary,
        "auth_success": 8,  # 7 of 10 = 70%: [70, 80)
        "eligibility_errors": 2,  # no query_ineligible recorded: "Unknown" gets 2
        "request_success": 10,  # the two $everything requests got a 200
        "reference_resolution": 0,  # 3 of 70 reference reads (retries included) got a 200:
        #                             4.3%, < 20%
        "sync_speed": sync_points(store, "Dangling Plan"),  # reference retries slow it down
    }
    assert points("No Everything Plan") == {
        **exemplary,
        "eligibility_errors": 2,  # no query_ineligible recorded
        "request_success": 6,  # 18 of 20 = 90%: the two $everything attempts got 404
        "reference_resolution": 5,  # per-resource searches made probe fetch 23 references, all 200
        "sync_speed": sync_points(store, "No Everything Plan"),
        "everything": 0,  # $everything not supported
    }
    assert points("Flaky Plan") == {
        **exemplary,
        "auth_success": 4,  # 5 of 10 = 50%: [50, 70)
        "eligibility_errors": 2,
        "request_success": 1,  # 12 of 22 = 54.5% with 40% of responses failing: [50, 70)
        "reference_resolution": 1,  # 5 of 19 = 26.3%: [20, 40)
        "sync_speed": sync_points(store, "Flaky Plan"),  # retries after 503s: seconds
        "everything": 3,  # the best seen counts: one sync paged properly, a fault broke the other
    }
    assert points("Sandbox Only Plan") == {
        "status": 10,
        "sandbox": 6,  # the declared sandbox answered /metadata with a CapabilityStatement
        "capability_statement": 0,  # production refused every connection
        "smart_configuration": 0,
        "auth_success": 0,  # not enough data: no live authorization in the log
        "refresh_token": 0,  # not enough data: no sync ran against a dead production
        "inactive_member_access": 6,
        "portal_opt_in": 6,
        "eligibility_errors": 2,  # "Unknown"
        "lines_of_business": 3,
        "request_success": 0,  # not enough data from here on: nothing was fetched
        "reference_resolution": 0,
        "carin_bb": 0,
        "clinical": 0,
        "sync_speed": 0,
        "everything": 0,
        "developer_portal": 2,
    }
    for name in ("Legacy STU3 Plan", "No SMART Plan", "Locked Metadata Plan", "HTML Login Plan"):
        assert points(name)["auth_success"] < 14

    ranks = {p["payer"]: p["rank"] for p in card["payers"]}
    totals = {p["payer"]: p["total"] for p in card["payers"]}
    assert ranks["Exemplary Health"] == 1
    assert all(
        totals["Exemplary Health"] > total
        for name, total in totals.items()
        if name != "Exemplary Health"
    ), totals

    vendors = {v["vendor"]: v for v in card["vendors"]}
    assert (
        vendors["Gold Standard FHIR"]["rank"] == 1 and vendors["Patchwork Health IT"]["rank"] == 2
    )
    assert vendors["Gold Standard FHIR"]["max_points"] == 70
    assert card["vendor_total_computed"] == 63

    table = runner.invoke(app, ["score", "--db", store_url, "--as-of", as_of.isoformat()])
    assert table.exit_code == 0 and "Exemplary Health" in table.stdout

    html = tmp_path / "report.html"
    report = runner.invoke(
        app, ["report", "--html", str(html), "--db", store_url, "--as-of", as_of.isoformat()]
    )
    assert report.exit_code == 0, report.output
    dom, requests = render_in_chromium(html, tmp_path)
    assert requests == []
    assert dom.count('<svg class="chart"') == 4 * len(FLEET)  # a trend and 3 scorecard charts
    assert "Exemplary Health" in dom and "Sandbox Only Plan" in dom
