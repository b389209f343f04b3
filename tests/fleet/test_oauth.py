"""The payers' token endpoints: grants, client authentication methods, expiry and rotation."""

from __future__ import annotations

import base64
import hashlib
import time
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from probe.fleet.app import Fleet

from .conftest import FakeClock, make_fleet

pytestmark = pytest.mark.anyio
Client = Callable[[Fleet], httpx.AsyncClient]


def _payer(auth: str, **oauth: Any) -> dict[str, Any]:
    return {"slug": "p", "oauth": {"client_auth": auth, **oauth}}


async def _refresh(
    client: httpx.AsyncClient, fleet: Fleet, refresh_token: str | None = None
) -> httpx.Response:
    creds = fleet.credentials("p")
    form = {"grant_type": "refresh_token", "refresh_token": refresh_token or creds.refresh_token}
    url = fleet.site("p").token_url
    if creds.auth == "client_secret_basic":
        return await client.post(url, data=form, auth=(creds.client_id, creds.client_secret))
    if creds.auth == "client_secret_post":
        form |= {"client_id": creds.client_id, "client_secret": creds.client_secret}
    else:
        form |= {"client_id": creds.client_id}
    return await client.post(url, data=form)


def _assertion(fleet: Fleet, **overrides: Any) -> str:
    creds = fleet.credentials("p")
    claims = {
        "iss": creds.client_id,
        "sub": creds.client_id,
        "aud": fleet.site("p").token_url,
        "exp": int(time.time()) + 120,
        "jti": uuid.uuid4().hex,
    }
    claims.update(overrides.pop("claims", {}))
    key = overrides.pop("key", creds.private_key_pem)
    return jwt.encode(claims, key, algorithm=creds.algorithm, headers={"kid": creds.key_id})


async def _client_credentials(
    client: httpx.AsyncClient, fleet: Fleet, assertion: str
) -> httpx.Response:
    return await client.post(
        fleet.site("p").token_url,
        data={
            "grant_type": "client_credentials",
            "scope": "system/*.read",
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": assertion,
        },
    )


@pytest.mark.parametrize("auth", ["client_secret_basic", "client_secret_post", "none"])
async def test_refresh_token_grant(client_for: Client, auth: str) -> None:
    fleet = make_fleet(_payer(auth))
    client = client_for(fleet)
    response = await _refresh(client, fleet)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 3600
    assert body["patient"] == fleet.patients("p")[0]
    assert response.headers["cache-control"] == "no-store"
    everything = await client.get(
        f"{fleet.base_url('p')}/Patient/{body['patient']}/$everything",
        headers={"Authorization": f"Bearer {body['access_token']}"},
    )
    assert everything.status_code == 200


async def test_wrong_client_authentication(client_for: Client) -> None:
    fleet = make_fleet(_payer("client_secret_basic"))
    client = client_for(fleet)
    creds = fleet.credentials("p")
    url = fleet.site("p").token_url
    form = {"grant_type": "refresh_token", "refresh_token": creds.refresh_token}
    bad = await client.post(url, data=form, auth=(creds.client_id, "wrong"))
    assert bad.status_code == 401
    assert bad.json()["error"] == "invalid_client"
    assert bad.headers["www-authenticate"].startswith("Basic")
    # Registered for basic, so a post body secret is refused.
    post = await client.post(
        url, data=form | {"client_id": creds.client_id, "client_secret": creds.client_secret}
    )
    assert post.json()["error"] == "invalid_client"
    unknown = await client.post(
        url,
        data={"grant_type": "refresh_token", "refresh_token": "nope"},
        auth=(creds.client_id, creds.client_secret),
    )
    assert unknown.status_code == 400
    assert unknown.json()["error"] == "invalid_grant"
    unsupported = await client.post(
        url, data={"grant_type": "password"}, auth=(creds.client_id, creds.client_secret)
    )
    assert unsupported.json()["error"] == "unsupported_grant_type"


@pytest.mark.parametrize("algorithm", ["ES384", "RS384"])
async def test_private_key_jwt_client_credentials(client_for: Client, algorithm: str) -> None:
    fleet = make_fleet(_payer("private_key_jwt", key_algorithm=algorithm))
    client = client_for(fleet)
    response = await _client_credentials(client, fleet, _assertion(fleet))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["scope"] == "system/*.read"
    assert "refresh_token" not in body
    coverage = await client.get(
        fleet.base_url("p") + "/Coverage",
        headers={"Authorization": f"Bearer {body['access_token']}"},
    )
    assert coverage.status_code == 200


async def test_private_key_jwt_rejections(client_for: Client) -> None:
    fleet = make_fleet(_payer("private_key_jwt"))
    client = client_for(fleet)
    other_key = ec.generate_private_key(ec.SECP384R1())
    cases = {
        "wrong aud": _assertion(fleet, claims={"aud": "http://elsewhere/token"}),
        "expired": _assertion(fleet, claims={"exp": int(time.time()) - 60}),
        "iss != client": _assertion(fleet, claims={"iss": "someone-else"}),
        "wrong key": _assertion(fleet, key=other_key),
    }
    for label, assertion in cases.items():
        response = await _client_credentials(client, fleet, assertion)
        assert response.status_code == 401, label
        assert response.json()["error"] == "invalid_client", label
    once = _assertion(fleet)
    assert (await _client_credentials(client, fleet, once)).status_code == 200
    replay = await _client_credentials(client, fleet, once)
    assert replay.status_code == 401
    assert "jti" in replay.json()["error_description"]


async def test_fhir_calls_need_a_valid_bearer_token(client_for: Client) -> None:
    fleet = make_fleet({"slug": "p"})
    client = client_for(fleet)
    url = fleet.base_url("p") + "/ExplanationOfBenefit"
    missing = await client.get(url)
    assert missing.status_code == 401
    assert missing.headers["www-authenticate"].startswith("Bearer")
    wrong = await client.get(url, headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    assert 'error="invalid_token"' in wrong.headers["www-authenticate"]


async def test_access_tokens_expire_by_time(client_for: Client) -> None:
    clock = FakeClock()
    fleet = make_fleet(_payer("client_secret_basic", access_token_lifetime_s=60), clock=clock)
    client = client_for(fleet)
    token = (await _refresh(client, fleet)).json()["access_token"]
    url = fleet.base_url("p") + "/Coverage"
    headers = {"Authorization": f"Bearer {token}"}
    assert (await client.get(url, headers=headers)).status_code == 200
    clock.advance(61)
    expired = await client.get(url, headers=headers)
    assert expired.status_code == 401
    assert "expired" in expired.text
    assert (await _refresh(client, fleet)).status_code == 200


async def test_expiring_tokens_archetype_counts_uses_and_rotates(client_for: Client) -> None:
    fleet = make_fleet(
        {"slug": "p", "archetypes": [{"expiring_tokens": {"lifetime_s": 3, "max_requests": 2}}]}
    )
    client = client_for(fleet)
    first = (await _refresh(client, fleet)).json()
    assert first["expires_in"] == 3
    headers = {"Authorization": f"Bearer {first['access_token']}"}
    url = fleet.base_url("p") + "/Coverage"
    assert [(await client.get(url, headers=headers)).status_code for _ in range(3)] == [
        200,
        200,
        401,
    ]
    # Rotation: the old refresh token is spent, the new one works.
    assert first["refresh_token"] != fleet.credentials("p").refresh_token
    reused = await _refresh(client, fleet)
    assert reused.status_code == 400
    assert reused.json()["error"] == "invalid_grant"
    second = await _refresh(client, fleet, first["refresh_token"])
    assert second.status_code == 200


async def test_refresh_token_lifetime(client_for: Client) -> None:
    clock = FakeClock()
    fleet = make_fleet(_payer("none", refresh_token_lifetime_s=3600), clock=clock)
    client = client_for(fleet)
    assert (await _refresh(client, fleet)).status_code == 200
    clock.advance(3601)
    late = await _refresh(client, fleet)
    assert late.status_code == 400
    assert late.json() == {"error": "invalid_grant", "error_description": "refresh token expired"}


async def test_static_bearer_token(client_for: Client) -> None:
    fleet = make_fleet(_payer("bearer"))
    client = client_for(fleet)
    token = fleet.secrets()["p/token"]
    response = await client.get(
        fleet.base_url("p") + "/Coverage", headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 200


async def _sign_in_and_allow(
    client: httpx.AsyncClient, authorize: str, params: dict[str, str], patient: str
) -> httpx.Response:
    """Sign in on the default (`consent`) journey and press Allow; the callback redirect."""
    login = await client.post(
        authorize, data=params | {"username": patient, "password": "password"}
    )
    assert login.status_code == 303, login.text
    txn = parse_qs(urlsplit(login.headers["location"]).query)["txn"][0]
    return await client.post(
        login.headers["location"].split("?")[0], data={"txn": txn, "decision": "allow"}
    )


async def test_authorization_code_with_pkce(client_for: Client) -> None:
    fleet = make_fleet(_payer("none"))
    client = client_for(fleet)
    creds = fleet.credentials("p")
    verifier = "v" * 64
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode()
    params = {
        "response_type": "code",
        "client_id": creds.client_id,
        "redirect_uri": "http://app.invalid/callback",
        "state": "xyz",
        "scope": "launch/patient openid fhirUser patient/*.read offline_access",
        "code_challenge": challenge.rstrip("="),
        "code_challenge_method": "S256",
    }
    authorize = fleet.site("p").oauth_url("authorize")
    page = await client.get(authorize, params=params)
    assert page.status_code == 200
    assert "<form" in page.text
    plain = await client.get(authorize, params=params | {"code_challenge_method": "plain"})
    assert plain.status_code == 400
    patient = fleet.patients("p")[0]
    approved = await _sign_in_and_allow(client, authorize, params, patient)
    assert approved.status_code == 302
    query = parse_qs(urlsplit(approved.headers["location"]).query)
    assert query["state"] == ["xyz"]
    form = {
        "grant_type": "authorization_code",
        "code": query["code"][0],
        "redirect_uri": params["redirect_uri"],
        "client_id": creds.client_id,
    }
    wrong = await client.post(fleet.site("p").token_url, data=form | {"code_verifier": "x" * 64})
    assert wrong.json()["error"] == "invalid_grant"
    approved = await _sign_in_and_allow(client, authorize, params, patient)
    form["code"] = parse_qs(urlsplit(approved.headers["location"]).query)["code"][0]
    token = await client.post(fleet.site("p").token_url, data=form | {"code_verifier": verifier})
    assert token.status_code == 200, token.text
    body = token.json()
    assert body["patient"] == patient
    assert body["refresh_token"]
    claims = jwt.decode(body["id_token"], options={"verify_signature": False})
    assert claims["fhirUser"] == f"Patient/{patient}"


async def test_revocation(client_for: Client) -> None:
    fleet = make_fleet(_payer("none"))
    client = client_for(fleet)
    token = (await _refresh(client, fleet)).json()["access_token"]
    revoke = fleet.site("p").oauth_url("revoke")
    assert (await client.post(revoke, data={"token": token})).status_code == 200
    response = await client.get(
        fleet.base_url("p") + "/Coverage", headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 401
