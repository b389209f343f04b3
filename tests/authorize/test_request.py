"""PKCE (RFC 7636), state, and the authorization URL."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

from probe.authorize.pkce import challenge_for, new_pkce
from probe.authorize.request import (
    DEFAULT_SCOPE,
    AuthorizationRequest,
    new_state,
    redirect_uri_for,
)


def test_rfc7636_appendix_b_vector() -> None:
    verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
    assert challenge_for(verifier) == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"


def test_new_pkce_is_s256_with_a_valid_fresh_verifier() -> None:
    pairs = [new_pkce() for _ in range(20)]
    for pair in pairs:
        assert pair.method == "S256"
        assert re.fullmatch(r"[A-Za-z0-9._~-]{43,128}", pair.verifier)
        assert pair.challenge == challenge_for(pair.verifier)
        assert pair.verifier not in repr(pair)
    assert len({p.verifier for p in pairs}) == 20


def test_state_is_unguessable_and_fresh() -> None:
    states = {new_state() for _ in range(50)}
    assert len(states) == 50
    assert all(len(s) >= 32 and re.fullmatch(r"[A-Za-z0-9_-]+", s) for s in states)


def _request(scope: str, endpoint: str = "https://auth.example/authorize") -> AuthorizationRequest:
    return AuthorizationRequest(
        authorization_endpoint=endpoint,
        client_id="app",
        redirect_uri=redirect_uri_for(8765),
        scope=scope,
        aud="https://fhir.example/r4",
        pkce=new_pkce(),
        state="the-state",
    )


def test_authorization_url_carries_every_parameter() -> None:
    request = _request(DEFAULT_SCOPE)
    query = {k: v[0] for k, v in parse_qs(urlsplit(request.url()).query).items()}
    assert query == {
        "response_type": "code",
        "client_id": "app",
        "redirect_uri": "http://127.0.0.1:8765/callback",
        "scope": DEFAULT_SCOPE,
        "state": "the-state",
        "aud": "https://fhir.example/r4",
        "code_challenge": request.pkce.challenge,
        "code_challenge_method": "S256",
        "prompt": "consent",
    }
    assert request.pkce.verifier not in request.url()
    assert "the-state" not in repr(request)


def test_prompt_consent_only_when_offline_access_is_asked() -> None:
    query = parse_qs(urlsplit(_request("launch/patient patient/*.read").url()).query)
    assert "prompt" not in query


def test_existing_query_of_the_endpoint_is_kept() -> None:
    url = _request("openid", "https://auth.example/authorize?tenant=a").url()
    query = parse_qs(urlsplit(url).query)
    assert query["tenant"] == ["a"] and query["response_type"] == ["code"]
