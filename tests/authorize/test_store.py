"""Observed attempts in the store: origin, outcome, evidence, and the log state they count as."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import insert, select

from probe.authorize.outcome import Outcome
from probe.store.handle import Store
from probe.store.observed_authorizations import OUTCOME_STATES, save_observed_attempt
from probe.store.tables import AUTHORIZATION_STATES, AuthorizationAttemptRow, utcnow

AT = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)


def test_observed_rows_are_marked_and_imported_rows_default(store: Store) -> None:
    evidence = {"pages": [{"host": "auth.plan.example", "title": "Sign in"}]}
    ids = [
        save_observed_attempt(store, "https://fhir.plan.example/r4", outcome, AT, evidence)
        for outcome in ("authorized", "ineligible", "denied")
    ]
    endpoint = store.ensure_endpoint("https://fhir.plan.example/r4")
    with store.session() as session:
        session.execute(
            insert(AuthorizationAttemptRow).values(
                endpoint_id=endpoint,
                attempt_key="id:log-1",
                attempted_at=AT,
                state="authorized",
                query_ineligible=False,
                imported_at=utcnow(),
            )
        )
    with store.session() as session:
        rows = {r.id: r for r in session.scalars(select(AuthorizationAttemptRow))}
    observed = [rows[i] for i in ids]
    assert [(r.origin, r.outcome, r.state, r.query_ineligible) for r in observed] == [
        ("observed", "authorized", "exchanged", False),
        ("observed", "ineligible", "failed", True),
        ("observed", "denied", "bounced", False),
    ]
    assert all(r.endpoint_id == endpoint and r.evidence == evidence for r in observed)
    assert len({r.attempt_key for r in observed}) == 3
    (imported,) = [r for r in rows.values() if r.id not in ids]
    assert (imported.origin, imported.outcome, imported.evidence) == ("imported", None, None)


def test_every_outcome_maps_to_a_log_state(store: Store) -> None:
    assert set(OUTCOME_STATES) == {str(o) for o in Outcome}
    assert set(OUTCOME_STATES.values()) <= set(AUTHORIZATION_STATES)
    with pytest.raises(ValueError):
        save_observed_attempt(store, "https://fhir.plan.example/r4", "maybe", AT, {})
