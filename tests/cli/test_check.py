"""`probe check` end to end against loopback servers: output formats and exit codes."""

from __future__ import annotations

import json
import socket

from typer.testing import CliRunner

from probe.cli.app import app
from tests.discovery_docs import capability_statement, smart_configuration
from tests.servers import Route, serve


def good_routes() -> dict[str, Route]:
    return {
        "/r4/metadata": Route(
            200,
            json.dumps(capability_statement()).encode(),
            {"Content-Type": "application/fhir+json"},
        ),
        "/r4/.well-known/smart-configuration": Route(
            200, json.dumps(smart_configuration()).encode(), {"Content-Type": "application/json"}
        ),
    }


def test_good_server_exits_0_with_table() -> None:
    with serve(good_routes()) as (root, seen):
        result = CliRunner().invoke(app, ["check", f"{root}/r4/"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "metadata.reachable" in result.output and "smart.pkce_s256" in result.output
    assert "passed: 24 pass" in result.output
    assert sorted(p for p, _ in seen) == [
        "/r4/.well-known/smart-configuration",
        "/r4/Patient?_count=1",
        "/r4/metadata",
    ]


def test_json_output_is_one_object() -> None:
    with serve(good_routes()) as (root, _):
        result = CliRunner().invoke(app, ["check", f"{root}/r4", "--format", "json"])
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    assert data["base_url"] == f"{root}/r4"
    assert data["summary"] == {"pass": 24, "fail": 0, "warn": 0, "skip": 0, "error": 0}
    assert len({c["id"] for c in data["checks"]}) == 24


def test_broken_server_exits_1() -> None:
    routes = good_routes()
    routes["/r4/metadata"] = Route(
        200, b"<html><title>Sign in</title></html>", {"Content-Type": "text/html"}
    )
    with serve(routes) as (root, _):
        result = CliRunner().invoke(app, ["check", f"{root}/r4", "--format", "json"])
    assert result.exit_code == 1
    failed = [c["id"] for c in json.loads(result.stdout)["checks"] if c["status"] == "fail"]
    assert failed == ["metadata.is_capability_statement"]


def test_unreachable_server_is_an_observation_not_a_traceback() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    result = CliRunner().invoke(
        app, ["check", f"http://127.0.0.1:{port}/fhir", "--format", "json", "--timeout", "2"]
    )
    assert result.exit_code == 1
    assert result.exception is None or isinstance(result.exception, SystemExit)
    data = json.loads(result.stdout)
    assert data["checks"][0]["message"].startswith("connection refused")


def test_usage_errors_exit_2() -> None:
    runner = CliRunner()
    assert runner.invoke(app, ["check", "not-a-url"]).exit_code == 2
    assert runner.invoke(app, ["check", "ftp://x.example/fhir"]).exit_code == 2
    bad_format = runner.invoke(app, ["check", "https://x.example/fhir", "--format", "xml"])
    assert bad_format.exit_code == 2 and "--format" in bad_format.output
    assert runner.invoke(app, ["check", "https://x.example/fhir", "--timeout", "0"]).exit_code == 2
    assert runner.invoke(app, ["check"]).exit_code == 2
