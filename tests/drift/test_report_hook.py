"""Drift events appear in the HTML score report, per payer (probe report --html)."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from probe.cli.app import app
from probe.drift.classify import ChangeKind
from probe.fleet.changes import PayerChange
from probe.score.report_changes import report_changes
from probe.store.handle import Store
from tests.drift.fleet_runs import crawl_fleet

PAYERS = [{"slug": "steady"}, {"slug": "dropper"}]
CHANGE = {"dropper": PayerChange(drop_resource_types=("Immunization",))}


def test_the_html_report_lists_each_payers_drift(
    store: Store, store_url: str, tmp_path: Path
) -> None:
    crawl_fleet(store, tmp_path, PAYERS)
    second = crawl_fleet(store, tmp_path, PAYERS, CHANGE)
    assert second.drift is not None and second.drift.detection is not None
    detected = second.drift.detection.events[0].detected_at
    with store.session() as session:
        rows = report_changes(session, since=detected, until=detected, min_kind=ChangeKind.NOTABLE)
    assert list(rows) == ["Dropper"]
    row = rows["Dropper"][0]
    assert row.kind == "breaking" and row.summary.startswith(
        "capability.resource.removed:Immunization"
    )
    assert row.evidence[0] == f"run:{second.run_id}"

    page = tmp_path / "report.html"
    result = CliRunner().invoke(app, ["report", "--html", str(page), "--db", store_url])
    assert result.exit_code == 0, result.output
    html = page.read_text()
    assert "capability.resource.removed:Immunization" in html
    assert html.count("No changes recorded.") == 1  # the steady payer
