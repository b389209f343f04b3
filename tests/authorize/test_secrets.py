"""No secret of an attempt (code, access and refresh tokens, password, client secret) reaches
the JSON output, the stored row or a log record."""

from __future__ import annotations

import json
import logging
from datetime import datetime
from typing import Any

import anyio
import pytest
from sqlalchemy import select

import probe.authorize.session as session_module
from probe.authorize.browser import Credentials
from probe.authorize.session import AuthorizeOptions, run_attempt
from probe.authorize.token import TokenResult
from probe.directory.secrets import TokenStore
from probe.fleet.config import parse_fleet_config
from probe.fleet.serve import running_fleet
from probe.store.handle import Store
from probe.store.observed_authorizations import save_observed_attempt
from probe.store.tables import AuthorizationAttemptRow

from .conftest import free_port

pytestmark = pytest.mark.slow


def test_no_secret_leaks(
    store: Store,
    chromium: str,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: dict[str, Any] = {}
    real_exchange = session_module.exchange_code

    async def spy(*args: Any, **kwargs: Any) -> TokenResult:
        seen["code"] = args[2]
        seen["verifier"] = args[3]
        result = await real_exchange(*args, **kwargs)
        seen["token"] = result
        return result

    monkeypatch.setattr(session_module, "exchange_code", spy)
    member_password = "Pw-unique-6d1e"
    payer = {"slug": "leaky", "oauth": {"journey": "consent", "client_auth": "client_secret_post"}}
    config = parse_fleet_config({"seed": 29, "hosts": 2, "payers": [payer]})
    box: dict[str, Any] = {}

    async def go() -> None:
        async with running_fleet(config) as fleet:
            creds = fleet.credentials("leaky")
            box["secret"] = creds.client_secret
            box["result"] = await run_attempt(
                AuthorizeOptions(
                    base_url=fleet.base_url("leaky"),
                    client_id=creds.client_id,
                    client_secret=creds.client_secret,
                    redirect_port=free_port(),
                    credentials=Credentials(fleet.patients("leaky")[0], "password"),
                    deadline_s=60,
                ),
                token_store=TokenStore(None),
            )
            # A second, failing attempt types a distinctive password into the page.
            box["failed"] = await run_attempt(
                AuthorizeOptions(
                    base_url=fleet.base_url("leaky"),
                    client_id=creds.client_id,
                    client_secret=creds.client_secret,
                    redirect_port=free_port(),
                    credentials=Credentials(fleet.patients("leaky")[0], member_password),
                    deadline_s=60,
                ),
            )

    with caplog.at_level(logging.DEBUG):
        anyio.run(go)
    result = box["result"]
    assert result.to_dict()["outcome"] == "authorized"
    assert box["failed"].to_dict()["outcome"] == "login_failed"
    token: TokenResult = seen["token"]
    assert token.access_token and token.refresh_token
    secrets = {
        "code": seen["code"],
        "verifier": seen["verifier"],
        "access token": token.access_token,
        "refresh token": token.refresh_token,
        "client secret": box["secret"],
        "password": member_password,
    }
    for attempt in (result, box["failed"]):
        row_id = save_observed_attempt(
            store,
            attempt.base_url,
            str(attempt.outcome),
            datetime.fromisoformat(attempt.started_at),
            attempt.to_dict(),
        )
        assert row_id > 0
    with store.session() as s:
        rows = [
            json.dumps(
                {c.name: getattr(r, c.name) for c in AuthorizationAttemptRow.__table__.columns},
                default=str,
            )
            for r in s.scalars(select(AuthorizationAttemptRow))
        ]
    assert len(rows) == 2
    outputs = {
        "json": result.to_json() + box["failed"].to_json(),
        "rows": "\n".join(rows),
        "logs": "\n".join(r.getMessage() for r in caplog.records) + caplog.text,
        "reprs": repr(result) + repr(box["failed"]) + repr(token),
    }
    assert caplog.records, "the attempt logs its outcome"
    for where, text in outputs.items():
        for what, value in secrets.items():
            assert value not in text, f"the {what} leaked into {where}"
