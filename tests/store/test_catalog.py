"""Mirroring the directory into payers/endpoints, and ad-hoc endpoints for `probe check --save`."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select

from probe.directory.lean import LeanDirectory
from probe.directory.schema import parse_directory
from probe.store.catalog import ensure_endpoint, find_endpoint
from probe.store.handle import Store
from probe.store.tables import EndpointRow, PayerRow

YAML = """
version: 1
payers:
  - name: Acme Health
    lives: 1200000
    vendor: Smile
    organization_status: Live
    lines_of_business: {offered: [commercial, medicaid], supported: [commercial]}
    source: https://acme.example/developers
    endpoints:
      - base_url: https://fhir.acme.example/r4/
        sandbox_url: https://sandbox.acme.example/r4
        portal_url: https://acme.example/portal
        facts: {inactive_member_access_months: 60}
  - name: Beta Plan
    endpoints:
      - base_url: https://api.beta.example/fhir
"""


def _counts(store: Store) -> tuple[int, int]:
    with store.session() as session:
        payers = session.scalar(select(func.count()).select_from(PayerRow))
        endpoints = session.scalar(select(func.count()).select_from(EndpointRow))
    return int(payers or 0), int(endpoints or 0)


def test_upsert_directory_is_idempotent(store: Store) -> None:
    directory = parse_directory(YAML, Path("endpoints.yaml"))
    ids = store.upsert_directory(directory)
    assert set(ids) == {
        "production:https://fhir.acme.example/r4",
        "sandbox:https://sandbox.acme.example/r4",
        "production:https://api.beta.example/fhir",
    }
    assert _counts(store) == (2, 3)
    assert store.upsert_directory(directory) == ids
    assert _counts(store) == (2, 3)
    with store.session() as session:
        acme = session.scalars(select(PayerRow).where(PayerRow.name == "Acme Health")).one()
        assert (acme.lives, acme.vendor, acme.organization_status) == (1200000, "Smile", "Live")
        assert acme.lines_of_business == {
            "offered": ["commercial", "medicaid"],
            "supported": ["commercial"],
        }
        prod = session.get(EndpointRow, ids["production:https://fhir.acme.example/r4"])
        assert prod is not None and prod.payer_id == acme.id
        assert prod.portal_url == "https://acme.example/portal"
        assert prod.facts == {"inactive_member_access_months": 60.0}


def test_upsert_directory_updates_changed_facts(store: Store) -> None:
    ids = store.upsert_directory(parse_directory(YAML, Path("e.yaml")))
    changed = YAML.replace("lives: 1200000", "lives: 1300000").replace(
        "name: Beta Plan", "name: Beta Plan Renamed"
    )
    ids2 = store.upsert_directory(parse_directory(changed, Path("e.yaml")))
    assert ids2 == ids  # endpoints keep their ids; Beta's endpoint moved to the renamed payer
    with store.session() as session:
        lives = session.scalar(select(PayerRow.lives).where(PayerRow.name == "Acme Health"))
        beta = session.get(EndpointRow, ids["production:https://api.beta.example/fhir"])
        assert lives == 1300000
        assert beta is not None and beta.payer.name == "Beta Plan Renamed"
    assert _counts(store) == (3, 3)  # the old payer row stays for history


def test_ensure_endpoint_creates_a_payer_named_after_the_host(store: Store) -> None:
    first = store.ensure_endpoint("https://fhir.newplan.example/r4/")
    assert store.ensure_endpoint("https://fhir.newplan.example/r4") == first
    sandbox = store.ensure_endpoint("https://fhir.newplan.example/r4", "sandbox")
    assert sandbox != first
    named = store.ensure_endpoint("https://other.example/fhir", payer_name="Other Plan")
    with store.session() as session:
        endpoint = session.get(EndpointRow, first)
        assert endpoint is not None
        assert endpoint.base_url == "https://fhir.newplan.example/r4"
        assert endpoint.payer.name == "fhir.newplan.example"
        other = session.get(EndpointRow, named)
        assert other is not None and other.payer.name == "Other Plan"
        assert ensure_endpoint(session, "https://fhir.newplan.example/r4") == first
        found = find_endpoint(session, "https://fhir.newplan.example/r4/")
        assert found is not None and found.environment == "production"


def test_ensure_endpoint_attaches_to_a_known_directory_payer(store: Store) -> None:
    store.upsert_directory(parse_directory(YAML, Path("e.yaml")))
    new = store.ensure_endpoint("https://fhir2.acme.example/r4", payer_name="Acme Health")
    with store.session() as session:
        endpoint = session.get(EndpointRow, new)
        assert endpoint is not None and endpoint.payer.vendor == "Smile"
    assert _counts(store) == (2, 4)


def test_indefinite_inactive_access_survives_every_backend(store: Store) -> None:
    """`.inf` ("indefinitely") is stored as "inf" (PostgreSQL JSONB refuses Infinity)."""
    from probe.directory.schema import EndpointFacts
    from probe.score.collect import _facts
    from probe.store.tables import EndpointRow

    directory = parse_directory(
        "payers:\n  - name: Forever Plan\n    endpoints:\n      - base_url: https://f.example/fhir\n"
        "        facts: {inactive_member_access_months: .inf}\n",
        Path("d.yaml"),
    )
    store.upsert_directory(directory)
    with store.session() as session:
        rows = list(session.scalars(select(EndpointRow)))
        assert rows[0].facts == {"inactive_member_access_months": "inf"}
        assert _facts(rows) == EndpointFacts(inactive_member_access_months=float("inf"))


def test_endpoint_ids_are_read_without_writing_and_none_when_one_is_missing(store: Store) -> None:
    directory = parse_directory(YAML, Path("e.yaml"))
    assert store.endpoint_ids(directory) is None  # nothing stored yet
    ids = store.upsert_directory(directory)
    assert store.endpoint_ids(directory) == ids
    more = YAML.replace(
        "payers:\n",
        "payers:\n  - name: Newcomer\n    endpoints:\n      - base_url: https://new.example/r4\n",
        1,
    )
    assert store.endpoint_ids(parse_directory(more, Path("e.yaml"))) is None
    # The lean form (a joining worker's) reads the same ids from its targets alone.
    assert store.endpoint_ids(LeanDirectory.from_directory(directory)) == ids
    assert (
        store.endpoint_ids(LeanDirectory.from_directory(parse_directory(more, Path("m")))) is None
    )


def test_endpoint_ids_across_chunks_and_environments(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    import probe.store.catalog as catalog

    monkeypatch.setattr(catalog, "UPSERT_CHUNK", 3)  # several chunks, each with both kinds
    payers = "".join(
        f"  - name: P{i}\n    endpoints:\n      - base_url: https://h{i % 2}.example/p{i}/r4\n"
        f"        sandbox_url: https://sandbox.example/p{i}/r4\n"
        for i in range(8)
    )
    directory = parse_directory("payers:\n" + payers, Path("e.yaml"))
    ids = store.upsert_directory(directory)
    assert len(ids) == 16 and len(set(ids.values())) == 16
    assert store.endpoint_ids(directory) == ids
    assert store.endpoint_ids(LeanDirectory.from_directory(directory)) == ids
