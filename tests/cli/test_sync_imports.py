"""What a whole `probe sync` imports, run as a process against a local server: the validator
(it validates), but no module of another command, no database, no template engine, neither
pydantic nor YAML (its credentials are plain values, not the directory's models), and not
httpx's own command-line client."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.servers import serve
from tests.sync.test_sync_process import PATIENT, ROUTES

RUNNER = """
import json, os, sys
sys.argv = ["probe", *sys.argv[1:]]
import probe.cli.app as app

def end(code):
    sys.stdout.flush()
    sys.stderr.write("MODULES " + json.dumps(sorted(sys.modules)) + "\\n")
    sys.stderr.flush()
    os._exit(code)

app.end_now_if_asked = end
app.main()
"""

NOT_USED = (
    "sqlalchemy",
    "alembic",
    "fhir.resources",
    "jinja2",
    "starlette",
    "uvicorn",
    "click",  # the real click: typer carries its own (typer._click)
    "pygments",
    "httpx._main",
    "typer._adapters",
    "pydantic",
    "pydantic_core",
    "yaml",
    "probe.directory.schema",
    "jwt",
    "cryptography",
    "probe.store",
    "probe.fleet",
    "probe.crawl",
    "probe.score",
    "probe.drift",
)


def _sync_process(runner: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """`probe sync` of the test server's patient as a process started by `runner` (a script
    that reports what it imported on stderr)."""
    env = dict(os.environ, PROBE_TEST_TOKEN="test-token-value-1234")
    with serve(ROUTES) as (root, _seen):
        return subprocess.run(
            [sys.executable, "-c", runner, "sync", f"{root}/fhir", "--patient", PATIENT,
             "--token-env", "PROBE_TEST_TOKEN", "--format", "json"],
            capture_output=True, text=True, env=env, cwd=cwd, timeout=120, check=False,
        )  # fmt: skip


def test_a_whole_sync_imports_only_what_it_uses(tmp_path: Path) -> None:
    done = _sync_process(RUNNER, tmp_path)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["resources_by_type"] == {"Observation": 300, "Patient": 1}
    line = next(x for x in done.stderr.splitlines() if x.startswith("MODULES "))
    loaded = json.loads(line.removeprefix("MODULES "))
    assert "jsonschema_rs" in loaded and "httpx" in loaded  # validated, over httpx
    assert [
        m for m in loaded if m in NOT_USED or m.startswith(tuple(p + "." for p in NOT_USED))
    ] == []


BUILD_EVERY_KIND = """
import json, sys
from probe.cli.options_credentials import credentials_from_options
from probe.sync.auth import Authorizer

common = dict(token_env=None, refresh_token_env=None, client_id="app", client_secret_env="S",
              auth_method="client_secret_basic", private_key_env=None, key_id=None,
              algorithm="RS384", scope=None, token_url=None)
kinds = [credentials_from_options(**{**common, "token_env": "T"}),
         credentials_from_options(**{**common, "refresh_token_env": "RT"}),
         credentials_from_options(**{**common, "private_key_env": "KEY"})]
for bad in ({"refresh_token_env": "RT", "auth_method": "private_key_jwt"},
            {"private_key_env": "KEY", "token_url": "https://u:p@auth.example/token"}):
    try:
        credentials_from_options(**{**common, **bad})
    except ValueError as exc:
        kinds.append(str(exc))
for creds in kinds[:3]:
    Authorizer(None, "https://fhir.example", creds, None, record=print)
print(json.dumps({"kinds": [type(k).__name__ if not isinstance(k, str) else k for k in kinds],
                  "modules": sorted(sys.modules)}))
"""


def test_every_credential_kind_is_built_without_pydantic_or_yaml() -> None:
    done = subprocess.run(
        [sys.executable, "-c", BUILD_EVERY_KIND],
        capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    seen = json.loads(done.stdout)
    assert seen["kinds"] == [
        "BearerCredentials",
        "RefreshTokenCredentials",
        "BackendServicesCredentials",
        "auth_method: Input should be 'client_secret_basic', 'client_secret_post' or 'none'",
        "token_url: a URL must not carry a user name or password (user:password@host); "
        "put credentials in 'credentials' as {env: VARIABLE} or {secret: KEY}",
    ]
    unwanted = ("pydantic", "pydantic_core", "yaml")
    assert [m for m in seen["modules"] if m.split(".")[0] in unwanted] == []


AT_FIRST_REQUEST = """
import json, sys
sys.argv = ["probe", *sys.argv[1:]]
from probe.cli.lean_imports import import_httpx
import_httpx()
import probe.http.fetch as fetch
request = fetch.Fetcher.request
seen = []

async def first(self, *args, **kwargs):
    if not seen:
        seen.append(sorted(sys.modules))
        sys.stderr.write("AT-FIRST " + json.dumps(seen[0]) + "\\n")
    return await request(self, *args, **kwargs)

fetch.Fetcher.request = first
import probe.cli.app as app
app.main()
"""


def test_the_first_request_waits_for_no_check_validator_or_output_module(tmp_path: Path) -> None:
    """What the sync needs only once answers are in (the discovery checks that read the two
    documents, the R4 validator, the output's tables) is imported after its first request."""
    done = _sync_process(AT_FIRST_REQUEST, tmp_path)
    assert done.returncode == 0, done.stderr
    line = next(x for x in done.stderr.splitlines() if x.startswith("AT-FIRST "))
    loaded = json.loads(line.removeprefix("AT-FIRST "))
    assert "probe.sync.runner" in loaded and "httpx" in loaded
    later = ("probe.checks", "probe.cli.render", "jsonschema_rs", "rich.table")
    assert [m for m in loaded if m in later or m.startswith(tuple(p + "." for p in later))] == []
