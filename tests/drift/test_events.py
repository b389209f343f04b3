"""Nightly drift over stored runs (SQLite and PostgreSQL): detection, idempotence, queries, CLI."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from probe.checks import metadata, smart
from probe.cli.app import app
from probe.drift.classify import ChangeKind
from probe.drift.events import DriftError, detect_drift, drift_by_payer, list_drift_events
from probe.drift.keys import JWKS
from probe.drift.settings import DriftThresholds
from probe.models import CheckResult, CheckSpec, Status
from probe.store.handle import Store
from probe.store.runs import register_targets
from probe.store.tables import DriftEventRow, RunKind, RunStatus, TargetStatus
from tests.drift.test_classify import cs
from tests.drift.test_classify import smart as smart_doc

BASE = "https://fhir.payer.example/r4"
JWKS_URI = "https://fhir.payer.example/oauth/jwks?api_key=s3cr3tvalue"


def check(spec: CheckSpec, status: int | None, **extra: Any) -> CheckResult:
    evidence = {"url": f"{BASE}/x", "http_status": status, **extra}
    return CheckResult(spec, Status.PASS if status == 200 else Status.FAIL, "m", evidence)


def stored_run(
    store: Store,
    endpoint_id: int,
    *,
    capability: dict[str, Any] | None,
    smart_config: dict[str, Any] | None,
    kids: tuple[str, ...] = ("k1",),
    metadata_status: int | None = 200,
    everything: str = "paged",
    findings: tuple[str, ...] = (),
    seconds: float = 1.0,
    kind: RunKind = RunKind.NIGHTLY,
) -> int:
    run_id = store.start_run(kind, {})
    register_targets(store.engine, run_id, [endpoint_id])
    created = datetime.now(UTC)
    with store.writer(run_id) as writer:
        if capability is not None:
            writer.add_document(endpoint_id, "capability", capability)
        if smart_config is not None:
            writer.add_document(endpoint_id, "smart_configuration", smart_config)
        keys = [
            {"kid": k, "kty": "EC", "alg": "ES384", "use": "sig", "thumbprint": f"t-{k}"}
            for k in kids
        ]
        writer.add_check_results(
            endpoint_id,
            [
                check(metadata.REACHABLE, metadata_status),
                check(smart.REACHABLE, 200),
                check(JWKS, 200, jwks_uri=JWKS_URI, served=True, keys=keys),
            ],
        )
        writer.add_sync_job(
            endpoint_id,
            "member 1",
            created_at=created,
            completed_at=created + timedelta(seconds=seconds),
            outcome="completed",
            resources_by_type={"Patient": 1},
            details={
                "everything": {
                    "supported": everything != "unsupported",
                    "support_level": everything,
                },
                "findings": [{"code": c, "message": c, "url": None} for c in findings],
            },
        )
        writer.mark_target(endpoint_id, TargetStatus.DONE)
    store.finish_run(run_id, RunStatus.COMPLETED)
    return run_id


@pytest.fixture
def endpoint(store: Store) -> int:
    return store.ensure_endpoint(BASE, payer_name="Acme Health")


def changed_capability() -> dict[str, Any]:
    doc = cs()
    doc["rest"][0]["resource"] = [r for r in doc["rest"][0]["resource"] if r["type"] != "Coverage"]
    doc["date"] = "2026-02-01"
    return doc


def test_first_run_has_nothing_to_compare(store: Store, endpoint: int) -> None:
    run = stored_run(store, endpoint, capability=cs(), smart_config=smart_doc())
    detection = detect_drift(store, run)
    assert (detection.compared, detection.without_previous, detection.events) == (0, 1, [])


def test_drift_between_two_stored_runs_is_classified_and_stored_once(
    store: Store, endpoint: int
) -> None:
    first = stored_run(store, endpoint, capability=cs(), smart_config=smart_doc())
    assert detect_drift(store, first).events == []
    moved_token = smart_doc() | {"token_endpoint": "https://fhir.payer.example/oauth2/token"}
    second = stored_run(
        store,
        endpoint,
        capability=changed_capability(),
        smart_config=moved_token,
        kids=("k2",),
        everything="limited",
        findings=("paging_loop",),
        seconds=6.0,
    )
    detection = detect_drift(store, second)
    assert detection.compared == 1
    found = {e.change_id: e for e in detection.events}
    expected = {
        "capability.resource.removed:Coverage": ChangeKind.BREAKING,
        "capability.field.changed:date": ChangeKind.COSMETIC,
        "smart.endpoint.changed:token_endpoint": ChangeKind.BREAKING,
        "jwks.key.removed:k1": ChangeKind.BREAKING,
        "jwks.key.added:k2": ChangeKind.NOTABLE,
        "behaviour.everything.down": ChangeKind.BREAKING,
        "behaviour.paging.broken:paging_loop": ChangeKind.BREAKING,
        "behaviour.sync.slower": ChangeKind.NOTABLE,
    }
    assert {cid: e.kind for cid, e in found.items()} == expected
    event = found["smart.endpoint.changed:token_endpoint"]
    assert (event.run_id, event.previous_run_id, event.endpoint_id) == (second, first, endpoint)
    assert (event.payer, event.base_url, event.environment) == ("Acme Health", BASE, "production")
    assert event.before == "https://fhir.payer.example/oauth/token"
    assert event.path == "/token_endpoint" and "token_endpoint changed" in event.reason
    assert len(detection.new_events) == len(expected)
    # Idempotent: detecting the same run again stores and reports nothing new.
    again = detect_drift(store, second)
    assert again.new_events == [] and len(again.events) == len(expected)
    with store.session() as s:
        assert s.scalar(select(func.count()).select_from(DriftEventRow)) == len(expected)


def test_unchanged_runs_have_no_drift(store: Store, endpoint: int) -> None:
    stored_run(store, endpoint, capability=cs(), smart_config=smart_doc())
    second = stored_run(store, endpoint, capability=cs(), smart_config=smart_doc(), seconds=1.5)
    assert detect_drift(store, second).events == []


def test_stored_values_never_carry_url_secrets(store: Store, endpoint: int) -> None:
    stored_run(store, endpoint, capability=cs(), smart_config=smart_doc() | {"jwks_uri": JWKS_URI})
    second = stored_run(store, endpoint, capability=cs(), smart_config=smart_doc())
    events = detect_drift(store, second).events
    jwks_uri = next(e for e in events if e.change_id == "smart.endpoint.changed:jwks_uri")
    assert "s3cr3tvalue" not in json.dumps(jwks_uri.to_json())
    assert "REDACTED" in jwks_uri.before


def test_runs_of_another_kind_are_not_compared(store: Store, endpoint: int) -> None:
    nightly = stored_run(store, endpoint, capability=cs(), smart_config=smart_doc())
    stored_run(
        store,
        endpoint,
        capability=changed_capability(),
        smart_config=smart_doc(),
        kind=RunKind.CHECK,
    )
    second = stored_run(store, endpoint, capability=cs(), smart_config=smart_doc())
    detection = detect_drift(store, second)
    assert detection.compared == 1 and detection.events == []
    with store.session() as s:
        assert list_drift_events(s) == []
    assert nightly < second


def test_unknown_run_is_a_drift_error(store: Store) -> None:
    with pytest.raises(DriftError, match="no run with id 999"):
        detect_drift(store, 999)


def test_queries_filter_by_time_kind_payer_and_run(store: Store, endpoint: int) -> None:
    stored_run(store, endpoint, capability=cs(), smart_config=smart_doc())
    second = stored_run(store, endpoint, capability=changed_capability(), smart_config=smart_doc())
    detect_drift(store, second, DriftThresholds())
    with store.session() as s:
        assert len(list_drift_events(s)) == 2
        assert [e.change_id for e in list_drift_events(s, min_kind=ChangeKind.BREAKING)] == [
            "capability.resource.removed:Coverage"
        ]
        assert list_drift_events(s, since=datetime.now(UTC) + timedelta(minutes=1)) == []
        assert len(list_drift_events(s, payers=["acme health"])) == 2
        assert list_drift_events(s, payers=["Nobody"]) == []
        assert list_drift_events(s, run_id=second + 1) == []
        assert len(list_drift_events(s, limit=1)) == 1
        assert list(drift_by_payer(s)) == ["Acme Health"]


def test_probe_drift_command_lists_events(store: Store, store_url: str, endpoint: int) -> None:
    stored_run(store, endpoint, capability=cs(), smart_config=smart_doc())
    second = stored_run(store, endpoint, capability=changed_capability(), smart_config=smart_doc())
    runner = CliRunner()
    detected = runner.invoke(app, ["drift", "detect", str(second), "--db", store_url])
    assert detected.exit_code == 0, detected.output
    assert "1 endpoint(s) compared" in detected.output and "2 new" in detected.output
    again = runner.invoke(app, ["drift", "detect", str(second), "--db", store_url])
    assert again.exit_code == 0 and "0 new" in again.output
    listed = runner.invoke(app, ["drift", "--db", store_url, "--format", "json", "--since", "1d"])
    assert listed.exit_code == 0, listed.output
    events = json.loads(listed.output)["events"]
    assert [e["change_id"] for e in events] == [
        "capability.resource.removed:Coverage",
        "capability.field.changed:date",
    ]
    assert events[0]["kind"] == "breaking" and events[0]["endpoint"]["base_url"] == BASE
    table = runner.invoke(app, ["drift", "--db", store_url, "--kind", "breaking"])
    assert table.exit_code == 0 and "capability.resource.removed:Coverage" in table.output
    assert "capability.field.changed:date" not in table.output
    none = runner.invoke(app, ["drift", "--db", store_url, "--since", "2999-01-01"])
    assert none.exit_code == 0 and "no drift events since 2999-01-01" in none.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["drift", "--since", "last tuesday"], "--since takes a date"),
        (["drift", "--kind", "severe"], "--kind must be breaking, notable or cosmetic"),
        (["drift", "--format", "xml"], "--format must be table or json"),
        (["drift", "detect", "999"], "no run with id 999"),
        (["drift", "detect", "1", "--notify-webhook", "ftp://x"], "absolute http(s) URL"),
    ],
)
def test_probe_drift_bad_input_exits_2_without_traceback(
    store: Store, store_url: str, args: list[str], message: str
) -> None:
    result = CliRunner().invoke(app, [*args, "--db", store_url])
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output
