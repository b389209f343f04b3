"""The JSON output contracts and SARIF, end to end.

(a) the checked-in schemas are what the shapes generate; (b) the real output of every command
(run through the CLI against a live fleet on loopback or a stored database) validates against
its schema, and the SARIF of ``check`` and ``prerelease`` against the official SARIF 2.1.0
schema; (c) broken documents fail.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from jsonschema import ValidationError

from probe.contracts.generate import main as generate_main
from probe.contracts.generate import schema_text, stale_schemas
from probe.contracts.versions import CONTRACTS, SCHEMA_VERSIONS, schema_path
from probe.fleet.app import Fleet
from tests.authorize.conftest import ensure_chromium, free_port
from tests.contracts.conftest import (
    contract_validator,
    run_cli,
    sarif_validator,
    strict_loads,
)

pytestmark = pytest.mark.slow


def credential_env(fleet: Fleet, slug: str) -> tuple[list[str], dict[str, str]]:
    """Refresh-token credentials of the fleet client at `slug`: options and environment."""
    c = fleet.credentials(slug)
    args = ["--refresh-token-env", "C_RT", "--client-id", c.client_id]
    args += ["--client-secret-env", "C_CS", "--no-validate"]
    return args, {"C_RT": c.refresh_token, "C_CS": c.client_secret}


# -- (a) the checked-in schemas -----------------------------------------------------------------


def test_checked_in_schemas_are_the_generated_ones() -> None:
    assert set(CONTRACTS) == set(SCHEMA_VERSIONS)
    assert stale_schemas() == []
    assert generate_main(["--check"]) == 0
    for name in CONTRACTS:
        schema = json.loads(schema_path(name).read_text(encoding="utf-8"))
        assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
        assert "schema_version" in schema["required"]
        assert schema_text(name) == schema_path(name).read_text(encoding="utf-8")


def test_a_stale_schema_is_detected(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    import probe.contracts.generate as generate

    copied = tmp_path / "drift.schema.json"
    copied.write_text(schema_path("drift").read_text().replace('"events"', '"event"', 1))
    monkeypatch.setattr(
        generate, "schema_path", lambda name: copied if name == "drift" else schema_path(name)
    )
    assert generate.stale_schemas() == ["drift"]
    assert generate.main(["--check"]) == 1
    assert generate.main(["--bogus"]) == 2


# -- (b) real output validates ------------------------------------------------------------------


def test_check_json_and_sarif_validate(live_fleet: Fleet) -> None:
    check = contract_validator("check")
    sarif = sarif_validator()
    levels: dict[str, set[str]] = {}
    for slug in ("good", "nosmart", "open"):
        url = live_fleet.base_url(slug)
        code, out, err = run_cli(["check", url, "--format", "json"])
        assert code in (0, 1), err
        doc = strict_loads(out)
        check.validate(doc)
        assert doc["schema_version"] == SCHEMA_VERSIONS["check"]
        assert next(iter(doc)) == "schema_version"

        code_sarif, out, err = run_cli(["check", url, "--format", "sarif"])
        assert code_sarif == code, err
        log = strict_loads(out)
        sarif.validate(log)
        run = log["runs"][0]
        assert run["tool"]["driver"]["name"] == "probe"
        assert run["tool"]["driver"]["version"]
        rules = {r["id"]: r for r in run["tool"]["driver"]["rules"]}
        reported = {c["id"] for c in doc["checks"] if c["status"] in ("fail", "warn")}
        assert {r["ruleId"] for r in run["results"]} == reported
        for r in run["results"]:
            rule = rules[r["ruleId"]]
            assert run["tool"]["driver"]["rules"][r["ruleIndex"]] is not None
            assert rule["shortDescription"]["text"]
            assert rule["properties"]["requirement"] in ("required", "recommended", "informational")
            assert (
                r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == doc["base_url"]
            )
        assert all(rule.get("helpUri", "").startswith("http") for rule in rules.values())
        levels[slug] = {r["level"] for r in run["results"]}
        if code == 1:  # a required check failed: an error-level result
            assert "error" in levels[slug]
    assert "error" in levels["open"]  # auth.anonymous_refused failed: data without a token


def test_sync_json_validates(live_fleet: Fleet) -> None:
    args, env = credential_env(live_fleet, "good")
    patient = live_fleet.patients("good")[0]
    code, out, err = run_cli(
        ["sync", live_fleet.base_url("good"), "--patient", patient, *args, "--format", "json"],
        env,
    )
    assert code == 0, err
    doc = strict_loads(out)
    contract_validator("sync").validate(doc)
    assert doc["outcome"] == "completed" and doc["resources_by_type"]
    assert env["C_RT"] not in out and env["C_CS"] not in out


def test_score_history_and_drift_json_validate(stored_db: tuple[str, str]) -> None:
    url, base = stored_db
    code, out, err = run_cli(["score", "--db", url, "--format", "json"])
    assert code == 0, err
    score = strict_loads(out)
    contract_validator("score").validate(score)
    assert score["payers"] and score["payers"][0]["metrics"]
    # Configured `.inf`: null plus a flag, never Infinity (strict_loads refuses it).
    inactive = [
        m["input"]
        for p in score["payers"]
        for m in p["metrics"]
        if m["metric"] == "inactive_member_access"
    ]
    assert inactive and all(i["months"] is None and i["indefinite"] is True for i in inactive)

    code, out, err = run_cli(
        ["history", base, "--db", url, "--format", "json", "--check", "metadata.reachable"]
    )
    assert code == 0, err
    history = strict_loads(out)
    contract_validator("history").validate(history)
    assert len(history["runs"]) == 2 and len(history["check"]) == 2

    code, out, err = run_cli(["drift", "--db", url, "--format", "json"])
    assert code == 0, err
    drift = strict_loads(out)
    contract_validator("drift").validate(drift)
    assert [e["change_id"] for e in drift["events"]] == ["capability.resource.removed:Immunization"]


def test_history_keeps_json_as_a_hidden_alias_and_refuses_other_formats(
    stored_db: tuple[str, str],
) -> None:
    url, base = stored_db
    code, out, _ = run_cli(["history", base, "--db", url, "--json"])
    assert code == 0
    contract_validator("history").validate(strict_loads(out))
    code, out, _ = run_cli(["history", base, "--db", url, "--format", "table"])
    assert code == 0 and "version(s) seen" in out  # "table", as elsewhere, is the text output
    code, out, err = run_cli(["history", base, "--db", url, "--format", "yaml"])
    assert code == 2 and "--format must be text or json" in out + err
    code, out, _ = run_cli(["history", "--help"])
    assert "--format" in out and "--json" not in out


def test_prerelease_json_and_sarif_validate(live_fleet: Fleet) -> None:
    prerelease = contract_validator("prerelease")
    sarif = sarif_validator()
    args, env = credential_env(live_fleet, "good")
    patient = live_fleet.patients("good")[0]
    full = [live_fleet.base_url("good"), "--baseline", live_fleet.base_url("nosmart")]
    full += ["--patient", patient, *args, "--fail-on", "breaking"]
    bare = [live_fleet.base_url("open")]
    for case in (full, bare):
        code, out, err = run_cli(["prerelease", *case, "--format", "json"], env)
        assert code in (0, 1), err
        doc = strict_loads(out)
        prerelease.validate(doc)
        code_sarif, out, err = run_cli(["prerelease", *case, "--format", "sarif"], env)
        assert code_sarif == code, err
        log = strict_loads(out)
        sarif.validate(log)
        assert env["C_RT"] not in out and env["C_CS"] not in out
        run = log["runs"][0]
        untested = {
            n["descriptor"]["id"] for n in run["invocations"][0]["toolExecutionNotifications"]
        }
        assert untested == {n["item"] for n in doc["not_tested"]}
        if case is full:
            # A live baseline was compared and the candidate's patient synced: neither is
            # listed as not tested.
            assert doc["syncs"] and doc["baseline"] is not None
            assert "baseline" not in untested and "sync" not in untested
        else:
            assert {"baseline", "sync"} <= untested
            assert any(r["level"] == "error" for r in run["results"])


# -- (c) broken documents fail ------------------------------------------------------------------


def _broken(doc: dict[str, Any]) -> list[dict[str, Any]]:
    missing = copy.deepcopy(doc)
    del missing["base_url"]
    unknown = copy.deepcopy(doc)
    unknown["surprise"] = 1
    version = copy.deepcopy(doc)
    version["schema_version"] = "2.0.0"
    status = copy.deepcopy(doc)
    status["checks"][0]["status"] = "passed"
    nested = copy.deepcopy(doc)
    nested["summary"]["maybe"] = 0
    infinite = copy.deepcopy(doc)
    infinite["duration_ms"] = None
    when = copy.deepcopy(doc)
    when["started_at"] = "2026-01-02 12:00"  # not RFC 3339: the format is checked
    return [missing, unknown, version, status, nested, infinite, when]


def test_broken_documents_fail(live_fleet: Fleet) -> None:
    _, out, _ = run_cli(["check", live_fleet.base_url("good"), "--format", "json"])
    doc = strict_loads(out)
    validator = contract_validator("check")
    validator.validate(doc)
    for broken in _broken(doc):
        with pytest.raises(ValidationError):
            validator.validate(broken)

    _, out, _ = run_cli(["check", live_fleet.base_url("nosmart"), "--format", "sarif"])
    log = strict_loads(out)
    sarif = sarif_validator()
    sarif.validate(log)
    bad_level = copy.deepcopy(log)
    bad_level["runs"][0]["results"][0]["level"] = "fatal"
    bad_version = copy.deepcopy(log)
    bad_version["version"] = "2.0.0"
    no_driver = copy.deepcopy(log)
    del no_driver["runs"][0]["tool"]["driver"]["name"]
    for broken in (bad_level, bad_version, no_driver):
        with pytest.raises(ValidationError):
            sarif.validate(broken)

    with pytest.raises(ValueError, match="Infinity"):
        strict_loads('{"months": Infinity}')


@pytest.fixture(scope="module")
def real_outputs(live_fleet: Fleet, stored_db: tuple[str, str]) -> dict[str, dict[str, Any]]:
    """One real output of each contract, through the CLI."""
    url, base = stored_db
    args, env = credential_env(live_fleet, "good")
    good = live_fleet.base_url("good")
    patient = live_fleet.patients("good")[0]
    commands = {
        "check": ["check", good, "--format", "json"],
        "sync": ["sync", good, "--patient", patient, *args, "--format", "json"],
        "score": ["score", "--db", url, "--format", "json"],
        "history": ["history", base, "--db", url, "--format", "json"],
        "drift": ["drift", "--db", url, "--format", "json"],
        "prerelease": ["prerelease", good, "--format", "json"],
        "authorize": [
            *("authorize", good, "--client-id", live_fleet.credentials("good").client_id),
            *("--client-secret-env", "C_CS", "--username-env", "MEMBER_USER"),
            *("--password-env", "MEMBER_PW", "--deadline", "60", "--format", "json"),
            *("--redirect-port", str(free_port())),
        ],
    }
    env = {**env, "MEMBER_USER": patient, "MEMBER_PW": "password"}
    ensure_chromium()  # probe authorize walks the member's login in headless Chromium
    out = {}
    for name, command in commands.items():
        _, text, _ = run_cli(command, env)
        out[name] = strict_loads(text)
    return out


@pytest.mark.parametrize("name", CONTRACTS)
def test_every_contract_refuses_broken_documents(
    name: str, real_outputs: dict[str, dict[str, Any]]
) -> None:
    validator = contract_validator(name)
    doc = real_outputs[name]
    validator.validate(doc)
    assert next(iter(doc)) == "schema_version" and doc["schema_version"] == SCHEMA_VERSIONS[name]
    minor = copy.deepcopy(doc)
    minor["schema_version"] = "1.7.0"  # a later minor of the same major still validates
    validator.validate(minor)
    field = next(k for k in doc if k != "schema_version")
    missing = copy.deepcopy(doc)
    del missing[field]
    unknown = copy.deepcopy(doc) | {"unexpected": True}
    major = copy.deepcopy(doc) | {"schema_version": "2.0.0"}
    not_semver = copy.deepcopy(doc) | {"schema_version": "1.0"}
    for broken in (missing, unknown, major, not_semver, [doc]):
        with pytest.raises(ValidationError):
            validator.validate(broken)
