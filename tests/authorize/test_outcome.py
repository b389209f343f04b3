"""Classifying an attempt, and its strict JSON."""

from __future__ import annotations

import json
import math

import pytest

from probe.authorize.callback import parse_callback
from probe.authorize.outcome import AttemptResult, Outcome, Verdict, classify
from probe.authorize.token import TokenResult

S = "st"
OK_TOKEN = TokenResult(200, access_token="at", refresh_token="rt", patient="p1", scope="openid")


def cb(query: str) -> object:
    return parse_callback(f"/callback?{query}", S)


@pytest.mark.parametrize(
    ("query", "token", "outcome", "error"),
    [
        (f"code=c&state={S}", OK_TOKEN, Outcome.AUTHORIZED, None),
        (
            f"code=c&state={S}",
            TokenResult(400, "invalid_grant", "bad"),
            Outcome.ERROR,
            "invalid_grant",
        ),
        (f"error=access_denied&state={S}", None, Outcome.DENIED, "access_denied"),
        (
            f"error=access_denied&error_description=Member+is+not+eligible+for+this+plan&state={S}",
            None,
            Outcome.INELIGIBLE,
            "access_denied",
        ),
        (f"error=query_ineligible&state={S}", None, Outcome.INELIGIBLE, "query_ineligible"),
        (f"error=invalid_scope&state={S}", None, Outcome.ERROR, "invalid_scope"),
        ("code=c", None, Outcome.STATE_MISMATCH, None),
        ("code=c&state=other", None, Outcome.STATE_MISMATCH, None),
        ("error=access_denied", None, Outcome.STATE_MISMATCH, "access_denied"),
        (f"state={S}", None, Outcome.ERROR, "invalid_callback"),
    ],
)
def test_callback_outcomes(
    query: str, token: TokenResult | None, outcome: Outcome, error: str | None
) -> None:
    verdict = classify(cb(query), token)  # type: ignore[arg-type]
    assert verdict.outcome is outcome and verdict.error == error


def test_browser_dead_ends() -> None:
    assert classify(None, None, "identity_verification", None, "ID.me") == Verdict(
        Outcome.IDENTITY_VERIFICATION, None, "ID.me"
    )
    assert classify(None, None, "login_failed", "invalid username or password").outcome is (
        Outcome.LOGIN_FAILED
    )
    assert classify(None, None, "ineligible", "not eligible").outcome is Outcome.INELIGIBLE
    assert classify(None, None, "deadline").outcome is Outcome.NO_CALLBACK
    assert classify(None, None, "stuck", "nothing to do").outcome is Outcome.NO_CALLBACK
    assert classify(None, None, "browser_error", "net::ERR").error == "browser_error"


def test_json_is_strict_and_complete() -> None:
    result = AttemptResult(
        base_url="https://fhir.example/r4",
        verdict=Verdict(Outcome.AUTHORIZED),
        started_at="2026-12-06T00:00:00+00:00",
        duration_ms=12.345,
        scopes_granted=["openid"],
    )
    data = json.loads(result.to_json())
    for key in (
        "schema_version",
        "outcome",
        "error",
        "patient",
        "refresh_token_issued",
        "scopes_granted",
        "pkce",
        "duration_ms",
        "redirects",
        "evidence",
    ):
        assert key in data
    assert data["pkce"] == "S256" and data["outcome"] == "authorized"
    result.evidence["bad"] = math.nan
    with pytest.raises(ValueError):
        result.to_json()
