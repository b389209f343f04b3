"""`probe authorize` against a real OpenID Connect provider's own pages (panva's oidc-provider,
its stock sign-in and consent interactions), installed from npm into .cache on first use."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import anyio
import pytest

from probe.authorize.browser import Credentials
from probe.authorize.session import AuthorizeOptions, run_attempt
from probe.directory.secrets import TokenStore

from .conftest import free_port

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
PROVIDER_DIR = ROOT / ".cache" / "oidc-provider"
SCRIPT = Path(__file__).with_name("oidc_provider.mjs")
PACKAGE = "oidc-provider@9.13.3"


def provider_dir() -> Path:
    """A folder with oidc-provider installed and the test server script beside it."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if (node is None or npm is None) and hasattr(os, "geteuid") and os.geteuid() == 0:
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], check=False, env=env, timeout=600)
        subprocess.run(
            ["apt-get", "install", "-y", "-qq", "nodejs", "npm"],
            check=False,
            env=env,
            timeout=900,
            capture_output=True,
        )
        node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.fail("node and npm are needed: apt-get install -y nodejs npm", pytrace=False)
    PROVIDER_DIR.mkdir(parents=True, exist_ok=True)
    if not (PROVIDER_DIR / "node_modules" / "oidc-provider" / "package.json").exists():
        (PROVIDER_DIR / "package.json").write_text(
            '{"name": "probe-oidc-test", "private": true, "type": "module"}\n'
        )
        done = subprocess.run(
            [npm, "install", "--no-audit", "--no-fund", PACKAGE],
            cwd=PROVIDER_DIR,
            capture_output=True,
            text=True,
            timeout=600,
        )
        if done.returncode != 0:
            pytest.fail(f"npm install {PACKAGE} failed: {done.stderr[-2000:]}", pytrace=False)
    shutil.copyfile(SCRIPT, PROVIDER_DIR / SCRIPT.name)
    return PROVIDER_DIR


def test_sign_in_consent_and_decline_on_a_real_provider(chromium: str) -> None:
    where = provider_dir()
    port, callback_port = free_port(), free_port()
    secret = "probe-oidc-secret-5b2"
    box: dict[str, Any] = {}

    async def go() -> None:
        command = [
            "node",
            SCRIPT.name,
            str(port),
            f"http://127.0.0.1:{callback_port}/callback",
            secret,
        ]
        async with await anyio.open_process(command, cwd=where) as process:
            assert process.stdout is not None
            seen = b""
            with anyio.fail_after(30):
                async for chunk in process.stdout:
                    seen += chunk
                    if b"ready" in seen:
                        break
            store = TokenStore(None)
            try:
                for name, decline in (("approve", False), ("decline", True)):
                    box[name] = await run_attempt(
                        AuthorizeOptions(
                            base_url=f"http://127.0.0.1:{port}/fhir",
                            client_id="probe-app",
                            client_secret=secret,
                            redirect_port=callback_port,
                            credentials=Credentials("member-7", "any-password"),
                            decline=decline,
                            deadline_s=60,
                        ),
                        token_store=store,
                    )
                box["stored"] = store.get(f"http://127.0.0.1:{port}/fhir|probe-app")
            finally:
                process.terminate()

    anyio.run(go)
    approved = box["approve"].to_dict()
    assert approved["outcome"] == "authorized", approved
    assert approved["refresh_token_issued"] is True and box["stored"]
    assert "offline_access" in approved["scopes_granted"]
    assert approved["evidence"]["actions"] == [
        "login: filled username and password, clicked 'Sign-in'",
        "consent: approved with button 'Continue'",
    ]
    assert approved["evidence"]["pages_seen"] == 2  # both pages are titled "Sign-in"
    # The provider puts no patient in its token response: reported as a finding.
    assert [f["id"] for f in approved["findings"]] == ["authorize.patient_context"]
    declined = box["decline"].to_dict()
    assert (declined["outcome"], declined["error"]) == ("denied", "access_denied")
    assert declined["evidence"]["actions"][-1] == "consent: declined with link '[ Cancel ]'"
