"""`--interactive`: the URL is announced, the callback awaited until the deadline."""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import parse_qs, urlsplit

import anyio
import httpx
import pytest

from probe.authorize.session import AuthorizeOptions, run_attempt
from probe.fleet.config import parse_fleet_config
from probe.fleet.serve import running_fleet

from .conftest import free_port

pytestmark = pytest.mark.slow


def interactive(person: str, deadline: float) -> tuple[dict[str, Any], list[str], float]:
    """Run an interactive attempt whose 'person' does `person` with the announced URL."""
    config = parse_fleet_config({"seed": 31, "hosts": 2, "payers": [{"slug": "i"}]})
    announced: list[str] = []
    box: dict[str, Any] = {}

    async def go() -> None:
        async with running_fleet(config) as fleet, anyio.create_task_group() as tg:
            port = free_port()

            async def act(url: str) -> None:
                query = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
                target = f"http://127.0.0.1:{port}/callback"
                if person == "forged code":
                    params = {"code": "forged", "state": query["state"]}
                else:
                    params = {"code": "x", "state": "guessed"}
                async with httpx.AsyncClient() as client:
                    await client.get(target, params=params)

            def announce(url: str) -> None:
                announced.append(url)
                if person != "nobody":
                    tg.start_soon(act, url)

            creds = fleet.credentials("i")
            started = time.monotonic()
            result = await run_attempt(
                AuthorizeOptions(
                    base_url=fleet.base_url("i"),
                    client_id=creds.client_id,
                    client_secret=creds.client_secret,
                    redirect_port=port,
                    interactive=True,
                    deadline_s=deadline,
                ),
                announce=announce,
            )
            box["elapsed"] = time.monotonic() - started
            box["data"] = result.to_dict()

    anyio.run(go)
    return box["data"], announced, box["elapsed"]


def test_a_forged_code_is_refused_at_the_token_endpoint() -> None:
    data, announced, _ = interactive("forged code", 30)
    (url,) = announced
    query = parse_qs(urlsplit(url).query)
    assert query["code_challenge_method"] == ["S256"] and query["prompt"] == ["consent"]
    assert (data["outcome"], data["error"]) == ("error", "invalid_grant")
    assert data["error_description"]


def test_a_guessed_state_is_a_state_mismatch() -> None:
    data, _, _ = interactive("guessed state", 30)
    assert data["outcome"] == "state_mismatch"
    assert "token_response" not in data["evidence"]  # the code was never exchanged


def test_nobody_signs_in_before_the_deadline() -> None:
    data, announced, elapsed = interactive("nobody", 2)
    assert len(announced) == 1
    assert data["outcome"] == "no_callback" and data["error"] is None
    assert 1.5 < elapsed < 60  # the deadline ended it; the upper bound only rules out a hang
