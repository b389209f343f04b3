"""Documents are stored once per content hash with a sighting per run; no resource body is kept."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, text

from probe.store.handle import Store
from probe.store.queries import document_body, document_history
from probe.store.sanitize import canonical_json, content_hash
from probe.store.tables import DocumentRow, DocumentSightingRow, SyncJobRow
from probe.store.writer import StoreWriter

CAPABILITY = {
    "resourceType": "CapabilityStatement",
    "fhirVersion": "4.0.1",
    "rest": [{"mode": "server", "resource": [{"type": "Patient"}]}],
}
REORDERED = {
    "rest": [{"resource": [{"type": "Patient"}], "mode": "server"}],
    "fhirVersion": "4.0.1",
    "resourceType": "CapabilityStatement",
}
CHANGED = {**CAPABILITY, "fhirVersion": "4.0.2"}
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def test_canonical_hash_ignores_key_order_and_whitespace() -> None:
    assert content_hash(CAPABILITY) == content_hash(REORDERED)
    assert canonical_json({"b": 1, "a": [1, 2]}) == '{"a":[1,2],"b":1}'
    assert content_hash(CAPABILITY) != content_hash(CHANGED)
    assert len(content_hash(CAPABILITY)) == 64


def test_same_content_is_stored_once_with_many_sightings(
    store: Store, run_id: int, endpoint_id: int
) -> None:
    other_endpoint = store.ensure_endpoint("https://other.example.org/fhir")
    writer = StoreWriter(store.engine, run_id)
    digest = writer.add_document(endpoint_id, "capability", CAPABILITY, seen_at=T0)
    assert writer.add_document(other_endpoint, "capability", REORDERED, seen_at=T0) == digest
    writer.add_document(endpoint_id, "capability", CAPABILITY, seen_at=T0)  # same run: no dup
    assert writer.flush()
    run2 = store.start_run("nightly")
    writer2 = StoreWriter(store.engine, run2)
    writer2.add_document(endpoint_id, "capability", REORDERED, seen_at=T0 + timedelta(days=1))
    writer2.add_document(endpoint_id, "smart_configuration", {"issuer": "x"}, seen_at=T0)
    assert writer2.close()

    with store.session() as session:
        docs = session.execute(select(DocumentRow.kind, DocumentRow.content_hash)).all()
        sightings = session.scalars(select(DocumentSightingRow.document_id)).all()
        assert sorted(docs) == sorted(
            [("capability", digest), ("smart_configuration", content_hash({"issuer": "x"}))]
        )
        cap_id = session.scalar(select(DocumentRow.id).where(DocumentRow.kind == "capability"))
        assert sightings.count(cap_id) == 3  # endpoint run1, other endpoint run1, endpoint run2
        assert document_body(session, cap_id) == CAPABILITY


def test_document_history_shows_changes_over_time(
    store: Store, run_id: int, endpoint_id: int
) -> None:
    bodies = [CAPABILITY, REORDERED, CHANGED, CHANGED, CAPABILITY]
    run_ids = []
    for day, body in enumerate(bodies):
        run = run_id if day == 0 else store.start_run("nightly")
        run_ids.append(run)
        writer = StoreWriter(store.engine, run)
        writer.add_document(endpoint_id, "capability", body, seen_at=T0 + timedelta(days=day))
        assert writer.close()
    with store.session() as session:
        history = document_history(session, endpoint_id, "capability")
        assert document_history(session, endpoint_id, "smart_configuration") == []
    assert [v.content_hash for v in history] == [
        content_hash(CAPABILITY),
        content_hash(CHANGED),
        content_hash(CAPABILITY),
    ]
    assert [v.sightings for v in history] == [2, 2, 1]
    assert history[0].first_seen == T0 and history[0].last_seen == T0 + timedelta(days=1)
    assert history[1].run_ids == (run_ids[2], run_ids[3])
    assert history[0].document_id == history[2].document_id  # the old body is not stored again


def test_sync_job_row_holds_only_counts(store: Store, run_id: int, endpoint_id: int) -> None:
    patient = {
        "resourceType": "Patient",
        "id": "pat-1",
        "name": [{"family": "Doe", "given": ["Jane"]}],
        "birthDate": "1970-01-01",
    }
    bundle = {"resourceType": "Bundle", "id": "b1", "entry": [{"resource": patient}]}
    outcome = {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": "not-found", "diagnostics": "Jane Doe missing"}],
    }
    writer = StoreWriter(store.engine, run_id)
    writer.add_sync_job(
        endpoint_id,
        "adult-female",
        created_at=T0,
        completed_at=T0 + timedelta(seconds=42),
        outcome="complete",
        resources_by_type={"Patient": 1, "Observation": 120},
        pages=7,
        size_bytes=123_456,
        references_found=30,
        references_resolved=28,
        details={
            "first_page": bundle,
            "errors": [outcome],
            "missing_ids": ["Observation/9"],
            "raw": b"{...}",
            "next": "https://fhir.example.com/r4?_getpages=x&access_token=abc",
        },
    )
    assert writer.close()
    with store.session() as session:
        row = session.scalars(select(SyncJobRow)).one()
        raw = session.execute(text("SELECT * FROM sync_jobs")).one()
    assert row.resources_by_type == {"Patient": 1, "Observation": 120}
    assert (row.pages, row.bytes, row.references_found, row.references_resolved) == (
        7,
        123_456,
        30,
        28,
    )
    assert row.completed_at == T0 + timedelta(seconds=42)
    assert row.details is not None
    assert row.details["first_page"] == {
        "resourceType": "Bundle",
        "id": "b1",
        "omitted": "resource body not stored",
    }
    assert row.details["errors"][0]["issue"] == [{"severity": "error", "code": "not-found"}]
    assert row.details["missing_ids"] == ["Observation/9"]
    stored = json.dumps([str(v) for v in raw])
    for leaked in ("Doe", "Jane", "1970-01-01", "birthDate", "abc", "{...}"):
        assert leaked not in stored


def test_sync_job_counts_must_be_counts(store: Store, run_id: int, endpoint_id: int) -> None:
    writer = StoreWriter(store.engine, run_id)
    with pytest.raises(TypeError, match="resource bodies are never stored"):
        writer.add_sync_job(
            endpoint_id,
            "p",
            created_at=T0,
            resources_by_type={"Patient": [{"resourceType": "Patient"}]},  # type: ignore[dict-item]
        )
    assert writer.buffered == 0


def test_check_evidence_never_keeps_a_patient_resource(
    store: Store, run_id: int, endpoint_id: int
) -> None:
    from probe.models import Status

    from .conftest import result

    writer = StoreWriter(store.engine, run_id)
    writer.add_check_results(
        endpoint_id,
        [result(status=Status.FAIL, sample={"resourceType": "Patient", "id": "p", "name": "X Y"})],
    )
    assert writer.close()
    with store.session() as session:
        evidence = session.execute(text("SELECT evidence FROM check_results")).scalar_one()
    assert "X Y" not in str(evidence)
