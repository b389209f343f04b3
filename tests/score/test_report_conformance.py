"""Conformance in the HTML report: the newest verdicts from the store (SQLite and PostgreSQL),
findings with expected/actual/comment and spec, the ranking by required failures, and the page."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import update

from probe.checks.access import ANONYMOUS_REFUSED
from probe.checks.metadata import FHIR_VERSION, REACHABLE
from probe.checks.smart import PKCE_S256
from probe.models import CheckResult, CheckSpec, Status
from probe.score.engine import score
from probe.score.report_conformance import checks_found, conformance_by_payer, finding
from probe.score.report_html import render_report, score_history
from probe.score.rubric import default_rubric
from probe.store.handle import Store
from probe.store.reports import StoredCheck, latest_check_results
from probe.store.tables import PayerRow, RunKind
from tests.score.builders import payer
from tests.score.test_report_html import report_json
from tests.store import conftest as store_fixtures

pg_admin = store_fixtures.pg_admin
store_url = store_fixtures.store_url
store = store_fixtures.store

NOW = datetime(2025, 5, 20, 12, tzinfo=UTC)
SUNRISE = "https://sunrise.example/fhir"


def _result(spec: CheckSpec, status: Status, **evidence: Any) -> CheckResult:
    return CheckResult(spec, status, f"{spec.id} {status}", evidence)


def _save(
    store: Store,
    kind: RunKind,
    base_url: str,
    payer_name: str,
    at: datetime,
    results: list[CheckResult],
    environment: str = "production",
) -> int:
    endpoint = store.ensure_endpoint(base_url, environment, payer_name)
    run_id = store.start_run(kind)
    with store.writer(run_id) as writer:
        writer.add_check_results(endpoint, results, observed_at=at)
    store.finish_run(run_id)
    return run_id


def test_latest_check_results_newest_per_endpoint_and_check(store: Store) -> None:
    old = _save(
        store,
        RunKind.NIGHTLY,
        SUNRISE,
        "Sunrise",
        NOW - timedelta(days=2),
        [_result(ANONYMOUS_REFUSED, Status.PASS), _result(REACHABLE, Status.FAIL)],
    )
    new = _save(
        store,
        RunKind.CHECK,
        SUNRISE,
        "Sunrise",
        NOW - timedelta(days=1),
        [_result(ANONYMOUS_REFUSED, Status.FAIL, expected=[401, 403, 404], actual=200)],
    )
    # A prerelease run tests probe itself; a run after `until` or before `since` is not seen.
    _save(store, RunKind.PRERELEASE, SUNRISE, "Sunrise", NOW, [_result(REACHABLE, Status.PASS)])
    _save(
        store,
        RunKind.NIGHTLY,
        SUNRISE,
        "Sunrise",
        NOW + timedelta(days=1),
        [_result(ANONYMOUS_REFUSED, Status.PASS)],
    )
    _save(
        store,
        RunKind.NIGHTLY,
        "https://other.example/fhir",
        "Other",
        NOW - timedelta(days=400),
        [_result(REACHABLE, Status.FAIL)],
    )
    # Payers from `probe check URL --save` are ad hoc: left out, as the scores leave them out.
    _save(
        store,
        RunKind.CHECK,
        "https://adhoc.example/fhir",
        "adhoc.example",
        NOW,
        [_result(REACHABLE, Status.FAIL)],
    )
    with store.session() as session:
        session.execute(
            update(PayerRow).where(PayerRow.name != "adhoc.example").values(source="directory")
        )
    with store.session() as session:
        rows = latest_check_results(session, since=NOW - timedelta(days=30), until=NOW)
        everyone = latest_check_results(
            session, since=NOW - timedelta(days=30), until=NOW, include_ad_hoc=True
        )
    assert [r.payer for r in everyone] == ["Sunrise", "Sunrise", "adhoc.example"]
    assert [(r.payer, r.check_id, r.status, r.run_id) for r in rows] == [
        ("Sunrise", "auth.anonymous_refused", "fail", new),
        ("Sunrise", "metadata.reachable", "fail", old),  # not run since: its newest verdict
    ]
    assert rows[0].evidence == {"expected": [401, 403, 404], "actual": 200}
    assert rows[0].environment == "production" and rows[0].base_url == SUNRISE
    assert rows[0].observed_at == NOW - timedelta(days=1)


def _row(
    payer_name: str,
    spec: CheckSpec | str,
    status: str,
    severity: str = "required",
    environment: str = "production",
    **evidence: Any,
) -> StoredCheck:
    check_id = spec if isinstance(spec, str) else spec.id
    return StoredCheck(
        id=len(evidence) + 1,
        run_id=7,
        payer=payer_name,
        endpoint_id=1,
        environment=environment,
        base_url=f"https://{payer_name.lower()}.example/fhir",
        check_id=check_id,
        status=status,
        severity=severity,
        message=f"{check_id} said {status}",
        evidence=evidence,
        observed_at=NOW,
    )


def test_findings_lantern_style() -> None:
    anonymous = finding(
        _row("Sunrise", ANONYMOUS_REFUSED, "fail", url=SUNRISE + "/Patient?_count=1",
             http_status=200, expected=[401, 403, 404], actual=200, entries=1,
             entry_types={"Patient": 1}, latency_ms=12.0)
    )  # fmt: skip
    assert (anonymous.expected, anonymous.actual) == ("401, 403, 404", "200")
    assert anonymous.title == ANONYMOUS_REFUSED.title and anonymous.spec == ANONYMOUS_REFUSED.spec
    assert anonymous.url.endswith("/Patient?_count=1") and anonymous.http_status == "200"
    assert dict(anonymous.details) == {"entries": "1", "entry_types": '{"Patient": 1}'}
    # No actual value in the evidence: a refusal's status, or the transport failure, is shown.
    assert finding(_row("A", REACHABLE, "fail", http_status=404)).actual == "HTTP 404"
    refused = finding(_row("A", REACHABLE, "fail", http_status=None, error_class="dns"))
    assert refused.actual == "no answer (dns)"
    assert finding(_row("A", REACHABLE, "fail", http_status=200)).actual == ""
    unknown = finding(_row("A", "future.check", "fail"))
    assert unknown.title == "future.check" and unknown.spec == ""


def test_ranking_by_required_failures() -> None:
    rows = [
        _row("Sunrise", ANONYMOUS_REFUSED, "fail"),
        _row("Sunrise", REACHABLE, "pass"),
        _row("Clean", ANONYMOUS_REFUSED, "pass"),
        _row("Clean", "smart.recommended_fields", "warn", "recommended"),
        _row("Twice", FHIR_VERSION, "fail"),
        _row("Twice", PKCE_S256, "fail"),
        # A sandbox's failure is listed but never counted as a required failure.
        _row("Sandboxed", REACHABLE, "fail", environment="sandbox"),
        _row("Also Clean", REACHABLE, "pass"),
        _row("Also Clean", "smart.recommended_fields", "warn", "recommended"),
    ]
    ranked = conformance_by_payer(rows)
    assert [(c.payer, c.rank, len(c.required_failures)) for c in ranked.values()] == [
        ("Also Clean", 1, 0),
        ("Clean", 1, 0),
        ("Sandboxed", 3, 0),  # one other failure
        ("Twice", 4, 2),
        ("Sunrise", 5, 1),  # one required failure, but member data served without a token
    ]
    assert ranked["Sunrise"].serves_data_without_token
    assert not ranked["Twice"].serves_data_without_token
    assert not ranked["Sandboxed"].required_failures and ranked["Sandboxed"].other_failures
    assert ranked["Sunrise"].counts == {"fail": 1, "pass": 1} and ranked["Sunrise"].checks == 2
    assert [s.id for s in checks_found(ranked.values())] == [
        "auth.anonymous_refused",
        "metadata.fhir_version",
        "metadata.reachable",
        "smart.pkce_s256",
        "smart.recommended_fields",
    ]


def test_page_shows_who_serves_data_without_a_token() -> None:
    inputs = [payer("Sunrise <Community>"), payer("Clean Plan")]
    card = score(inputs, default_rubric(), as_of=NOW)
    history = score_history(inputs, default_rubric(), [NOW])
    conformance = conformance_by_payer(
        [
            _row("Sunrise <Community>", ANONYMOUS_REFUSED, "fail", http_status=200,
                 expected=[401, 403, 404], actual=200, entry_types={"Patient<script>": 1}),
            _row("Sunrise <Community>", "portal.tls_valid", "fail", "recommended"),
            _row("Clean Plan", ANONYMOUS_REFUSED, "pass"),
        ]
    )  # fmt: skip
    page = render_report(card, history, generated_at=NOW, conformance=conformance)
    assert "<script>" not in page.replace("<script>\n", "")  # evidence is escaped
    alert = page.split('id="alert-anonymous"', 1)[1].split("</div>", 1)[0]
    assert "Sunrise &lt;Community&gt;" in alert and "auth.anonymous_refused" in alert
    ranking = page.split('id="rankings"', 1)[1].split("</section>", 1)[0]
    sunrise_row = ranking.split("Sunrise &lt;Community&gt;</a>", 1)[1].split("</tr>", 1)[0]
    assert "serves data without a token" in sunrise_row and "1 req." in sunrise_row
    section = page.split('id="conformance"', 1)[1].split("</section>", 1)[0]
    order = re.findall(r'<a href="#payer-[^"]+">([^<]+)</a>', section)
    assert order == ["Clean Plan", "Sunrise &lt;Community&gt;"]
    card_html = page.split('id="payer-sunrise-community"', 1)[1].split("<h4>Metrics", 1)[0]
    assert "1 required check failed" in card_html
    finding_row = card_html.split('<tr class="required-failure">', 1)[1].split("</tr>", 1)[0]
    assert "<td>401, 403, 404</td>" in finding_row and "<td>200</td>" in finding_row
    assert ANONYMOUS_REFUSED.spec in finding_row  # a required failure quotes its spec in full
    assert "auth.anonymous_refused said fail" in finding_row
    assert '<a href="#check-portal.tls_valid">' in card_html  # others link to the references
    assert 'id="check-portal.tls_valid"' in page
    data = report_json(page)
    sunrise = data["conformance"][1]
    assert sunrise["serves_data_without_token"] is True
    assert sunrise["required_failures"] == ["auth.anonymous_refused"]
    assert sunrise["counts"]["fail"] == 2
