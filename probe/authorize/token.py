"""The authorization code exchange (RFC 6749 §4.1.3 with the PKCE verifier, RFC 7636 §4.5)."""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import httpx

MAX_TOKEN_BODY = 256_000


@dataclass(frozen=True, slots=True)
class ClientAuth:
    """How the client authenticates: public (no secret), client_secret_basic or _post."""

    client_id: str
    secret: str | None = field(default=None, repr=False)
    method: str = "none"


def choose_client_auth(
    client_id: str, secret: str | None, supported: Sequence[str] | None
) -> ClientAuth:
    """Public without a secret; with one, Basic unless the server lists only client_secret_post."""
    if not secret:
        return ClientAuth(client_id)
    offered = [str(m) for m in supported or ()]
    if offered and "client_secret_basic" not in offered and "client_secret_post" in offered:
        return ClientAuth(client_id, secret, "client_secret_post")
    return ClientAuth(client_id, secret, "client_secret_basic")


@dataclass(frozen=True, slots=True)
class TokenResult:
    """What the token endpoint answered; the tokens themselves are kept out of reprs."""

    status: int | None
    error: str | None = None
    error_description: str | None = None
    scope: str | None = None
    patient: str | None = None
    expires_in: float | None = None
    access_token: str | None = field(default=None, repr=False)
    refresh_token: str | None = field(default=None, repr=False)

    @property
    def ok(self) -> bool:
        """Whether an access token was issued."""
        return self.error is None and bool(self.access_token)


def _text(value: Any, limit: int = 300) -> str | None:
    return None if value is None else str(value)[:limit]


def _outcome_text(body: dict[str, Any]) -> str | None:
    for issue in body.get("issue") or []:
        if isinstance(issue, dict):
            details = issue.get("details")
            text = details.get("text") if isinstance(details, dict) else None
            return _text(text or issue.get("diagnostics") or issue.get("code"))
    return None


def read_token_response(status: int, content: bytes) -> TokenResult:
    """A token endpoint's answer: the tokens, or the OAuth error / OperationOutcome text."""
    try:
        body = json.loads(content[:MAX_TOKEN_BODY].decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return TokenResult(status, "invalid_response", f"HTTP {status}, not a JSON body")
    if not isinstance(body, dict):
        return TokenResult(status, "invalid_response", f"HTTP {status}, not a JSON object")
    if body.get("resourceType") == "OperationOutcome":
        return TokenResult(status, "operation_outcome", _outcome_text(body))
    if status >= 400 or body.get("error"):
        error = _text(body.get("error"), 100) or f"http_{status}"
        return TokenResult(status, error, _text(body.get("error_description")))
    access = body.get("access_token")
    if not isinstance(access, str) or not access:
        return TokenResult(status, "invalid_response", "no access_token in the token response")
    expires = body.get("expires_in")
    refresh = body.get("refresh_token")
    return TokenResult(
        status,
        scope=_text(body.get("scope"), 2000),
        patient=_text(body.get("patient"), 200),
        expires_in=float(expires) if isinstance(expires, int | float) else None,
        access_token=access,
        refresh_token=refresh if isinstance(refresh, str) and refresh else None,
    )


async def exchange_code(
    client: httpx.AsyncClient,
    token_endpoint: str,
    code: str,
    verifier: str,
    redirect_uri: str,
    auth: ClientAuth,
    seconds: float,
) -> TokenResult:
    """Exchange the code for tokens within `seconds`; transport failures become an error result,
    never raised."""
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": redirect_uri,
        "code_verifier": verifier,
    }
    headers = {"Accept": "application/json"}
    if auth.method == "client_secret_basic" and auth.secret is not None:
        pair = f"{quote(auth.client_id, safe='')}:{quote(auth.secret, safe='')}"
        headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode("ascii")
    else:
        form["client_id"] = auth.client_id
        if auth.method == "client_secret_post" and auth.secret is not None:
            form["client_secret"] = auth.secret
    try:
        response = await client.post(
            token_endpoint, data=form, headers=headers, timeout=max(seconds, 0.1)
        )
    except httpx.HTTPError as exc:
        return TokenResult(None, "transport_error", type(exc).__name__)
    except OSError as exc:
        return TokenResult(None, "transport_error", type(exc).__name__)
    return read_token_response(response.status_code, response.content)
