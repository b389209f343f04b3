"""What a whole `probe sync` imports, run as a process against a local server: the validator
(it validates), but no module of another command, no database, no template engine, no
pydantic TypeAdapter path for its options, and not httpx's own command-line client."""

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
    "jwt",
    "cryptography",
    "probe.store",
    "probe.fleet",
    "probe.crawl",
    "probe.score",
    "probe.drift",
)


def test_a_whole_sync_imports_only_what_it_uses(tmp_path: Path) -> None:
    env = dict(os.environ, PROBE_TEST_TOKEN="test-token-value-1234")
    with serve(ROUTES) as (root, _seen):
        done = subprocess.run(
            [sys.executable, "-c", RUNNER, "sync", f"{root}/fhir", "--patient", PATIENT,
             "--token-env", "PROBE_TEST_TOKEN", "--format", "json"],
            capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120, check=False,
        )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["resources_by_type"] == {"Observation": 300, "Patient": 1}
    line = next(x for x in done.stderr.splitlines() if x.startswith("MODULES "))
    loaded = json.loads(line.removeprefix("MODULES "))
    assert "jsonschema_rs" in loaded and "httpx" in loaded  # validated, over httpx
    assert [
        m for m in loaded if m in NOT_USED or m.startswith(tuple(p + "." for p in NOT_USED))
    ] == []
