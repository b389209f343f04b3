"""The authorization log: CSV validation, import into the store (SQLite and PostgreSQL), collect."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select

from probe.directory.schema import Directory
from probe.score.authorizations import (
    AuthorizationImportError,
    import_authorizations,
    parse_authorization_csv,
    read_authorization_csv,
)
from probe.score.collect import collect_inputs
from probe.score.engine import score
from probe.score.inputs import AuthCounts, Window
from probe.score.rubric import load_rubric
from probe.store.handle import Store
from probe.store.tables import AuthorizationAttemptRow
from tests.store import conftest as store_fixtures

# Every store test runs on SQLite and on the real PostgreSQL (see tests/store/conftest.py).
pg_admin = store_fixtures.pg_admin
store_url = store_fixtures.store_url
store = store_fixtures.store

BASE = "https://fhir.acme.example/r4"
OTHER = "https://fhir.other.example/api"
SANDBOX = "https://sandbox.acme.example/r4"
AS_OF = datetime(2025, 5, 20, 12, tzinfo=UTC)
WINDOW = Window.ending(AS_OF, 6)

GOOD = f"""endpoint,attempted_at,state,query_ineligible,id
{BASE},2025-05-01T10:00:00Z,Authorized,false,a1
{BASE},2025-05-01T11:00:00Z,Exchanged,,a2
{BASE}/,2025-05-02T09:00:00+02:00,Revoked,no,a3
{BASE},2025-05-03T09:00:00Z,Failed,true,a4
{BASE},2025-05-03T10:00:00Z,BOUNCED,,a5
{OTHER},2025-05-04T10:00:00,failed,0,
{OTHER},2025-05-04T10:00:00,failed,0,
{OTHER},2025-05-05T10:00:00Z,authorized,,
"""


def _directory() -> Directory:
    return Directory.model_validate(
        {
            "payers": [
                {
                    "name": "Acme Health",
                    "organization_status": "Live",
                    "endpoints": [{"base_url": BASE, "sandbox_url": SANDBOX}],
                },
                {
                    "name": "Other Plan",
                    "organization_status": "Live",
                    "endpoints": [{"base_url": OTHER}],
                },
            ]
        }
    )


def _problems(text: str) -> list[str]:
    with pytest.raises(AuthorizationImportError) as info:
        parse_authorization_csv(text, "log.csv")
    return info.value.problems


def test_parse_valid_log_normalises_every_column() -> None:
    text = GOOD.replace(f"{OTHER},2025-05-05T10:00:00Z,authorized,,\n", "")
    log = parse_authorization_csv(text, "log.csv")
    assert [r.state for r in log.records] == [
        "authorized",
        "exchanged",
        "revoked",
        "failed",
        "bounced",
        "failed",
        "failed",
    ]
    first, _, third, fourth, *_rest, dup1, dup2 = log.records
    assert first.line == 2 and first.endpoint == BASE and first.key == "id:a1"
    assert third.endpoint == BASE  # the trailing slash is dropped
    assert third.attempted_at == datetime(2025, 5, 2, 7, tzinfo=UTC)  # offset converted to UTC
    assert fourth.query_ineligible is True
    # A time without an offset is UTC; identical rows without an id are two attempts.
    assert dup1.attempted_at == datetime(2025, 5, 4, 10, tzinfo=UTC)
    assert dup1.key != dup2.key and dup1.key.startswith("row:")


def test_every_problem_is_reported_with_its_line() -> None:
    text = (
        "endpoint,attempted_at,state,query_ineligible,id\n"
        f"{BASE},2025-05-01T10:00:00Z,Authorized,,x\n"
        "not a url,2025-13-01,Pending,maybe,\n"
        f"{BASE},,Failed,,x\n"
        f"{BASE}?a=b,2025-05-01,Authorized,true,\n"
    )
    problems = _problems(text)
    assert problems == [
        "log.csv:3: endpoint: 'not a url' is not an absolute http(s) FHIR base URL",
        "log.csv:3: attempted_at: '2025-13-01' is not an ISO 8601 time (e.g. 2025-05-01T12:30:00Z)",
        "log.csv:3: state: 'Pending' is not one of Authorized, Exchanged, Revoked, Bounced, Failed",
        "log.csv:3: query_ineligible: 'maybe' is not true or false",
        "log.csv:4: attempted_at: is empty",
        "log.csv:4: id: 'x' appears twice for this endpoint (first on line 2)",
        f"log.csv:5: endpoint: '{BASE}?a=b': a FHIR base URL has no query or fragment",
        "log.csv:5: query_ineligible: set on a authorized attempt; an ineligible member's "
        "authorization ends Failed (or Bounced)",
    ]


def test_header_problems() -> None:
    assert _problems("") == ["log.csv:1: the file is empty; expected a header line"]
    missing = _problems("endpoint,when\nhttps://x.example/fhir,2025-01-01\n")
    assert len(missing) == 1
    assert missing[0].startswith("log.csv:1: missing required column(s) attempted_at, state")
    assert "attempted_at: attempted_at, time, timestamp, created_at" in missing[0]
    dup = _problems("endpoint,base_url,time,state\n")
    assert dup == [
        "log.csv:1: base_url: duplicate column for endpoint (already given as 'endpoint')"
    ]
    assert _problems("endpoint,time,state\n") == [
        "log.csv:2: no authorization rows after the header"
    ]


def test_aliases_and_error_column() -> None:
    text = (
        "Base URL,Timestamp,Status,Error,Authorization ID,Patient\n"
        f"{BASE},2025-05-01T10:00:00Z,failed,query_ineligible,z1,ignored\n"
        f"{BASE},2025-05-01T10:00:00Z,failed,access_denied,z2,ignored\n"
    )
    log = parse_authorization_csv(text, "log.csv")
    assert [r.query_ineligible for r in log.records] == [True, False]
    assert [r.key for r in log.records] == ["id:z1", "id:z2"]
    assert log.ignored_columns == ["Patient"]


def test_too_many_fields_and_blank_lines() -> None:
    text = f"endpoint,time,state\n\n{BASE},2025-05-01,failed,extra\n"
    assert _problems(text) == ["log.csv:3: 4 fields but the header has 3"]


def test_read_file_errors(tmp_path: Path) -> None:
    with pytest.raises(AuthorizationImportError, match="cannot read"):
        read_authorization_csv(tmp_path / "missing.csv")
    bad = tmp_path / "bad.csv"
    bad.write_bytes(b"endpoint,time,state\n\xff\xfe\n")
    with pytest.raises(AuthorizationImportError) as info:
        read_authorization_csv(bad)
    assert info.value.problems == ["bad.csv:2: not UTF-8 text (byte 20)"]
    bom = tmp_path / "bom.csv"
    bom.write_text(f"\ufeffendpoint,time,state\n{BASE},2025-05-01,failed\n", encoding="utf-8")
    assert len(read_authorization_csv(bom).records) == 1


def _count(store: Store) -> int:
    with store.session() as session:
        return int(session.scalar(select(func.count()).select_from(AuthorizationAttemptRow)) or 0)


def test_import_is_idempotent_and_updates_by_id(store: Store) -> None:
    store.upsert_directory(_directory())
    log = parse_authorization_csv(GOOD, "log.csv")
    with store.session() as session:
        first = import_authorizations(session, log)
    assert (first.rows, first.inserted, first.updated, first.unchanged) == (8, 8, 0, 0)
    assert first.endpoints == 2
    assert first.by_state == {
        "authorized": 1 + 1,
        "exchanged": 1,
        "revoked": 1,
        "failed": 3,
        "bounced": 1,
    }
    with store.session() as session:
        again = import_authorizations(session, log)
    assert (again.inserted, again.updated, again.unchanged) == (0, 0, 8)
    assert _count(store) == 8
    # A newer export: a1 was revoked since; a new attempt appears. Rows without id are the same.
    newer = GOOD.replace("Authorized,false,a1", "Revoked,false,a1") + (
        f"{BASE},2025-05-06T10:00:00Z,Failed,,a6\n"
    )
    with store.session() as session:
        third = import_authorizations(session, parse_authorization_csv(newer, "newer.csv"))
    assert (third.inserted, third.updated, third.unchanged) == (1, 1, 7)
    assert _count(store) == 9
    with store.session() as session:
        row = session.scalars(
            select(AuthorizationAttemptRow).where(AuthorizationAttemptRow.attempt_key == "id:a1")
        ).one()
        assert row.state == "revoked" and row.source == "newer.csv"


def test_unknown_endpoints_are_reported_or_skipped(store: Store) -> None:
    store.upsert_directory(_directory())
    text = GOOD + (
        "https://nowhere.example/fhir,2025-05-01T10:00:00Z,failed,,\n"
        "https://nowhere.example/fhir,2025-05-02T10:00:00Z,failed,,\n"
    )
    log = parse_authorization_csv(text, "log.csv")
    with pytest.raises(AuthorizationImportError) as info, store.session() as session:
        import_authorizations(session, log)
    assert info.value.problems[0] == (
        "log.csv:10: endpoint https://nowhere.example/fhir is not in the database "
        "(2 row(s), line(s) 10, 11)"
    )
    assert "--skip-unknown-endpoints" in info.value.problems[-1]
    assert _count(store) == 0  # nothing imported
    with store.session() as session:
        result = import_authorizations(session, log, skip_unknown=True)
    assert result.inserted == 8 and result.skipped_unknown == 2
    assert result.unknown_endpoints == {"https://nowhere.example/fhir": [10, 11]}


def test_sandbox_rows_are_stored_but_not_scored(store: Store) -> None:
    store.upsert_directory(_directory())
    text = f"endpoint,time,state\n{SANDBOX},2025-05-01T10:00:00Z,failed\n"
    with store.session() as session:
        result = import_authorizations(session, parse_authorization_csv(text, "s.csv"))
    assert result.inserted == 1 and result.sandbox_rows == 1
    with store.session() as session:
        inputs = {p.name: p for p in collect_inputs(session, WINDOW)}
    assert inputs["Acme Health"].authorizations == ()


def test_collect_reads_the_table_within_the_window(store: Store) -> None:
    store.upsert_directory(_directory())
    text = GOOD + f"{BASE},2024-10-01T10:00:00Z,failed,,old\n"  # before the window
    with store.session() as session:
        import_authorizations(session, parse_authorization_csv(text, "log.csv"))
    with store.session() as session:
        inputs = {p.name: p for p in collect_inputs(session, WINDOW)}
    acme = inputs["Acme Health"]
    # One sample per day: May 1 (2 attempts), May 2 (1), May 3 (2).
    assert [s.at for s in acme.authorizations] == [
        datetime(2025, 5, 1, 11, tzinfo=UTC),
        datetime(2025, 5, 2, 7, tzinfo=UTC),
        datetime(2025, 5, 3, 10, tzinfo=UTC),
    ]
    total = sum((s.value for s in acme.authorizations), start=AuthCounts())
    assert (total.successes, total.failed, total.bounced, total.query_ineligible_flags) == (
        3,
        1,
        1,
        1,
    )
    may3 = acme.authorizations[2]
    assert may3.evidence[0] == "authorization_log:log.csv"
    assert len([e for e in may3.evidence if e.startswith("authorization:")]) == 1

    card = score(list(inputs.values()), load_rubric(), as_of=AS_OF)
    auth = card.payer("Acme Health").metric("auth_success")
    # 3 successes of 4 non-bounced attempts: 75% is the 70-80% band, 8 points.
    assert (auth.points, auth.outcome) == (8, "70-80%")
    assert card.payer("Acme Health").metric("eligibility_errors").points == 4
    other = card.payer("Other Plan")
    # Other Plan: 1 success of 3 attempts, 33.33%: less than 50%, 0 points; no flags: Unknown 2.
    assert other.metric("auth_success").points == 0
    assert other.metric("eligibility_errors").points == 2


def test_explicit_authorizations_replace_the_table(store: Store) -> None:
    store.upsert_directory(_directory())
    with store.session() as session:
        import_authorizations(session, parse_authorization_csv(GOOD, "log.csv"))
    with store.session() as session:
        inputs = {p.name: p for p in collect_inputs(session, WINDOW, authorizations={})}
    assert inputs["Acme Health"].authorizations == ()


def test_observed_attempts_score_only_where_no_log_was_imported(store: Store) -> None:
    """`probe authorize` attempts feed the authorization metrics of payers without a log; a
    payer with an imported log is scored on its log only. The evidence names the source."""
    from probe.store.observed_authorizations import save_observed_attempt

    store.upsert_directory(_directory())
    with store.session() as session:  # Acme has a log; Other Plan has none
        import_authorizations(
            session, parse_authorization_csv(GOOD.split(f"{OTHER},")[0], "log.csv")
        )
    at = datetime(2025, 5, 10, 9, tzinfo=UTC)
    for outcome in ("authorized", "authorized", "ineligible"):
        save_observed_attempt(store, OTHER, outcome, at, {})
        save_observed_attempt(store, BASE, "login_failed", at, {})
    with store.session() as session:
        inputs = {p.name: p for p in collect_inputs(session, WINDOW)}
    acme, other = inputs["Acme Health"], inputs["Other Plan"]
    assert all("observed:probe authorize" not in s.evidence for s in acme.authorizations)
    acme_total = sum((s.value for s in acme.authorizations), start=AuthCounts())
    assert acme_total.failed == 1  # the log's one failure; the three observed ones are not used
    (sample,) = other.authorizations
    assert sample.evidence[0] == "observed:probe authorize"
    assert (sample.value.successes, sample.value.failed, sample.value.query_ineligible_flags) == (
        2,
        1,
        1,
    )
