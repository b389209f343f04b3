"""The HTML report: history points, score history, a self-contained page, and Chromium renders it.

The Chromium test opens the written file headless with the network cut off (every host name
resolves to nothing) and a net log, and checks the SVG charts are in the rendered DOM and that
the page asked for nothing over the network. tests/integration/test_report_browser.py opens the
demo's own report with Playwright and fails on any page or console error.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from probe.score.engine import score
from probe.score.inputs import AuthCounts, RateInput
from probe.score.report_conformance import conformance_by_payer
from probe.score.report_html import (
    MAX_RUN_POINTS,
    ChangeEvent,
    history_points,
    render_report,
    score_history,
)
from probe.score.rubric import default_rubric
from probe.store.reports import StoredCheck
from tests.score.builders import payer

AS_OF = datetime(2025, 5, 20, 12, tzinfo=UTC)
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    # Nothing may leave the machine: no host name resolves (Chromium's own background
    # services included), so even a page that tried could not reach the internet.
    "--host-resolver-rules=MAP * ~NOTFOUND",
)


def _at(days_ago: float) -> datetime:
    return AS_OF - timedelta(days=days_ago)


def _inputs() -> list[Any]:
    """Three payers with observations spread over four months."""
    from probe.score.inputs import Sample

    good = payer(
        "Good <Health> & Co",  # markup in names must be escaped
        vendor="Cloudy",
        requests=tuple(
            Sample(_at(d), RateInput(99, 100), (f"run:{i}",))
            for i, d in enumerate((100, 60, 30, 1), 1)
        ),
        sync_durations_s=tuple(
            Sample(_at(d), s, (f"sync_job:{d}",)) for d, s in ((100, 4.0), (60, 2.0), (1, 0.5))
        ),
        authorizations=(Sample(_at(5), AuthCounts(authorized=19, failed=1)),),
        capability_checks=(Sample(_at(1), True, ("run:4", "check:7")),),
    )
    poor = payer(
        "Poor Plan",
        vendor="Cloudy",
        requests=(Sample(_at(1), RateInput(40, 100), ("run:4", "request:9")),),
    )
    tiny = payer("Tiny Plan", lives=10)
    return [good, poor, tiny]


def test_history_points_per_run_then_per_month() -> None:
    runs = [_at(d) for d in (3, 2, 1)]
    assert history_points(runs, AS_OF) == [*runs, AS_OF]
    # Older than 24 months or after as_of: left out.
    assert history_points([AS_OF - timedelta(days=800), AS_OF + timedelta(days=1)], AS_OF) == [
        AS_OF
    ]
    many = [_at(d) for d in range(MAX_RUN_POINTS + 1, 0, -1)]
    points = history_points(many, AS_OF)
    # 63 nightly runs from 2025-03-18: month ends of March and April, then as_of.
    assert points == [
        datetime(2025, 3, 31, 23, 59, 59, 999999, tzinfo=UTC),
        datetime(2025, 4, 30, 23, 59, 59, 999999, tzinfo=UTC),
        AS_OF,
    ]


def test_score_history_uses_each_points_window() -> None:
    inputs = _inputs()
    points = [_at(90), _at(45), AS_OF]
    history = score_history(inputs, default_rubric(), points)
    good = history["Good <Health> & Co"]
    assert [p.at for p in good] == points
    # Sync speed: at -90 days only the 4 s sync (100 days ago) is in the window: median 4.0;
    # at -45 days the 4 s and 2 s syncs: 3.0; at as_of all three (4, 2, 0.5): 2.0.
    assert [p.sync_median_s for p in good] == [4.0, 3.0, 2.0]
    assert [p.request_success_pct for p in good] == [99.0, 99.0, 99.0]
    assert good[-1].total == score(inputs, as_of=AS_OF).payer("Good <Health> & Co").total
    poor = history["Poor Plan"]
    # Poor Plan has no request before its last day: not enough data, shown as a gap (None).
    assert [p.request_success_pct for p in poor] == [None, None, 40.0]
    assert [p.rank for p in poor] == [2, 2, 2]
    # Tiny Plan covers 10 lives: never scored.
    assert {p.total for p in history["Tiny Plan"]} == {None}


class _Resources(HTMLParser):
    """Collects every attribute that could make a browser fetch something."""

    def __init__(self) -> None:
        super().__init__()
        self.fetching: list[tuple[str, str, str]] = []
        self.tags: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        for name, value in attrs:
            if name in ("src", "srcset", "data", "poster") or (name == "href" and tag == "link"):
                self.fetching.append((tag, name, value or ""))


def _render(changes: dict[str, list[ChangeEvent]] | None = None) -> tuple[str, Any]:
    inputs = _inputs()
    rubric = default_rubric()
    card = score(inputs, rubric, as_of=AS_OF)
    history = score_history(inputs, rubric, [_at(90), _at(45), AS_OF])
    page = render_report(
        card,
        history,
        generated_at=AS_OF,
        database="sqlite:///probe.db",
        changes=changes,
    )
    return page, card


def report_json(page: str) -> Any:
    """The page's embedded data, parsed as strictly as a browser does (no NaN, no Infinity)."""

    def refuse(constant: str) -> None:
        raise ValueError(f"{constant} is not JSON")

    found = re.search(
        r'<script type="application/json" id="report-data">(.*?)</script>', page, re.S
    )
    assert found is not None
    return json.loads(found.group(1), parse_constant=refuse)


CHART_IDS = {
    "trend-payer-good-health-co-score",
    "trend-payer-poor-plan-score",
    *(
        f"chart-payer-{slug}-{key}"
        for slug in ("good-health-co", "poor-plan")
        for key in ("score", "sync", "requests")
    ),
}


def test_page_is_self_contained_and_complete() -> None:
    page, card = _render()
    parser = _Resources()
    parser.feed(page)
    assert parser.fetching == []  # no script src, no stylesheet link, no image
    assert "link" not in parser.tags and "img" not in parser.tags and "iframe" not in parser.tags
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page)
    assert "@import" not in page and not re.search(r"url\(", page)
    assert "plotly" not in page.lower()  # the charts are inline SVG, drawn at build time
    # Markup in payer names is escaped everywhere, in the HTML and in the embedded JSON.
    assert "Good &lt;Health&gt; &amp; Co" in page and "Good <Health>" not in page
    data = report_json(page)
    assert data["schema"] == "probe-report-data/1"
    assert data["payers"][0]["payer"] == "Good <Health> & Co"
    assert data["payers"][0]["metrics"]["request_success"]["points"] == 10
    # Every chart is an accessible SVG: an id, a title and a description naming the payer.
    charts = dict(re.findall(r'<svg class="chart" id="([^"]+)"[^>]*data-points="(\d+)"', page))
    assert set(charts) == CHART_IDS
    assert int(charts["chart-payer-good-health-co-score"]) == 6  # 3 points, payer and median
    assert "Good &lt;Health&gt; &amp; Co: from 4 s to 2 s." in page  # the sync median in words
    # Rankings, the vendor table, the 63-vs-70 note, exclusions and "not enough data".
    assert "Payer ranking" in page and "Vendor ranking" in page and "Conformance" in page
    assert card.vendor_total_discrepancy and card.vendor_total_discrepancy in page
    assert "the vendor metrics add up to 63" in page
    assert "Tiny Plan" in page and "fewer than 500" in page
    assert "Not enough data" in page
    # Scorecards are collapsed <details>; no emoji is used as a marker.
    assert page.count('<details class="scorecard"') == 2
    assert not re.search("[\U0001f300-\U0001faff\u2600-\u27bf]", page)
    # Evidence behind the points: runs, failed requests, checks.
    assert "1 failed request (9)" in page
    assert "1 run (4); 1 check result (7)" in page
    assert "No changes recorded." in page
    # No check result was given: the conformance section says so.
    assert "No check results were stored in the window." in page


def test_indefinite_durations_are_strict_json() -> None:
    """`inactive_member_access_months: .inf` (the demo's Blue Meadow) is null plus a flag."""
    from probe.directory.schema import EndpointFacts

    inputs = [
        payer("Forever Plan", facts=EndpointFacts(inactive_member_access_months=float("inf"))),
        payer("Two Year Plan", facts=EndpointFacts(inactive_member_access_months=24)),
    ]
    card = score(inputs, default_rubric(), as_of=AS_OF)
    history = score_history(inputs, default_rubric(), [AS_OF])
    page = render_report(card, history, generated_at=AS_OF)
    assert "Infinity" not in page and "NaN" not in page
    data = report_json(page)
    forever = next(p for p in data["payers"] if p["payer"] == "Forever Plan")
    months = forever["metrics"]["inactive_member_access"]["input"]
    assert months["months"] is None and months["indefinite"] is True


def test_changes_section_lists_drift_events() -> None:
    event = ChangeEvent(_at(3), "capability_changed", "CapabilityStatement changed", ("check:7",))
    page, _ = _render({"Poor Plan": [event]})
    section = page.split('id="payer-poor-plan"', 1)[1].split("</article>", 1)[0]
    assert "capability_changed" in section and "CapabilityStatement changed" in section
    assert "No changes recorded." in page  # the other payer still has none


# -- Chromium ---------------------------------------------------------------------------------


def chromium() -> str:
    """Debian's Chromium; installed with apt-get when missing in CI as root, else a clear failure."""
    found = shutil.which("chromium") or (
        "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None
    )
    if found:
        return found
    if os.environ.get("CI") and hasattr(os, "geteuid") and os.geteuid() == 0:
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], check=False, env=env, timeout=600)
        done = subprocess.run(
            ["apt-get", "install", "-y", "-qq", "chromium"],
            env=env,
            timeout=900,
            capture_output=True,
            text=True,
        )
        if done.returncode == 0 and Path("/usr/bin/chromium").exists():
            return "/usr/bin/chromium"
        pytest.fail(f"apt-get install -y chromium failed: {done.stderr[-2000:]}", pytrace=False)
    pytest.fail(
        "headless Chromium is needed to render the HTML report and was not found at "
        "/usr/bin/chromium; install it with `apt-get install -y chromium` (CI does this "
        "itself when it runs as root)",
        pytrace=False,
    )


def _page_requests(net_log: Path) -> list[str]:
    """URLs of network requests the page made (the browser's own services excluded)."""
    log = json.loads(net_log.read_text(encoding="utf-8"))
    names = {v: k for k, v in log["constants"]["logEventTypes"].items()}
    out = []
    for event in log["events"]:
        params = event.get("params") or {}
        if names.get(event["type"]) != "URL_REQUEST_START_JOB" or "url" not in params:
            continue
        url = str(params["url"])
        # Chromium's background services (update checks, account lookups) have no initiator
        # ("not an origin"); a request made by the page carries the page's (opaque) origin.
        if (
            url.startswith(("file:", "data:", "blob:"))
            or params.get("initiator") == "not an origin"
        ):
            continue
        out.append(url)
    return out


def render_in_chromium(html: Path, tmp_path: Path) -> tuple[str, list[str]]:
    """The DOM after load (charts drawn) and the URLs the page requested."""
    profile = tmp_path / "chromium-profile"
    net_log = tmp_path / "net-log.json"
    done = subprocess.run(
        [
            chromium(),
            *CHROMIUM_FLAGS,
            f"--user-data-dir={profile}",
            f"--log-net-log={net_log}",
            "--dump-dom",
            html.resolve().as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=180,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout, _page_requests(net_log)


@pytest.mark.slow
def test_chromium_draws_every_chart_without_network(tmp_path: Path) -> None:
    page, _ = _render()
    html = tmp_path / "report.html"
    html.write_text(page, encoding="utf-8")
    dom, requests = render_in_chromium(html, tmp_path)
    assert requests == []
    # Every chart is in the rendered DOM with its lines and points.
    charts = re.findall(r'<svg class="chart" id="([^"]+)"', dom)
    assert set(charts) == CHART_IDS
    assert dom.count("<path") >= 2 * len(CHART_IDS) - 2  # Poor Plan's requests: one point
    assert "Good &lt;Health&gt; &amp; Co" in dom


@pytest.mark.slow
def test_net_log_check_catches_a_page_that_fetches(tmp_path: Path) -> None:
    """The request check is not vacuous: a page loading an image is caught (nothing resolves)."""
    html = tmp_path / "fetching.html"
    html.write_text(
        '<!DOCTYPE html><html><body><img src="http://report-test.invalid/pixel.png"></body></html>',
        encoding="utf-8",
    )
    _dom, requests = render_in_chromium(html, tmp_path)
    assert requests == ["http://report-test.invalid/pixel.png"]


def test_median_series_and_gaps() -> None:
    from probe.score.report_svg import Series, line_chart, median_series

    assert median_series([(1.0, None, 3.0), (3.0, None, None), (5.0, None, 4.0)]) == (
        3.0,
        None,
        3.5,
    )
    times = [AS_OF - timedelta(days=d) for d in (3, 2, 1, 0)]
    chart = line_chart(
        "c", "Score <x>", times, [Series("P & Q", (1.0, None, 2.0, 3.0))], y_max=10.0
    )
    # A None breaks the line: one dot, then a segment of two.
    assert chart.count("<path") == 1 and chart.count("<circle") == 3
    assert "<title>Score &lt;x&gt;</title>" in chart
    assert "P &amp; Q: from 1 to 3." in chart and "not enough data" not in chart
    # A payer without data at any point says so in the chart, not only in its description.
    empty = line_chart("e", "Sync", times, [Series("P", (None,) * 4), Series("m", (1.0,) * 4)])
    assert ">not enough data</text>" in empty and "P: not enough data." in empty


def test_report_stays_small_with_many_payers_and_a_long_history() -> None:
    """74 payers (as many as the curated directory) with 62 nightly runs and six failed or
    warned checks each: the page stays within 2 MiB."""
    from probe.score.inputs import Sample

    names = [f"Payer {i:03d}" for i in range(74)]
    runs = [_at(d) for d in range(62, 0, -1)]
    inputs = [
        payer(
            name,
            vendor=f"Vendor {i % 7}",
            requests=tuple(
                Sample(at, RateInput(90 + i % 10, 100), (f"run:{n}", f"request:{n * 100 + i}"))
                for n, at in enumerate(runs)
            ),
            sync_durations_s=tuple(
                Sample(at, 1.0 + (n % 5), (f"sync_job:{n}",)) for n, at in enumerate(runs)
            ),
        )
        for i, name in enumerate(names)
    ]
    rubric = default_rubric()
    card = score(inputs, rubric, as_of=AS_OF)
    points = history_points(runs, AS_OF)
    assert len(points) == 63
    history = score_history(inputs, rubric, points)
    conformance = conformance_by_payer(
        StoredCheck(
            id=n,
            run_id=62,
            payer=name,
            endpoint_id=i,
            environment="production",
            base_url=f"https://fhir.payer{i}.example/r4",
            check_id=check_id,
            status=status,
            severity=severity,
            message=f"{check_id} {status}: the server answered with something else entirely",
            evidence={
                "url": f"https://fhir.payer{i}.example/r4/metadata",
                "http_status": 200,
                "content_type": "application/fhir+json",
                "pointer": "/fhirVersion",
                "expected": "4.0.1",
                "actual": "3.0.2",
            },
            observed_at=runs[-1],
        )
        for i, name in enumerate(names)
        for n, (check_id, severity, status) in enumerate(
            [
                ("metadata.fhir_version", "required", "fail"),
                ("smart.pkce_s256", "required", "fail"),
                ("portal.tls_valid", "recommended", "fail"),
                ("metadata.patient_everything", "recommended", "fail"),
                ("smart.recommended_fields", "recommended", "warn"),
                ("metadata.json_format", "required", "warn"),
            ],
            start=i * 10,
        )
    )
    page = render_report(card, history, generated_at=AS_OF, conformance=conformance)
    assert len(page.encode()) <= 2 * 1024 * 1024, len(page.encode())
    assert page.count('<details class="scorecard"') == 74
    assert page.count('<tr class="required-failure">') == 2 * 74
