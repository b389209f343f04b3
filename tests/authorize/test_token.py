"""The code exchange: client authentication, the request, and reading answers and errors."""

from __future__ import annotations

import base64
from urllib.parse import parse_qs

import httpx
import pytest

from probe.authorize.token import (
    ClientAuth,
    choose_client_auth,
    exchange_code,
    read_token_response,
)


def test_choose_client_auth() -> None:
    assert choose_client_auth("c", None, ["client_secret_basic"]).method == "none"
    assert choose_client_auth("c", "s", None).method == "client_secret_basic"
    assert choose_client_auth("c", "s", ["client_secret_post"]).method == "client_secret_post"
    both = ["client_secret_post", "client_secret_basic"]
    assert choose_client_auth("c", "s", both).method == "client_secret_basic"
    assert "s3cr3t" not in repr(choose_client_auth("c", "s3cr3t", None))


def test_reading_answers() -> None:
    ok = read_token_response(
        200,
        b'{"access_token":"AT-9f3","refresh_token":"RT-7c1","scope":"openid","patient":"p",'
        b'"expires_in":300}',
    )
    assert ok.ok and ok.patient == "p" and ok.expires_in == 300.0 and ok.refresh_token == "RT-7c1"
    assert "AT-9f3" not in repr(ok) and "RT-7c1" not in repr(ok)
    refused = read_token_response(400, b'{"error":"invalid_grant","error_description":"used"}')
    assert (
        not refused.ok and refused.error == "invalid_grant" and refused.error_description == "used"
    )
    outcome = read_token_response(
        401,
        b'{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"login",'
        b'"details":{"text":"client authentication failed"}}]}',
    )
    assert outcome.error == "operation_outcome"
    assert outcome.error_description == "client authentication failed"
    assert read_token_response(502, b"<html>Bad gateway</html>").error == "invalid_response"
    assert read_token_response(200, b'{"token_type":"bearer"}').error == "invalid_response"


@pytest.mark.anyio
@pytest.mark.parametrize("method", ["none", "client_secret_basic", "client_secret_post"])
async def test_exchange_sends_verifier_and_authenticates(method: str) -> None:
    seen: dict[str, object] = {}

    def handler(request: httpx.Request) -> httpx.Response:
        seen["form"] = {k: v[0] for k, v in parse_qs(request.content.decode()).items()}
        seen["auth"] = request.headers.get("authorization")
        return httpx.Response(200, json={"access_token": "at", "scope": "openid"})

    secret = None if method == "none" else "s:ecret"
    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        result = await exchange_code(
            client,
            "https://auth.example/token",
            "the-code",
            "the-verifier",
            "http://127.0.0.1:9/callback",
            ClientAuth("app", secret, method),
            5,
        )
    assert result.ok
    form = seen["form"]
    assert isinstance(form, dict)
    assert form["grant_type"] == "authorization_code" and form["code"] == "the-code"
    assert form["code_verifier"] == "the-verifier"
    assert form["redirect_uri"] == "http://127.0.0.1:9/callback"
    if method == "client_secret_basic":
        assert "client_secret" not in form and "client_id" not in form
        assert seen["auth"] == "Basic " + base64.b64encode(b"app:s%3Aecret").decode()
    else:
        assert form["client_id"] == "app" and seen["auth"] is None
        assert form.get("client_secret") == (secret if method == "client_secret_post" else None)


@pytest.mark.anyio
async def test_transport_failure_is_a_result() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused")

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        result = await exchange_code(
            client, "https://a/token", "c", "v", "http://127.0.0.1:9/callback", ClientAuth("a"), 1
        )
    assert result.error == "transport_error" and not result.ok
