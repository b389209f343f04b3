"""Every fleet login journey walked end to end by headless Chromium (real sockets)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import anyio
import pytest

from probe.authorize.browser import Credentials
from probe.authorize.outcome import AttemptResult
from probe.authorize.recipe import parse_recipe
from probe.authorize.session import AuthorizeOptions, run_attempt
from probe.directory.secrets import SecretSource, TokenStore
from probe.fleet.config import JOURNEYS, parse_fleet_config
from probe.fleet.serve import running_fleet

from .conftest import free_port, slug_of

pytestmark = pytest.mark.slow

#: journey -> (outcome, error, what else to check)
EXPECTED: dict[str, tuple[str, str | None]] = {
    "consent": ("authorized", None),
    "consent_scopes": ("authorized", None),
    "identity_verification": ("identity_verification", None),
    "ineligible": ("ineligible", "access_denied"),
    "popup": ("authorized", None),
    "slow": ("authorized", None),
    "drops_state": ("state_mismatch", None),
    "not_active": ("login_failed", None),
    "default_deny": ("authorized", None),
}


def attempt(
    journey: str,
    *,
    decline: bool = False,
    client_auth: str = "client_secret_basic",
    password: str = "password",  # noqa: S107 (the fleet's member password)
    deadline: float = 60,
) -> tuple[AttemptResult, dict[str, Any]]:
    slug = slug_of(journey)
    payer = {"slug": slug, "oauth": {"journey": journey, "client_auth": client_auth}}
    config = parse_fleet_config({"seed": 13, "hosts": 2, "payers": [payer]})
    box: dict[str, Any] = {}

    async def go() -> None:
        async with running_fleet(config) as fleet:
            creds = fleet.credentials(slug)
            store = TokenStore(None)
            box["result"] = await run_attempt(
                AuthorizeOptions(
                    base_url=fleet.base_url(slug),
                    client_id=creds.client_id,
                    client_secret=None if client_auth == "none" else creds.client_secret,
                    redirect_port=free_port(),
                    credentials=Credentials(fleet.patients(slug)[0], password),
                    decline=decline,
                    deadline_s=deadline,
                ),
                token_store=store,
            )
            box["patient"] = fleet.patients(slug)[0]
            box["stored"] = store.get(f"{fleet.base_url(slug).rstrip('/')}|{creds.client_id}")

    anyio.run(go)
    return box["result"], box


def test_every_fleet_journey_is_covered() -> None:
    assert set(EXPECTED) == set(JOURNEYS)


@pytest.mark.parametrize("journey", sorted(EXPECTED))
def test_journey(journey: str, chromium: str) -> None:
    result, box = attempt(journey)
    data = result.to_dict()
    outcome, error = EXPECTED[journey]
    assert (data["outcome"], data["error"]) == (outcome, error), data
    evidence = data["evidence"]
    assert data["pkce"] == "S256"
    assert evidence["pages_seen"] >= 1 and evidence["time_to_first_page_ms"] > 0
    assert data["redirects"] == len(evidence["navigation"]) >= 1
    for step in evidence["navigation"]:
        assert set(step) == {"host", "at_ms"}
    if outcome == "authorized":
        assert data["patient"] == box["patient"]
        assert data["refresh_token_issued"] is True and box["stored"]
        assert "offline_access" in data["scopes_granted"]
        assert evidence["token_response"]["refresh_token"] is True
        assert evidence["time_to_callback_ms"] <= evidence["time_to_token_ms"]
        assert data["findings"] == []
    else:
        assert data["patient"] is None and box["stored"] is None
    if journey == "identity_verification":
        assert data["identity_verification_vendor"] == "ID.me"
        assert evidence["pages"][-1]["title"] == "ID.me - Verify your identity"
    if journey == "popup":
        assert evidence["popups"] == 1
    if journey == "not_active":
        assert data["detail"] == "account is not yet active"
    if journey == "ineligible":
        assert "not eligible" in (data["error_description"] or "")
    if journey == "default_deny":
        assert "consent: approved with link 'Allow access'" in evidence["actions"]
    if journey == "slow":
        assert evidence["time_to_callback_ms"] > 3000


@pytest.mark.parametrize("journey", ["consent", "consent_scopes", "default_deny"])
def test_decline(journey: str, chromium: str) -> None:
    result, _ = attempt(journey, decline=True)
    assert (result.to_dict()["outcome"], result.verdict.error) == ("denied", "access_denied")


def test_wrong_password_is_a_login_failure(chromium: str) -> None:
    result, _ = attempt("consent", password="not-the-password")
    assert result.to_dict()["outcome"] == "login_failed"
    assert result.verdict.detail == "invalid username or password"


@pytest.mark.parametrize("client_auth", ["client_secret_post", "none"])
def test_client_authentication_methods(client_auth: str, chromium: str) -> None:
    result, _ = attempt("consent", client_auth=client_auth)
    data = result.to_dict()
    assert data["outcome"] == "authorized", data
    expected = "none" if client_auth == "none" else "client_secret_post"
    assert data["evidence"]["client_auth"] == expected
    assert data["evidence"].get("client_auth_retried", False) is (client_auth != "none")


def test_chromium_is_debian_s(chromium: str) -> None:
    assert os.access(chromium, os.X_OK)


def test_a_login_recipe_replaces_the_heuristics(chromium: str, tmp_path: Path) -> None:
    secrets_file = tmp_path / "secrets.yaml"
    secrets_file.write_text("member_password: password\n")
    recipe = parse_recipe(
        "secrets_file: secrets.yaml\n"
        "steps:\n"
        "  - wait_for: '#member-id'\n"
        "  - fill: {selector: '#member-id', value: {env: MEMBER}}\n"
        "  - fill: {selector: '#member-pwd', value: {secret: member_password}}\n"
        "  - click: '#sign-in'\n",
        "recipe.yaml",
        tmp_path,
    )
    broken = parse_recipe("- click: '#no-such-button'\n", "broken.yaml")
    payer = {"slug": "r", "oauth": {"journey": "consent_scopes"}}
    config = parse_fleet_config({"seed": 13, "hosts": 2, "payers": [payer]})
    box: dict[str, Any] = {}

    async def go() -> None:
        async with running_fleet(config) as fleet:
            creds = fleet.credentials("r")
            source = SecretSource(recipe.secrets_file, env={"MEMBER": fleet.patients("r")[0]})
            for name, steps, deadline in (("good", recipe, 60), ("broken", broken, 8)):
                box[name] = await run_attempt(
                    AuthorizeOptions(
                        base_url=fleet.base_url("r"),
                        client_id=creds.client_id,
                        client_secret=creds.client_secret,
                        redirect_port=free_port(),
                        recipe=steps.steps,
                        deadline_s=deadline,
                    ),
                    secrets=source,
                )

    anyio.run(go)
    good = box["good"].to_dict()
    assert good["outcome"] == "authorized", good
    assert good["evidence"]["actions"][:4] == [
        "recipe line 3: wait_for",
        "recipe line 4: fill",
        "recipe line 5: fill",
        "recipe line 6: click",
    ]
    broken_result = box["broken"].to_dict()
    assert broken_result["outcome"] == "login_failed"
    assert broken_result["detail"].startswith("recipe line 1: click '#no-such-button'")
