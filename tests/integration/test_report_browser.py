"""The demo's own report in headless Chromium: no page error, no console error, no request.

`probe demo` runs once per module, as a user runs it (its own process, a fresh working
directory, a free port): it serves the demo fleet on loopback, crawls it into ``./probe.db``,
scores it and writes ``probe-report.html`` (about 25 s on an idle 2-core machine, the whole
module's cost). The tests open that file with Playwright in Debian's Chromium and fail on any
uncaught page error, any console error and any network request; they check that every chart
drew (SVG with data, laid out with a size), that conformance failures are shown (Sunrise
Community Health serves member data without a token: ``auth.anonymous_refused``), that the
embedded data parses as the browser's strict ``JSON.parse`` reads it, and the 2 MiB bound.

Skipped only when Playwright or Chromium is missing. With ``PROBE_REPORT_SCREENSHOTS=DIR`` the
test also saves the screenshots ``docs/report.md`` shows (``report-overview.png``,
``report-scorecard.png``, ``report-conformance.png``) in DIR.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.slow

MAX_BYTES = 2 * 1024 * 1024
MAX_HEIGHT_PX = 8000  # at 1280 px with every scorecard collapsed (the old report: 54,000 px)
DEMO_TIMEOUT_S = 400
UNSAFE_PAYER = "Sunrise Community Health"  # the demo fleet's open_data payer


def _chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        pytest.skip("Chromium is not installed (apt-get install chromium)")
    return found


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.2", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def demo_report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`probe demo` run once in a fresh directory; the report it wrote."""
    pytest.importorskip("playwright.sync_api", reason="Playwright is not installed")
    _chromium()
    workdir = tmp_path_factory.mktemp("demo")
    done = subprocess.run(
        [sys.executable, "-m", "probe.cli", "demo", "--port", str(_free_port())],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=DEMO_TIMEOUT_S,
        env={**os.environ, "COLUMNS": "200"},
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = workdir / "probe-report.html"
    assert report.is_file(), done.stderr[-3000:]
    return report


@dataclass
class Opened:
    """The page after load, and everything that went wrong or out while loading it."""

    page: Any
    errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)


@contextlib.contextmanager
def open_in_chromium(html: Path) -> Iterator[Opened]:
    """`html` open in headless Chromium at 1280 px, every request off the file refused."""
    pytest.importorskip("playwright.sync_api", reason="Playwright is not installed")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=_chromium(), args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            seen = Opened(page)
            page.on("pageerror", lambda exc: seen.errors.append(f"page error: {exc}"))
            page.on(
                "console",
                lambda msg: (
                    seen.errors.append(f"console {msg.type}: {msg.text}")
                    if msg.type in ("error", "assert")
                    else None
                ),
            )

            def refuse(route: Any) -> None:
                seen.requests.append(route.request.url)
                route.abort()

            page.route(lambda url: not url.startswith(("file:", "data:", "about:")), refuse)
            page.goto(html.resolve().as_uri(), wait_until="load")
            yield seen
        finally:
            browser.close()


@pytest.fixture
def opened(demo_report: Path) -> Iterator[Opened]:
    """The demo report open in headless Chromium at 1280 px, the network cut off."""
    with open_in_chromium(demo_report) as seen:
        yield seen


def test_a_broken_page_is_caught(tmp_path: Path) -> None:
    """The checks are not vacuous: the old report's failure (JSON.parse of Infinity), a console
    error and a fetch are each seen."""
    html = tmp_path / "broken.html"
    html.write_text(
        '<!DOCTYPE html><html><body><img src="http://report-test.invalid/pixel.png">'
        '<script>console.error("drawn badly"); JSON.parse(\'{"months": Infinity}\');</script>'
        "</body></html>",
        encoding="utf-8",
    )
    with open_in_chromium(html) as seen:
        seen.page.wait_for_timeout(200)
        assert seen.requests == ["http://report-test.invalid/pixel.png"]
        # The refused fetch is logged as a console error as well.
        assert sorted(seen.errors)[:2] == [
            "console error: Failed to load resource: net::ERR_FAILED",
            "console error: drawn badly",
        ]
        page_errors = [e for e in seen.errors if e.startswith("page error: ")]
        assert len(seen.errors) == 3 and len(page_errors) == 1 and "JSON" in page_errors[0]


def _after_load(seen: Opened) -> None:
    """No error and no request so far."""
    assert seen.errors == []
    assert seen.requests == []


def test_demo_report_loads_clean_and_small(demo_report: Path, opened: Opened) -> None:
    page = opened.page
    _after_load(opened)
    assert demo_report.stat().st_size <= MAX_BYTES
    # The embedded data parses with the browser's own (strict) JSON.parse.
    data = page.evaluate("JSON.parse(document.getElementById('report-data').textContent)")
    payers = {p["payer"]: p for p in data["payers"]}
    assert len(payers) >= 20
    blue = payers["Blue Meadow Health"]["metrics"]["inactive_member_access"]["input"]
    assert blue["months"] is None and blue["indefinite"] is True  # `.inf` in the demo fleet
    height = page.evaluate("document.documentElement.scrollHeight")
    assert height <= MAX_HEIGHT_PX, height
    assert page.locator("details.scorecard[open]").count() == 0  # collapsed until asked


def test_every_chart_drew_with_data(opened: Opened) -> None:
    page = opened.page
    charts = page.evaluate(
        """() => Array.from(document.querySelectorAll('svg.chart')).map(svg => ({
            id: svg.id,
            points: Number(svg.dataset.points),
            marks: svg.querySelectorAll('path.line, circle.dot').length,
            title: (svg.querySelector('title') || {}).textContent || '',
            width: svg.getBoundingClientRect().width,
        }))"""
    )
    payers = page.locator("details.scorecard").count()
    assert len(charts) == 4 * payers  # a trend and three scorecard charts per payer
    for chart in charts:
        assert chart["points"] > 0 and chart["marks"] > 0, chart
        assert "against the median payer" in chart["title"], chart
    # The trends are laid out (the scorecards' charts too once opened).
    trends = [c for c in charts if c["id"].startswith("trend-")]
    assert len(trends) == payers and all(c["width"] > 100 for c in trends)
    page.get_by_role("button", name="Expand all").click()
    widths = page.evaluate(
        "Array.from(document.querySelectorAll('.scorecard svg.chart'))"
        ".map(svg => svg.getBoundingClientRect().width)"
    )
    assert len(widths) == 3 * payers and min(widths) > 100
    _after_load(opened)


def test_conformance_failures_are_shown(opened: Opened) -> None:
    page = opened.page
    alert = page.locator("#alert-anonymous")
    assert alert.is_visible() and UNSAFE_PAYER in alert.inner_text()
    ranking_row = page.locator("#rankings tr", has_text=UNSAFE_PAYER)
    assert "serves data without a token" in ranking_row.inner_text()
    assert "1 req." in ranking_row.inner_text()
    conformance_row = page.locator("#conformance tr", has_text=UNSAFE_PAYER)
    assert "auth.anonymous_refused" in conformance_row.inner_text()
    # Following the payer's link opens its scorecard on the failed check and its evidence.
    ranking_row.get_by_role("link", name=UNSAFE_PAYER).click()
    card = page.locator("details.scorecard", has_text=UNSAFE_PAYER)
    assert card.get_attribute("open") is not None
    failure = card.locator("tr.required-failure", has_text="auth.anonymous_refused")
    assert failure.is_visible()
    text = failure.inner_text()
    assert "401, 403, 404" in text and "200" in text and "member data is served" in text
    assert "SHALL reject any unauthorized requests" in text  # the spec reference
    _after_load(opened)
    screenshots = os.environ.get("PROBE_REPORT_SCREENSHOTS")
    if screenshots:
        _screenshots(page, Path(screenshots), card)
    # A finding that is not a required failure links to its spec reference, listed once in a
    # collapsed list: following the link opens it there.
    page.get_by_role("button", name="Expand all").click()
    link = page.locator("td.spec a").first
    target = str(link.get_attribute("href"))[1:]
    reference = page.locator(f'[id="{target}"]')
    assert not reference.is_visible()
    link.click()
    assert reference.is_visible() and target.removeprefix("check-") in reference.inner_text()
    _after_load(opened)


def _screenshots(page: Any, directory: Path, card: Any) -> None:
    """The pictures docs/report.md shows, from the page under test."""
    directory.mkdir(parents=True, exist_ok=True)
    card.scroll_into_view_if_needed()
    page.evaluate("window.scrollBy(0, -8)")
    page.screenshot(path=str(directory / "report-scorecard.png"))
    page.evaluate("document.querySelectorAll('details[open]').forEach(d => d.open = false)")
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=str(directory / "report-overview.png"))
    page.locator("#conformance").scroll_into_view_if_needed()
    page.evaluate("document.getElementById('conformance').scrollIntoView()")
    page.screenshot(path=str(directory / "report-conformance.png"))
    page.evaluate("document.getElementById('trends').scrollIntoView()")
    page.screenshot(path=str(directory / "report-trends.png"))
