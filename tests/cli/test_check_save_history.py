"""`probe check --save` stores a run; `probe history` lists it (SQLite and PostgreSQL)."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from probe.cli.app import app
from tests.discovery_docs import capability_statement, smart_configuration
from tests.servers import Route, serve


def routes(fhir_version: str = "4.0.1") -> dict[str, Route]:
    cap = capability_statement()
    cap["fhirVersion"] = fhir_version
    return {
        "/r4/metadata": Route(
            200, json.dumps(cap).encode(), {"Content-Type": "application/fhir+json"}
        ),
        "/r4/.well-known/smart-configuration": Route(
            200, json.dumps(smart_configuration()).encode(), {"Content-Type": "application/json"}
        ),
    }


def test_check_save_then_history(store_url: str) -> None:
    runner = CliRunner()
    with serve(routes()) as (root, _):
        first = runner.invoke(
            app, ["check", f"{root}/r4", "--save", "--db", store_url, "--format", "json"]
        )
        assert first.exit_code == 0, first.output
        assert "saved as run 1" in first.stderr
    # The same endpoint again, with a changed CapabilityStatement.
    with serve(routes("4.0.0")) as (root2, _):
        second = runner.invoke(app, ["check", f"{root2}/r4", "--save", "--db", store_url])
        assert second.exit_code == 0
    history = runner.invoke(app, ["history", f"{root}/r4", "--db", store_url, "--json"])
    assert history.exit_code == 0, history.output
    data = json.loads(history.stdout)
    assert [r["kind"] for r in data["runs"]] == ["check"]
    assert data["runs"][0]["checks"]["pass"] == 24
    assert len(data["documents"]["capability"]) == 1


def test_history_errors_are_clear(store_url: str) -> None:
    runner = CliRunner()
    empty = runner.invoke(app, ["history", "https://never.example/fhir", "--db", store_url])
    assert empty.exit_code == 2
    # No SQLite file: a read command creates none; an empty PostgreSQL schema: upgrade it.
    assert ("no database at" in empty.stderr) is store_url.startswith("sqlite")
    assert "probe db upgrade" in empty.stderr or "probe demo first" in empty.stderr
    assert runner.invoke(app, ["db", "upgrade", "--db", store_url]).exit_code == 0
    unknown = runner.invoke(app, ["history", "https://never.example/fhir", "--db", store_url])
    assert unknown.exit_code == 2
    assert "no stored observations" in unknown.stderr
    assert "Traceback" not in unknown.output
