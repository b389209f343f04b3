"""`probe prerelease` as a payer's CI runs it: a staging and a production fleet payer on loopback.

The fleet serves real sockets; probe runs as a subprocess, so exit codes and the JUnit XML are
exactly what CI sees. The production baseline is either probed live (``--baseline``) or a
nightly run stored by ``probe run`` (``--baseline-run``).
"""

from __future__ import annotations

import json
import os
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import anyio
import pytest
import yaml
from typer.testing import CliRunner

from probe.cli.app import app
from probe.directory.schema import dump_directory
from probe.fleet.app import Fleet
from probe.fleet.config import parse_fleet_config
from probe.fleet.serve import running_fleet
from tests.prerelease.conftest import PAYERS

pytestmark = pytest.mark.slow


def parse(path: Path) -> ET.Element:
    """Our own JUnit output (trusted)."""
    return ET.fromstring(path.read_text())  # noqa: S314


def junit_failures(root: ET.Element) -> dict[str, str]:
    return {
        case.get("name", ""): failure.get("type", "")
        for case in root.iter("testcase")
        if (failure := case.find("failure")) is not None
    }


def credential_args(fleet: Fleet, slug: str) -> tuple[list[str], dict[str, str]]:
    c = fleet.credentials(slug)
    args = [
        "--patient",
        fleet.patients(slug)[0],
        "--label",
        "member 1",
        "--refresh-token-env",
        "FLEET_RT",
        "--client-id",
        c.client_id,
        "--client-secret-env",
        "FLEET_CS",
        "--no-validate",
    ]
    return args, {"FLEET_RT": c.refresh_token, "FLEET_CS": c.client_secret}


async def probe_cli(args: list[str], env: dict[str, str], cwd: Path) -> tuple[int, str, str]:
    result = await anyio.run_process(
        [sys.executable, "-m", "probe.cli", *args],
        check=False,
        env={**os.environ, **env, "COLUMNS": "200"},
        cwd=cwd,
    )
    return result.returncode, result.stdout.decode(), result.stderr.decode()


def test_probe_prerelease_against_live_production(tmp_path: Path) -> None:
    config = parse_fleet_config({"seed": 5, "hosts": 2, "payers": PAYERS[:3]})
    outcomes: dict[str, Any] = {}

    async def go() -> None:
        async with running_fleet(config) as fleet:
            prod = fleet.base_url("prod")
            for slug in ("staging", "staging-bad"):
                creds, env = credential_args(fleet, slug)
                out = tmp_path / slug
                out.mkdir()
                gated = [
                    "prerelease",
                    fleet.base_url(slug),
                    "--baseline",
                    prod,
                    *creds,
                    "--junit",
                    str(out / "junit.xml"),
                    "--markdown",
                    str(out / "report.md"),
                    "--html",
                    str(out / "report.html"),
                    "--fail-on",
                    "breaking",
                    "--fail-under",
                    "60",
                ]
                outcomes[slug] = await probe_cli(gated, env, tmp_path)
                report_only = ["prerelease", fleet.base_url(slug), "--baseline", prod, *creds]
                outcomes[f"{slug} report only"] = await probe_cli(report_only, env, tmp_path)
            creds, env = credential_args(fleet, "staging")
            strict = ["prerelease", fleet.base_url("staging"), "--baseline", prod, *creds]
            strict += ["--fail-under", "99", "--junit", str(tmp_path / "strict.xml")]
            outcomes["strict"] = await probe_cli(strict, env, tmp_path)

    anyio.run(go)

    code, stdout, stderr = outcomes["staging"]
    assert code == 0, stdout + stderr
    assert "prerelease PASSED" in stdout
    root = parse(tmp_path / "staging" / "junit.xml")
    assert root.tag == "testsuites" and root.get("failures") == "0"
    suites = {s.get("name"): s for s in root.findall("testsuite")}
    assert list(suites) == [
        "prerelease.checks",
        "prerelease.sync",
        "prerelease.changes",
        "prerelease.score",
    ]
    checks = [c.get("name", "") for c in suites["prerelease.checks"].iter("testcase")]
    assert any(n.startswith("metadata.reachable: ") for n in checks)
    assert any(n.startswith("smart.jwks: ") for n in checks)
    sync_cases = list(suites["prerelease.sync"].iter("testcase"))
    assert [c.get("name") for c in sync_cases] == ["sync member 1"]
    changes = [c.get("name", "") for c in suites["prerelease.changes"].iter("testcase")]
    assert changes[0] == "baseline comparison"
    # Staging and production differ only in text (names); no URL differs relative to its base.
    assert changes[1:] and all(
        n.startswith(("capability.field.changed:", "capability.implementation.changed:"))
        for n in changes[1:]
    )
    assert int(root.get("tests", "0")) == sum(int(s.get("tests", "0")) for s in suites.values())
    markdown = (tmp_path / "staging" / "report.md").read_text()
    assert markdown.startswith("# probe prerelease: PASSED")
    assert "(documents and discovery only: no sync)" in markdown
    assert (tmp_path / "staging" / "report.html").read_text().startswith("<!doctype html>")

    code, stdout, stderr = outcomes["staging-bad"]
    assert code == 1, stdout + stderr
    assert "prerelease FAILED" in stdout and "gate: 1 breaking change(s)" in stdout
    bad = parse(tmp_path / "staging-bad" / "junit.xml")
    assert junit_failures(bad) == {"capability.operation.removed:Patient.everything": "breaking"}
    assert bad.get("failures") == "1"
    assert "**gate failed:**" in (tmp_path / "staging-bad" / "report.md").read_text()

    # Without --fail-on or --fail-under the prerelease reports and exits 0.
    assert outcomes["staging report only"][0] == 0
    assert outcomes["staging-bad report only"][0] == 0

    code, stdout, _ = outcomes["strict"]
    assert code == 1 and "below --fail-under 99" in stdout
    assert junit_failures(parse(tmp_path / "strict.xml")) == {"prerelease score": "score"}


def test_probe_prerelease_against_a_stored_nightly_run(tmp_path: Path) -> None:
    config = parse_fleet_config({"seed": 5, "hosts": 2, "payers": PAYERS[:3]})
    database = f"sqlite:///{tmp_path / 'probe.db'}"
    outcomes: dict[str, Any] = {}

    async def go() -> None:
        async with running_fleet(config) as fleet:
            secrets = tmp_path / "fleet.secrets.yaml"
            secrets.write_text(yaml.safe_dump(fleet.secrets()))
            directory = tmp_path / "endpoints.yaml"
            directory.write_text(dump_directory(fleet.directory(secrets.name)))
            nightly = ["run", str(directory), "--db", database, "--only", "Acme Health"]
            outcomes["nightly"] = await probe_cli([*nightly, "--no-portal"], {}, tmp_path)
            prod = fleet.base_url("prod")
            creds, env = credential_args(fleet, "staging-bad")
            args = ["prerelease", fleet.base_url("staging-bad"), "--baseline-run", "1", *creds]
            args += ["--baseline-endpoint", prod, "--db", database, "--fail-on", "breaking"]
            args += ["--junit", str(tmp_path / "junit.xml"), "--save", "--format", "json"]
            outcomes["bad"] = await probe_cli(args, env, tmp_path)
            again = ["prerelease", fleet.base_url("staging-bad"), "--baseline-run", "2", *creds]
            again += ["--db", database, "--fail-on", "breaking"]
            outcomes["again"] = await probe_cli(again, env, tmp_path)

    anyio.run(go)
    code, stdout, stderr = outcomes["nightly"]
    assert code == 0, stdout + stderr
    assert "drift for run 1: 0 endpoint(s) compared" in stdout

    code, stdout, stderr = outcomes["bad"]
    assert code == 1, stdout + stderr
    result = json.loads(stdout)
    assert result["baseline"]["run_id"] == 1 and result["baseline"]["behaviour_compared"]
    assert result["saved_run_id"] == 2
    assert not result["gate"]["passed"]
    failed = junit_failures(parse(tmp_path / "junit.xml"))
    # Against a stored run, behaviour is compared too: $everything support went down.
    assert failed == {
        "capability.operation.removed:Patient.everything": "breaking",
        "behaviour.everything.down": "breaking",
    }

    # The saved candidate is the baseline of the next release: nothing changed, the gate passes.
    code, stdout, stderr = outcomes["again"]
    assert code == 0, stdout + stderr
    assert "changes: 0 breaking, 0 notable, 0 cosmetic" in stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["notaurl"], "is not an absolute http(s) URL"),
        (
            [
                "https://s.example/fhir",
                "--baseline",
                "https://p.example/fhir",
                "--baseline-run",
                "1",
            ],
            "not both",
        ),
        (["https://s.example/fhir", "--baseline", "ftp://p.example"], "--baseline"),
        (["https://s.example/fhir", "--fail-on", "everything"], "--fail-on takes breaking"),
        (["https://s.example/fhir", "--fail-under", "101"], "less than or equal to 100"),
        (
            ["https://s.example/fhir", "--baseline-endpoint", "https://p.example/fhir"],
            "needs --baseline-run",
        ),
        (["https://s.example/fhir", "--junit", "/nonexistent-dir/x/junit.xml"], "does not exist"),
        (
            ["https://s.example/fhir", "--token-env", "A", "--refresh-token-env", "B"],
            "choose one credential kind",
        ),
        (["https://s.example/fhir", "--format", "yaml"], "--format must be table, json or sarif"),
        (["https://s.example/fhir", "--patient", " "], "--patient needs a test patient's FHIR id"),
    ],
)
def test_bad_usage_exits_2_without_traceback(args: list[str], message: str) -> None:
    result = CliRunner().invoke(app, ["prerelease", *args])
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output


def test_unknown_baseline_run_exits_2(tmp_path: Path) -> None:
    from probe.store.engine import open_store

    database = f"sqlite:///{tmp_path / 'empty.db'}"
    args = ["prerelease", "https://s.example/fhir", "--baseline-run", "7", "--db", database]
    missing = CliRunner().invoke(app, args)
    assert missing.exit_code == 2 and "no database at" in missing.output
    assert not (tmp_path / "empty.db").exists()  # a read never creates the database
    with open_store(database):
        pass
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2
    assert "--baseline-run 7: no such run" in result.output
