"""What one authorization attempt came to: the outcome, its evidence and the JSON of it."""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass, field
from typing import Any

from probe.authorize.callback import Callback
from probe.authorize.heuristics import INELIGIBLE_ERRORS, ineligible_description
from probe.authorize.token import TokenResult

SCHEMA_VERSION = 1


class Outcome(enum.StrEnum):
    """How an attempt ended (docs/authorize.md lists what leads to each)."""

    AUTHORIZED = "authorized"
    DENIED = "denied"
    INELIGIBLE = "ineligible"
    LOGIN_FAILED = "login_failed"
    IDENTITY_VERIFICATION = "identity_verification"
    STATE_MISMATCH = "state_mismatch"
    NO_CALLBACK = "no_callback"
    ERROR = "error"


@dataclass(frozen=True, slots=True)
class Verdict:
    """An outcome with the OAuth error code (if any) and a short human reason."""

    outcome: Outcome
    error: str | None = None
    detail: str | None = None


def classify_callback(callback: Callback) -> Verdict:
    """The verdict a callback alone gives (the token exchange decides a granted code)."""
    if not callback.state_ok:
        why = "the callback carried no state" if "state" not in callback.params else "wrong state"
        return Verdict(Outcome.STATE_MISMATCH, callback.error, why)
    error = callback.error
    if error is not None:
        phrase = ineligible_description(callback.error_description)
        if error.lower() in INELIGIBLE_ERRORS or phrase is not None:
            return Verdict(Outcome.INELIGIBLE, error, phrase or f"error={error}")
        if error == "access_denied":
            return Verdict(Outcome.DENIED, error, callback.error_description)
        return Verdict(Outcome.ERROR, error, callback.error_description)
    if callback.code is None:
        return Verdict(Outcome.ERROR, "invalid_callback", "neither a code nor an error")
    return Verdict(Outcome.AUTHORIZED)


def classify(
    callback: Callback | None,
    token: TokenResult | None,
    stop: str | None = None,
    stop_detail: str | None = None,
    vendor: str | None = None,
) -> Verdict:
    """The attempt's verdict from its callback, token response and why the browser stopped."""
    if callback is not None:
        verdict = classify_callback(callback)
        if verdict.outcome is not Outcome.AUTHORIZED:
            return verdict
        if token is None or not token.ok:
            error = token.error if token is not None else "no_token_exchange"
            detail = token.error_description if token is not None else None
            return Verdict(Outcome.ERROR, error, detail)
        return verdict
    if stop == "identity_verification":
        return Verdict(Outcome.IDENTITY_VERIFICATION, None, vendor)
    if stop == "login_failed":
        return Verdict(Outcome.LOGIN_FAILED, None, stop_detail)
    if stop == "ineligible":
        return Verdict(Outcome.INELIGIBLE, None, stop_detail)
    if stop == "browser_error":
        return Verdict(Outcome.ERROR, "browser_error", stop_detail)
    return Verdict(Outcome.NO_CALLBACK, None, stop_detail or "no callback before the deadline")


@dataclass
class AttemptResult:
    """One attempt as reported: outcome, token facts (never the tokens) and evidence."""

    base_url: str
    verdict: Verdict
    started_at: str
    duration_ms: float
    patient: str | None = None
    refresh_token_issued: bool = False
    scopes_granted: list[str] = field(default_factory=list)
    redirects: int = 0
    vendor: str | None = None
    error_description: str | None = None
    findings: list[dict[str, str]] = field(default_factory=list)
    endpoints: dict[str, str | None] = field(default_factory=dict)
    evidence: dict[str, Any] = field(default_factory=dict)

    @property
    def outcome(self) -> Outcome:
        """The attempt's outcome."""
        return self.verdict.outcome

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready mapping, as stored (``schema_version`` 1)."""
        return {"schema_version": SCHEMA_VERSION, **self.body()}

    def body(self) -> dict[str, Any]:
        """The JSON-ready mapping without a version: ``probe authorize --format json`` stamps
        its contract's (probe/contracts: ``AuthorizeOutput``)."""
        return {
            "base_url": self.base_url,
            "started_at": self.started_at,
            "outcome": str(self.verdict.outcome),
            "error": self.verdict.error,
            "error_description": self.error_description,
            "detail": self.verdict.detail,
            "patient": self.patient,
            "refresh_token_issued": self.refresh_token_issued,
            "scopes_granted": list(self.scopes_granted),
            "pkce": "S256",
            "duration_ms": round(self.duration_ms, 1),
            "redirects": self.redirects,
            "identity_verification_vendor": self.vendor,
            "findings": list(self.findings),
            "endpoints": dict(self.endpoints),
            "evidence": self.evidence,
        }

    def to_json(self) -> str:
        """Strict JSON (no NaN or infinity) of :meth:`to_dict`."""
        return json.dumps(self.to_dict(), allow_nan=False, sort_keys=False)
