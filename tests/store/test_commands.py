"""`probe db upgrade|current|downgrade` and `history`, through the real CLI app."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
import typer
from sqlalchemy import text
from typer.testing import CliRunner

from probe.cli.app import app
from probe.cli.history import history_command
from probe.models import Status
from probe.store.engine import create_store_engine, head_revision, open_store
from probe.store.handle import Store
from probe.store.writer import StoreWriter

from .conftest import SPEC_A, SPEC_B, result

runner = CliRunner()


def probe(*args: str, input: str | None = None) -> tuple[int, str, str]:
    outcome = runner.invoke(app, list(args), input=input)
    if outcome.exception and not isinstance(outcome.exception, SystemExit):
        raise outcome.exception
    return outcome.exit_code, outcome.stdout, outcome.stderr


def test_upgrade_current_downgrade_cycle(store_url: str) -> None:
    head = head_revision()
    code, out, _ = probe("db", "current", "--db", store_url)
    assert code == 0
    assert "no database yet" in out or "empty (no revision)" in out

    code, out, _ = probe("db", "upgrade", "--db", store_url)
    assert code == 0 and f"upgraded from (empty) to {head} (head)" in out

    code, out, _ = probe("db", "upgrade", "--db", store_url)
    assert code == 0 and f"already at revision {head} (head)" in out

    code, out, _ = probe("db", "current", "--db", store_url)
    assert code == 0 and f"revision {head} (head)" in out

    code, out, err = probe("db", "downgrade", "base", "--db", store_url, input="n\n")
    assert code == 2 and "--yes" in err  # no terminal to ask on: refused without --yes
    code, out, _ = probe("db", "current", "--db", store_url)
    assert f"revision {head} (head)" in out  # nothing happened

    code, out, _ = probe("db", "downgrade", "base", "--yes", "--db", store_url)
    assert code == 0 and f"downgraded from {head} to base" in out
    code, out, _ = probe("db", "current", "--db", store_url)
    assert code == 0 and "empty (no revision)" in out


def test_current_exit_code_is_1_unless_at_head(store_url: str) -> None:
    code, out, _ = probe("db", "current", "--exit-code", "--db", store_url)
    assert code == 1 and ("no database yet" in out or "empty (no revision)" in out)
    probe("db", "upgrade", "--db", store_url)
    code, out, _ = probe("db", "current", "--exit-code", "--db", store_url)
    assert code == 0 and "(head)" in out
    probe("db", "downgrade", "0007", "--yes", "--db", store_url)
    code, out, _ = probe("db", "current", "--exit-code", "--db", store_url)
    assert code == 1 and "behind head" in out
    code, out, _ = probe("db", "current", "--db", store_url)  # without --exit-code: informational
    assert code == 0 and "behind head" in out


def test_db_url_from_environment(store_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROBE_DATABASE_URL", store_url)
    code, out, _ = probe("db", "upgrade")
    assert code == 0 and "(head)" in out


def test_downgrade_to_an_unknown_revision(store_url: str) -> None:
    probe("db", "upgrade", "--db", store_url)
    code, _, err = probe("db", "downgrade", "abc123", "--yes", "--db", store_url)
    assert code == 2
    assert "unknown revision 'abc123'" in err and "base" in err
    assert "Traceback" not in err


def test_unknown_newer_revision_is_refused_by_every_command(store_url: str) -> None:
    probe("db", "upgrade", "--db", store_url)
    engine = create_store_engine(store_url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = 'ffff_future'"))
    engine.dispose()
    for args in (("current",), ("upgrade",), ("downgrade", "base", "--yes")):
        code, _, err = probe("db", *args, "--db", store_url)
        assert code == 2, args
        assert "'ffff_future'" in err and "does not know" in err
        assert "Traceback" not in err


def test_unreachable_database_exits_2_without_password() -> None:
    url = "postgresql://bob:hunter2@127.0.0.1:1/probe"
    for args in (("current",), ("upgrade",)):
        code, out, err = probe("db", *args, "--db", url)
        assert code == 2
        assert "cannot use the database" in err and "bob:***@127.0.0.1:1" in err
        assert "hunter2" not in out + err


def test_bad_url_exits_2() -> None:
    code, _, err = probe("db", "current", "--db", "mysql://u:pw123@h/db")
    assert code == 2 and "unsupported database" in err and "pw123" not in err


def _history_app() -> typer.Typer:
    hist = typer.Typer()
    hist.command("history")(history_command)

    @hist.callback()
    def _root() -> None:
        """Test wrapper."""

    return hist


def _seed(store: Store) -> int:
    endpoint_id = store.ensure_endpoint("https://fhir.example.com/r4")
    for day, status in enumerate((Status.FAIL, Status.PASS)):
        run_id = store.start_run("nightly")
        writer = StoreWriter(store.engine, run_id)
        when = datetime(2026, 1, 1 + day, tzinfo=UTC)
        writer.add_check_results(
            endpoint_id, [result(SPEC_A, status), result(SPEC_B)], observed_at=when
        )
        writer.add_document(endpoint_id, "capability", {"fhirVersion": f"4.0.{day}"}, seen_at=when)
        assert writer.close()
        store.finish_run(run_id, "completed")
    return endpoint_id


def test_history_command(store_url: str) -> None:
    with open_store(store_url) as store:
        _seed(store)
    hist = _history_app()
    outcome = runner.invoke(
        hist, ["history", "https://fhir.example.com/r4/", "--check", SPEC_A.id, "--db", store_url]
    )
    assert outcome.exit_code == 0, outcome.output
    assert "metadata.reachable" in outcome.stdout
    assert "capability: 2 version(s) seen" in outcome.stdout

    outcome = runner.invoke(
        hist, ["history", "https://fhir.example.com/r4", "--json", "--db", store_url]
    )
    assert outcome.exit_code == 0
    import json

    data = json.loads(outcome.stdout)
    assert [r["checks"] for r in data["runs"]] == [{"pass": 2}, {"fail": 1, "pass": 1}]
    assert len(data["documents"]["capability"]) == 2

    outcome = runner.invoke(hist, ["history", "https://unknown.example/fhir", "--db", store_url])
    assert outcome.exit_code == 2 and "no stored observations" in outcome.stderr


def test_history_on_an_empty_database_says_it_is_empty(store_url: str) -> None:
    outcome = runner.invoke(
        _history_app(), ["history", "https://x.example/fhir", "--db", store_url]
    )
    assert outcome.exit_code == 2
    if store_url.startswith("sqlite"):  # no file yet: a read command creates none
        assert "no database at" in outcome.stderr and "probe demo" in outcome.stderr
        assert not Path(store_url.removeprefix("sqlite:///")).exists()
        return
    assert "is empty (no probe schema, no observations)" in outcome.stderr
    assert "probe run endpoints.yaml" in outcome.stderr and "probe db upgrade" in outcome.stderr


def test_downgrade_without_a_database_creates_none(tmp_path: Path) -> None:
    db = tmp_path / "probe.db"
    code, _, err = probe("db", "downgrade", "base", "--yes", "--db", f"sqlite:///{db}")
    assert code == 2 and "nothing to downgrade" in err
    assert not db.exists()
