"""The HTML report: history points, score history, a self-contained page, and Chromium renders it.

The Chromium test opens the written file headless with the network cut off (every host name
resolves to nothing) and a net log, and checks the Plotly charts are in the rendered DOM and that
the page asked for nothing over the network.
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
from probe.score.report_html import (
    MAX_RUN_POINTS,
    ChangeEvent,
    history_points,
    render_report,
    score_history,
)
from probe.score.rubric import default_rubric
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


def test_page_is_self_contained_and_complete() -> None:
    page, card = _render()
    parser = _Resources()
    parser.feed(page)
    assert parser.fetching == []  # no script src, no stylesheet link, no image
    assert "link" not in parser.tags and "img" not in parser.tags and "iframe" not in parser.tags
    # Outside the inline scripts (plotly.js holds URLs in strings it never fetches here).
    markup = re.sub(r"<script\b[^>]*>.*?</script>", "", page, flags=re.S)
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", markup)
    assert "@import" not in markup and not re.search(r"url\(\s*['\"]?(https?:)?//", markup)
    assert "plotly.js v" in page  # the library itself is inline
    # Markup in payer names is escaped everywhere, in the HTML and in the embedded JSON.
    assert "Good &lt;Health&gt; &amp; Co" in page and "Good <Health>" not in page
    data = json.loads(
        re.search(
            r'<script type="application/json" id="report-data">(.*?)</script>', page, re.S
        ).group(1)
    )  # type: ignore[union-attr]
    assert set(data["figures"]) == {
        "overview-score",
        "overview-sync",
        "overview-requests",
        "chart-payer-good-health-co",
        "chart-payer-poor-plan",
    }
    for figure_id in data["figures"]:
        assert f'id="{figure_id}"' in page
    assert data["scorecard"]["payers"][0]["payer"] == "Good <Health> & Co"
    score_trace = data["figures"]["overview-score"]["data"][0]
    assert score_trace["name"] == "Good <Health> & Co" and len(score_trace["x"]) == 3
    # Rankings, the vendor table, the 63-vs-70 note, exclusions and "not enough data".
    assert "Payer ranking" in page and "Vendor ranking" in page
    assert card.vendor_total_discrepancy and card.vendor_total_discrepancy in page
    assert "the vendor metrics add up to 63" in page
    assert "Tiny Plan" in page and "fewer than 500" in page
    assert "Not enough data" in page
    # Evidence behind the points: runs, failed requests, checks.
    assert "1 failed request (9)" in page
    assert "run:4 check:7" in page
    assert "No changes recorded." in page


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
    # Plotly turned each of the five chart divs into a plot with SVG layers.
    plots = re.findall(r'<div class="[^"]*\bjs-plotly-plot\b[^"]*" id="([^"]+)"', dom)
    assert sorted(plots) == sorted(
        [
            "overview-score",
            "overview-sync",
            "overview-requests",
            "chart-payer-good-health-co",
            "chart-payer-poor-plan",
        ]
    )
    assert dom.count('<svg class="main-svg"') >= 5
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


def test_overview_draws_the_ten_best_ranked_payers() -> None:
    from probe.score.report_html import HistoryPoint, overview_figures

    history = {
        f"Payer {i:02d}": [HistoryPoint(AS_OF, 100 - i, i + 1 if i < 11 else None, None, None)]
        for i in range(12)
    }
    traces = overview_figures(history, 100)["overview-score"]["data"]
    visible = [t["name"] for t in traces if t["visible"] is True]
    assert visible == [f"Payer {i:02d}" for i in range(10)]
    assert {t["visible"] for t in traces if t["name"] in ("Payer 10", "Payer 11")} == {"legendonly"}
