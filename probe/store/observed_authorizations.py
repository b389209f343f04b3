"""Storing an authorization attempt that `probe authorize` observed in its own browser.

The row joins the imported ones in ``authorization_attempts`` with ``origin = 'observed'``, its
fine-grained outcome, and its evidence (hosts, page titles and timings: never a code, a token, a
password or a query string; the caller passes only that).
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from probe.store.catalog import ensure_endpoint
from probe.store.handle import Store
from probe.store.tables import AuthorizationAttemptRow, utcnow

#: The authorization log state each `probe authorize` outcome counts as in the scorecards.
OUTCOME_STATES: Mapping[str, str] = {
    "authorized": "exchanged",
    "denied": "bounced",
    "no_callback": "bounced",
    "ineligible": "failed",
    "login_failed": "failed",
    "identity_verification": "failed",
    "state_mismatch": "failed",
    "error": "failed",
}


def save_observed_attempt(
    store: Store,
    base_url: str,
    outcome: str,
    attempted_at: datetime,
    evidence: Mapping[str, Any],
) -> int:
    """Store one observed attempt at `base_url` (its endpoint created when unknown); its row id."""
    if outcome not in OUTCOME_STATES:
        raise ValueError(f"unknown authorization outcome {outcome!r}")
    with store.session() as session:
        endpoint_id = ensure_endpoint(session, base_url)
        row = AuthorizationAttemptRow(
            endpoint_id=endpoint_id,
            attempt_key=f"observed:{attempted_at.isoformat()}:{secrets.token_hex(6)}",
            attempted_at=attempted_at,
            state=OUTCOME_STATES[outcome],
            query_ineligible=outcome == "ineligible",
            source="probe authorize",
            imported_at=utcnow(),
            origin="observed",
            outcome=outcome,
            evidence=dict(evidence),
        )
        session.add(row)
        session.flush()
        return row.id
