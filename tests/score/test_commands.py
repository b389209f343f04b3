"""`probe score`, `probe report --html` and `probe import authorizations` through the CLI.

Each command test runs on SQLite and PostgreSQL (the store fixtures); option errors need no
database. Every failure must be one message and exit code 2, never a traceback.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import Result
from typer.testing import CliRunner

from probe.cli.app import app
from probe.cli.reading import parse_as_of
from probe.cli.score import CSV_COLUMNS
from probe.directory.schema import Directory
from probe.models import CheckResult, CheckSpec, Exchange, ExtractStep, Severity, Status
from probe.store.handle import Store
from probe.store.tables import ProbeRunRow, RunKind
from tests.store import conftest as store_fixtures

pg_admin = store_fixtures.pg_admin
store_url = store_fixtures.store_url
store = store_fixtures.store

GOOD = "https://fhir.good.example/r4"
SANDBOX = "https://sandbox.good.example/r4"
BARE = "https://fhir.bare.example/api"
TINY = "https://tiny.example/fhir"
AS_OF = "2025-05-20"
OBSERVED = datetime(2025, 5, 10, 12, tzinfo=UTC)

runner = CliRunner()


def invoke(*args: str) -> Result:
    """Run probe with these arguments; a crash (anything but SystemExit) fails the test."""
    result = runner.invoke(app, list(args))
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    assert "Traceback" not in result.output
    return result


def _directory() -> Directory:
    return Directory.model_validate(
        {
            "payers": [
                {
                    "name": "Good Health",
                    "lives": 50_000,
                    "vendor": "Cloudy FHIR",
                    "organization_status": "Live",
                    "lines_of_business": {"offered": ["medicaid"], "supported": ["medicaid"]},
                    "endpoints": [
                        {
                            "base_url": GOOD,
                            "sandbox_url": SANDBOX,
                            "portal_url": "https://developer.good.example",
                            "facts": {
                                "member_portal_opt_in_required": False,
                                "inactive_member_access_months": 60,
                            },
                        }
                    ],
                },
                {
                    "name": "Bare Plan",
                    "lives": 9_000,
                    "vendor": "Cloudy FHIR",
                    "organization_status": "Applied",
                    "endpoints": [{"base_url": BARE}],
                },
                {"name": "Tiny Plan", "lives": 12, "endpoints": [{"base_url": TINY}]},
            ]
        }
    )


def _check(check_id: str, status: Status) -> CheckResult:
    return CheckResult(CheckSpec(check_id, check_id, Severity.REQUIRED, "spec"), status, "msg")


def _ex(url: str, step: ExtractStep, status: int | None) -> Exchange:
    return Exchange("GET", url, step, status=status, started_at=OBSERVED)


def populate(store: Store) -> dict[str, int]:
    """Good Health observed in one nightly run; Bare Plan never observed; Tiny Plan excluded."""
    ids = store.upsert_directory(_directory())
    good = ids[f"production:{GOOD}"]
    run = store.start_run(RunKind.NIGHTLY)
    with store.writer(run) as w:
        w.add_exchanges(
            good,
            [
                _ex(f"{GOOD}/Patient/1/$everything", ExtractStep.EVERYTHING, 200),
                *[
                    _ex(f"{GOOD}/Patient/1/$everything?page={i}", ExtractStep.PAGINATION, 200)
                    for i in range(18)
                ],
                _ex(f"{GOOD}/Patient/1/$everything?page=18", ExtractStep.PAGINATION, 503),
                _ex(f"{GOOD}/Practitioner/7", ExtractStep.REFERENCE, 200),
            ],
        )
        w.add_check_results(
            good,
            [
                _check("metadata.reachable", Status.PASS),
                _check("metadata.is_capability_statement", Status.PASS),
            ],
            observed_at=OBSERVED,
        )
        w.add_check_results(good, [_check("smart.is_json", Status.PASS)], observed_at=OBSERVED)
        w.add_check_results(
            ids[f"sandbox:{SANDBOX}"],
            [_check("metadata.is_capability_statement", Status.PASS)],
            observed_at=OBSERVED,
        )
        w.add_sync_job(
            good,
            "member 1",
            created_at=OBSERVED,
            completed_at=OBSERVED + timedelta(seconds=0.4),
            outcome="completed",
            resources_by_type={
                "Patient": 1,
                "ExplanationOfBenefit": 4,
                "Coverage": 1,
                "Condition": 2,
            },
            details={
                "everything": {"supported": True, "paged": True, "support_level": "paged"},
                "tokens": {"refresh_token_issued": True, "refresh_token_lifetime_s": None},
            },
        )
    store.finish_run(run)
    with store.session() as session:  # the run happened when its observations were made
        row = session.get(ProbeRunRow, run)
        assert row is not None
        row.started_at, row.finished_at = OBSERVED, OBSERVED + timedelta(minutes=5)
    return {"run": run, "good": good}


def table_rows(text: str) -> dict[str, str]:
    """A rich table's rows by first cell, each cell's wrapped lines joined (cells joined by |)."""
    rows: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in text.splitlines():
        if not line.startswith("│"):
            continue
        cells = [c.strip() for c in line.strip("│").split("│")]
        if cells[0]:
            current = rows.setdefault(cells[0], ["" for _ in cells])
        if current is None:
            continue
        for i, cell in enumerate(cells):
            if cell:
                current[i] = f"{current[i]} {cell}".strip()
    return {key: " | ".join(cells) for key, cells in rows.items()}


def _auth_csv(tmp_path: Path, extra: str = "") -> Path:
    path = tmp_path / "authorizations.csv"
    rows = ["endpoint,attempted_at,state,query_ineligible,id"]
    rows += [f"{GOOD},2025-05-0{1 + i % 9}T10:00:00Z,Authorized,,ok{i}" for i in range(18)]
    rows += [
        f"{GOOD},2025-05-02T11:00:00Z,Failed,true,bad1",
        f"{GOOD},2025-05-02T12:00:00Z,Failed,,bad2",
    ]
    rows += [f"{GOOD},2025-05-03T12:00:00Z,Bounced,,gone1"]
    path.write_text("\n".join(rows) + "\n" + extra, encoding="utf-8")
    return path


@pytest.fixture
def scored(store: Store, store_url: str, tmp_path: Path) -> str:
    """A populated database URL with the authorization log imported."""
    populate(store)
    result = invoke("import", "authorizations", str(_auth_csv(tmp_path)), "--db", store_url)
    assert result.exit_code == 0, result.output
    return store_url


# -- import authorizations ----------------------------------------------------------------------


def test_import_authorizations_is_idempotent(store: Store, store_url: str, tmp_path: Path) -> None:
    populate(store)
    path = _auth_csv(tmp_path)
    first = invoke("import", "authorizations", str(path), "--db", store_url)
    assert first.exit_code == 0, first.output
    assert "authorizations.csv: 21 row(s) for 1 endpoint(s)" in first.stdout
    assert (
        "21 new, 0 updated, 0 already imported (authorized 18, bounced 1, failed 2)" in first.stdout
    )
    again = invoke("import", "authorizations", str(path), "--db", store_url)
    assert again.exit_code == 0
    assert "0 new, 0 updated, 21 already imported" in again.stdout


def test_import_reports_every_bad_row_and_imports_nothing(
    store: Store, store_url: str, tmp_path: Path
) -> None:
    populate(store)
    path = _auth_csv(tmp_path, f"{GOOD},yesterday,Authorized,,x1\n{GOOD},2025-05-01,Maybe,,x2\n")
    result = invoke("import", "authorizations", str(path), "--db", store_url)
    assert result.exit_code == 2
    assert (
        "authorizations.csv:23: attempted_at: 'yesterday' is not an ISO 8601 time" in result.stderr
    )
    assert (
        "authorizations.csv:24: state: 'Maybe' is not one of Authorized, Exchanged" in result.stderr
    )
    score = invoke("score", "--db", store_url, "--as-of", AS_OF, "--format", "json")
    good = json.loads(score.stdout)["payers"][0]
    assert good["metrics"][4]["metric"] == "auth_success"
    assert good["metrics"][4]["outcome"] == "not_enough_data"  # nothing was imported


def test_import_unknown_endpoints(store: Store, store_url: str, tmp_path: Path) -> None:
    populate(store)
    path = _auth_csv(tmp_path, "https://unknown.example/fhir,2025-05-01T10:00:00Z,Failed,,u1\n")
    refused = invoke("import", "authorizations", str(path), "--db", store_url)
    assert refused.exit_code == 2
    assert (
        "endpoint https://unknown.example/fhir is not in the database (1 row(s), line(s) 23)"
        in refused.stderr
    )
    skipped = invoke(
        "import", "authorizations", str(path), "--db", store_url, "--skip-unknown-endpoints"
    )
    assert skipped.exit_code == 0
    assert "21 new" in skipped.stdout
    assert "skipped 1 row(s) of endpoints not in the database" in skipped.stderr
    assert "https://unknown.example/fhir: 1 row(s), line(s) 23" in skipped.stderr


def test_import_missing_file(tmp_path: Path) -> None:
    result = invoke(
        "import",
        "authorizations",
        str(tmp_path / "nope.csv"),
        "--db",
        f"sqlite:///{tmp_path / 'x.db'}",
    )
    assert result.exit_code == 2
    assert "nope.csv: cannot read: No such file or directory" in result.stderr


# -- score ------------------------------------------------------------------------------------


def test_score_table(scored: str) -> None:
    result = invoke("score", "--db", scored, "--as-of", AS_OF)
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "as of 2025-05-20 23:59 UTC" in out and "window 2024-11-20 .. 2025-05-20" in out
    lines = out.splitlines()
    good = next(line for line in lines if "Good Health" in line)
    bare = next(line for line in lines if "Bare Plan" in line)
    assert "│    1 │ Good Health" in good and "│    2 │ Bare Plan" in bare
    # Good Health: 82 points; every metric is explained in test_score_json below.
    assert "82/100" in good
    assert "Vendors (median over Live production payers, out of 70)" in out
    assert "Cloudy FHIR" in out
    assert "Excluded:" in out and "Tiny Plan: covers 12 lives, fewer than 500" in out
    assert "vendor metrics add up to 63" in out  # the 63-vs-70 note
    # Bare Plan was never observed and configures nothing: every metric but status has not
    # enough data; it keeps Implementing 5 (Applied) and eligibility "Unknown" 2, never a silent 0.
    assert "7/100" in bare and bare.rstrip("│ ").endswith("16")
    assert "Not enough data in the window" in out
    assert "  Bare Plan: sandbox (0), capability_statement (0), smart_configuration (0)," in out
    assert "eligibility_errors (2)" in out.split("  Bare Plan:")[1]
    assert "  Good Health:" not in out  # every metric of Good Health had data


def test_score_payer_expands_per_metric_rows_with_evidence(scored: str) -> None:
    result = invoke("score", "--db", scored, "--as-of", AS_OF, "--payer", "good health")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "#1 Good Health: 82/100" in out
    rows = table_rows(out.split("#1 Good Health")[1])
    assert (
        "8/10" in rows["request_success"]
        and "19 of 20 got a 200 (95.00%)" in rows["request_success"]
    )
    assert "1 run (1)" in rows["request_success"] and "1 failed request" in rows["request_success"]
    assert "2 check results" in rows["capability_statement"]
    assert "1 sync job (1)" in rows["sync_speed"]
    assert (
        "0/2" not in rows["developer_portal"]
        and "configured portal_url" in rows["developer_portal"]
    )
    assert "authorization log (authorizations.csv)" in rows["auth_success"]
    assert "Bare Plan" not in out.split("Vendors")[1].split("#1 Good Health")[1]


def test_score_details_expands_every_payer(scored: str) -> None:
    result = invoke("score", "--db", scored, "--as-of", AS_OF, "--details")
    assert result.exit_code == 0
    assert "#1 Good Health: 82/100" in result.stdout
    assert "#2 Bare Plan:" in result.stdout
    bare = table_rows(result.stdout.split("#2 Bare Plan:")[1])
    assert "0/5 | not enough data (No references)" in bare["reference_resolution"]
    assert "2/4 | not enough data (Unknown)" in bare["eligibility_errors"]


def test_score_json(scored: str) -> None:
    result = invoke("score", "--db", scored, "--as-of", AS_OF, "--format", "json")
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    assert data["as_of"] == "2025-05-20T23:59:59.999999+00:00"
    assert data["window"]["start"].startswith("2024-11-20")
    assert data["vendor_total_stated"] == 70 and data["vendor_total_computed"] == 63
    assert "63" in data["vendor_total_discrepancy"]
    assert data["database"].startswith(("sqlite://", "postgresql+psycopg://"))
    assert [p["payer"] for p in data["payers"]] == ["Good Health", "Bare Plan"]
    assert [e["payer"] for e in data["excluded"]] == ["Tiny Plan"]
    good = data["payers"][0]
    points = {m["metric"]: m["points"] for m in good["metrics"]}
    assert points == {
        "status": 10,  # Live
        "sandbox": 6,  # the sandbox endpoint served a CapabilityStatement
        "capability_statement": 2,
        "smart_configuration": 2,
        "auth_success": 12,  # 18 of 20 (bounced excluded) = 90%: the 90-95% band
        "refresh_token": 2,  # issued, lifetime unknown
        "inactive_member_access": 6,  # 60 months: "5+ years"
        "portal_opt_in": 6,  # not required
        "eligibility_errors": 4,  # a callback carried query_ineligible
        "lines_of_business": 2,  # medicaid only, all CMS-mandated and supported
        "request_success": 8,  # 19 of 20 = 95%: 95-99%
        "reference_resolution": 5,  # 1 of 1
        "carin_bb": 6,  # EOB, Coverage and Patient returned by the sync
        "clinical": 1,  # Condition
        "sync_speed": 5,  # 0.4 s
        "everything": 3,  # paged
        "developer_portal": 2,  # portal URL configured
    }
    assert good["total"] == sum(points.values()) == 82
    assert good["not_enough_data"] == []
    requests = next(m for m in good["metrics"] if m["metric"] == "request_success")
    assert requests["input"] == {"successes": 19, "attempts": 20, "percent": 95.0}
    assert (
        requests["evidence_summary"]["run"] == ["1"]
        and len(requests["evidence_summary"]["request"]) == 1
    )
    bare = data["payers"][1]
    assert "request_success" in bare["not_enough_data"]
    eligibility = next(m for m in bare["metrics"] if m["metric"] == "eligibility_errors")
    assert (eligibility["points"], eligibility["not_enough_data"]) == (2, True)  # "Unknown" is 2
    vendor = data["vendors"][0]
    # Cloudy FHIR: only Good Health is Live production; its vendor-metric subtotal is the score.
    assert (vendor["vendor"], vendor["score"], vendor["max_points"]) == ("Cloudy FHIR", 51.0, 70)
    assert vendor["skipped_payers"] == ["Bare Plan"]
    one = json.loads(
        invoke(
            "score", "--db", scored, "--as-of", AS_OF, "--format", "json", "--payer", "Bare Plan"
        ).stdout
    )
    assert [p["payer"] for p in one["payers"]] == ["Bare Plan"] and one["vendors"]


def test_score_csv_one_row_per_payer_per_metric(scored: str) -> None:
    result = invoke("score", "--db", scored, "--as-of", AS_OF, "--format", "csv")
    assert result.exit_code == 0
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert tuple(rows[0]) == CSV_COLUMNS
    assert len(rows) == 2 * 17
    assert {r["payer"] for r in rows} == {"Good Health", "Bare Plan"}
    sync = next(r for r in rows if r["payer"] == "Bare Plan" and r["metric"] == "sync_speed")
    assert (sync["points"], sync["outcome"], sync["not_enough_data"]) == (
        "0",
        "not_enough_data",
        "true",
    )
    auth = next(r for r in rows if r["payer"] == "Good Health" and r["metric"] == "auth_success")
    assert json.loads(auth["input"])["percent"] == 90.0
    only = invoke(
        "score", "--db", scored, "--as-of", AS_OF, "--format", "csv", "--payer", "Good Health"
    )
    assert len(only.stdout.strip().splitlines()) == 1 + 17


def test_window_and_as_of_select_observations(scored: str) -> None:
    before = invoke("score", "--db", scored, "--as-of", "2025-05-01", "--format", "json")
    good = json.loads(before.stdout)["payers"][0]
    # On May 1 the crawl (May 10) had not happened: observed metrics have not enough data.
    assert "request_success" in good["not_enough_data"] and "sync_speed" in good["not_enough_data"]
    later = invoke(
        "score", "--db", scored, "--as-of", "2025-07-01", "--window", "1", "--format", "json"
    )
    good = json.loads(later.stdout)["payers"][0]
    assert later.exit_code == 0 and "request_success" in good["not_enough_data"]
    assert json.loads(later.stdout)["window"]["start"].startswith("2025-06-01")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--format", "xml"], "--format must be one of table, json, csv, not 'xml'"),
        (["--window", "0"], "--window must be between 1 and 120 months, not 0"),
        (
            ["--as-of", "last tuesday"],
            "--as-of 'last tuesday' is not a date (YYYY-MM-DD) or an ISO 8601 time",
        ),
        (["--rubric", "/nonexistent/rubric.yaml"], "/nonexistent/rubric.yaml: cannot read"),
    ],
)
def test_bad_options_exit_2(args: list[str], message: str, tmp_path: Path) -> None:
    result = invoke("score", "--db", f"sqlite:///{tmp_path / 'none.db'}", *args)
    assert result.exit_code == 2
    assert message in result.stderr


def test_broken_rubric_names_the_line(tmp_path: Path) -> None:
    rubric = tmp_path / "rubric.yaml"
    rubric.write_text("id: x\nversion: '1'\npayer_total: 100\n", encoding="utf-8")
    result = invoke("score", "--rubric", str(rubric), "--db", f"sqlite:///{tmp_path / 'none.db'}")
    assert result.exit_code == 2
    assert "rubric.yaml:" in result.stderr


def test_missing_and_empty_databases_exit_2(store: Store, store_url: str, tmp_path: Path) -> None:
    missing = invoke("score", "--db", f"sqlite:///{tmp_path / 'absent.db'}")
    assert missing.exit_code == 2
    assert f"no database at {tmp_path / 'absent.db'}" in missing.stderr
    empty = invoke("score", "--db", store_url)  # migrated, no payers
    assert empty.exit_code == 2
    assert "no payers in" in empty.stderr and "probe run endpoints.yaml" in empty.stderr
    report = invoke("report", "--html", str(tmp_path / "r.html"), "--db", store_url)
    assert report.exit_code == 2 and "no payers in" in report.stderr


def test_unknown_and_excluded_payers_exit_2(scored: str) -> None:
    unknown = invoke("score", "--db", scored, "--payer", "Good Helth")
    assert unknown.exit_code == 2
    assert (
        "no payer named 'Good Helth' in the database; did you mean 'Good Health'?" in unknown.stderr
    )
    excluded = invoke("score", "--db", scored, "--payer", "tiny plan")
    assert excluded.exit_code == 2
    assert "Tiny Plan is not scored: covers 12 lives, fewer than 500" in excluded.stderr


def test_parse_as_of() -> None:
    assert parse_as_of("2025-05-20") == datetime(2025, 5, 20, 23, 59, 59, 999999, tzinfo=UTC)
    assert parse_as_of("2025-05-20T10:00:00") == datetime(2025, 5, 20, 10, tzinfo=UTC)
    assert parse_as_of("2025-05-20T10:00:00+02:00") == datetime(2025, 5, 20, 8, tzinfo=UTC)
    now = datetime(2030, 1, 1, tzinfo=UTC)
    assert parse_as_of(None, now) == now
    with pytest.raises(ValueError, match="not a date"):
        parse_as_of("2025-02-30")


# -- report -----------------------------------------------------------------------------------


def test_report_writes_one_self_contained_file(scored: str, tmp_path: Path) -> None:
    target = tmp_path / "out" / "report.html"
    result = invoke("report", "--html", str(target), "--db", scored, "--as-of", AS_OF)
    assert result.exit_code == 0, result.output
    assert f"wrote {target}" in result.stderr and "2 payer(s), 1 vendor(s)" in result.stderr
    page = target.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>")
    assert "Good Health" in page and "82/100" in page and "<svg" in page
    # Points in time: the first authorization (May 1), the run's end (May 10) and as_of.
    assert "<desc>3 point(s) in time, " in page
    data = page.split('id="report-data">', 1)[1].split("</script>", 1)[0]
    assert json.loads(data)["payers"][0]["total"] == 82


def test_report_options(tmp_path: Path) -> None:
    missing = invoke("report")
    assert missing.exit_code == 2 and "--html" in missing.output
    result = invoke("report", "--html", str(tmp_path), "--db", f"sqlite:///{tmp_path / 'x.db'}")
    assert result.exit_code == 2
