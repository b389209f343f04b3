"""`probe authorize` end to end through the command line, against a served fleet payer."""

from __future__ import annotations

import json
import os
import signal
import stat
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest
import yaml
from sqlalchemy import select

from probe.fleet.config import parse_fleet_config
from probe.fleet.serve import running_fleet
from probe.store.engine import open_store
from probe.store.tables import AuthorizationAttemptRow

from .conftest import free_port, probe_cli

pytestmark = pytest.mark.slow


def run_cli(tmp_path: Path, runs: dict[str, list[str]]) -> dict[str, Any]:
    """Run each named command line against a fleet payer `p`; results and the payer's facts."""
    config = parse_fleet_config({"seed": 17, "hosts": 2, "payers": [{"slug": "p"}]})
    out: dict[str, Any] = {}

    async def go() -> None:
        async with running_fleet(config) as fleet:
            creds = fleet.credentials("p")
            out["base"] = fleet.base_url("p")
            out["patient"] = fleet.patients("p")[0]
            out["secret"] = creds.client_secret
            env = {
                "MEMBER_USER": out["patient"],
                "MEMBER_PW": "password",
                "APP_SECRET": creds.client_secret,
            }
            common = [
                "authorize",
                fleet.base_url("p"),
                "--client-id",
                creds.client_id,
                "--client-secret-env",
                "APP_SECRET",
                "--username-env",
                "MEMBER_USER",
                "--password-env",
                "MEMBER_PW",
                "--deadline",
                "60",
            ]
            for name, extra in runs.items():
                args = [*common, "--redirect-port", str(free_port()), *extra]
                out[name] = await probe_cli(args, env, tmp_path)

    anyio.run(go)
    return out


def test_authorized_declined_and_saved(tmp_path: Path, chromium: str) -> None:
    # `chromium` installs Debian's browser first on a fresh machine (tests/authorize/conftest.py).
    db = f"sqlite:///{tmp_path / 'probe.db'}"
    tokens = tmp_path / "tokens.yaml"
    out = run_cli(
        tmp_path,
        {
            "authorized": ["--format", "json", "--token-store", str(tokens), "--db", db, "--save"],
            "declined": ["--format", "json", "--decline"],
            "table": [],
        },
    )
    code, stdout, stderr = out["authorized"]
    assert code == 0, stdout + stderr
    data = json.loads(stdout)
    assert data["outcome"] == "authorized" and data["error"] is None
    assert data["patient"] == out["patient"] and data["refresh_token_issued"] is True
    assert data["pkce"] == "S256" and data["schema_version"] == "1.0.0"
    assert "saved as authorization attempt" in stderr
    # The refresh token went to the token store (mode 0600), and nowhere else.
    assert stat.S_IMODE(tokens.stat().st_mode) == 0o600
    stored = yaml.safe_load(tokens.read_text())
    (refresh,) = stored.values()
    assert refresh and refresh not in stdout and refresh not in stderr
    assert out["secret"] not in stdout + stderr

    code, stdout, stderr = out["declined"]
    assert code == 1, stdout + stderr
    declined = json.loads(stdout)
    assert (declined["outcome"], declined["error"]) == ("denied", "access_denied")

    code, stdout, stderr = out["table"]
    assert code == 0, stdout + stderr
    assert "authorized" in stdout and "Authorize access" in stdout

    with open_store(db) as store, store.session() as session:
        rows = session.scalars(select(AuthorizationAttemptRow)).all()
    assert len(rows) == 1
    row = rows[0]
    assert (row.origin, row.outcome, row.state) == ("observed", "authorized", "exchanged")
    assert row.evidence is not None and row.evidence["patient"] == out["patient"]
    assert refresh not in json.dumps(row.evidence)


def test_usage_errors_are_one_line_and_exit_2(tmp_path: Path) -> None:
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("- click: '#a'\n- fill: {selector: '#p', value: hunter2}\n")

    async def go() -> dict[str, tuple[int, str, str]]:
        base = ["authorize", "https://fhir.example/r4", "--client-id", "c", "--redirect-port"]
        port = str(free_port())
        return {
            "no login": await probe_cli([*base, port], {}, tmp_path),
            "unset env": await probe_cli(
                [*base, port, "--username-env", "NOPE_U", "--password-env", "NOPE_P"],
                {},
                tmp_path,
            ),
            "bad recipe": await probe_cli(
                [*base, port, "--login-recipe", str(recipe)], {}, tmp_path
            ),
            "bad format": await probe_cli(
                [*base, port, "--interactive", "--format", "xml"], {}, tmp_path
            ),
            "no browser": await probe_cli(
                [*base, port, "--username-env", "SET_U", "--password-env", "SET_P"],
                {"SET_U": "member", "SET_P": "pw", "PATH": str(tmp_path / "empty")},
                tmp_path,
            ),
        }

    results = anyio.run(go)
    for name, (code, stdout, stderr) in results.items():
        assert code == 2, (name, stdout, stderr)
        assert "Traceback" not in stderr, name
    assert results["no login"][2].strip().count("\n") == 0
    assert "NOPE_U is not set" in results["unset env"][2]
    # Only once the user's input is right does the machine's missing browser come up.
    assert "chromium is not installed" in results["no browser"][2]
    assert "chromium" not in results["unset env"][2] + results["bad recipe"][2]
    assert f"{recipe}:2:" in results["bad recipe"][2] and "hunter2" not in results["bad recipe"][2]


def test_interactive_prints_the_url_and_ctrl_c_exits_130(tmp_path: Path) -> None:
    config = parse_fleet_config({"seed": 17, "hosts": 2, "payers": [{"slug": "p"}]})
    box: dict[str, Any] = {}

    async def go() -> None:
        async with running_fleet(config) as fleet:
            port = free_port()
            args = [
                sys.executable, "-m", "probe.cli", "authorize", fleet.base_url("p"),
                "--client-id", fleet.credentials("p").client_id,
                "--redirect-port", str(port), "--interactive", "--deadline", "60",
            ]  # fmt: skip
            env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
            async with await anyio.open_process(args, env=env, cwd=tmp_path) as process:
                assert process.stderr is not None
                seen = b""
                with anyio.fail_after(30):
                    async for chunk in process.stderr:
                        seen += chunk
                        if b"/oauth/authorize?" in seen:
                            break
                box["stderr"] = seen.decode()
                process.send_signal(signal.SIGINT)
                with anyio.fail_after(15):
                    box["code"] = await process.wait()

    anyio.run(go)
    assert "Open this URL in a browser and sign in:" in box["stderr"]
    assert "code_challenge_method=S256" in box["stderr"]
    assert box["code"] == 130
