"""The authorization request: scope, state and the URL the browser opens."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from urllib.parse import urlencode, urlsplit, urlunsplit

from probe.authorize.pkce import Pkce

DEFAULT_SCOPE = "launch/patient openid fhirUser offline_access patient/*.read"


def new_state() -> str:
    """An unguessable `state` value (RFC 6749 §10.12) the callback must echo."""
    return secrets.token_urlsafe(24)


def redirect_uri_for(port: int) -> str:
    """The loopback redirect URI (RFC 8252 §7.3) for a port: ``http://127.0.0.1:PORT/callback``."""
    return f"http://127.0.0.1:{port}/callback"


def wants_offline(scope: str) -> bool:
    """Whether the scope asks for a refresh token (``offline_access``)."""
    return "offline_access" in scope.split()


@dataclass(frozen=True, slots=True)
class AuthorizationRequest:
    """Everything one authorization request carries; `state` and PKCE stay out of reprs."""

    authorization_endpoint: str
    client_id: str
    redirect_uri: str
    scope: str
    aud: str
    pkce: Pkce
    state: str = field(repr=False)

    def params(self) -> dict[str, str]:
        """The query parameters, with ``prompt=consent`` when a refresh token is asked for."""
        params = {
            "response_type": "code",
            "client_id": self.client_id,
            "redirect_uri": self.redirect_uri,
            "scope": self.scope,
            "state": self.state,
            "aud": self.aud,
            "code_challenge": self.pkce.challenge,
            "code_challenge_method": self.pkce.method,
        }
        if wants_offline(self.scope):
            params["prompt"] = "consent"
        return params

    def url(self) -> str:
        """The authorization URL (existing query parameters of the endpoint are kept)."""
        parts = urlsplit(self.authorization_endpoint)
        query = urlencode(self.params())
        joined = f"{parts.query}&{query}" if parts.query else query
        return urlunsplit((parts.scheme, parts.netloc, parts.path, joined, ""))
