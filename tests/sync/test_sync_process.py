"""`probe sync` as a process: its output complete, its exit code kept, no interpreter teardown.

The command asks the entry point to end the process with ``os._exit`` once output is flushed
(probe.cli.quick_exit): an ``atexit`` hook placed in the process proves that teardown was
skipped, and the JSON on a pipe proves nothing printed was lost.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.servers import Route, serve

FHIR = {"Content-Type": "application/fhir+json"}
PATIENT = "p1"


def _bundle(count: int) -> bytes:
    entries = [{"resource": {"resourceType": "Patient", "id": PATIENT}}]
    entries += [
        {
            "resource": {
                "resourceType": "Observation",
                "id": f"o{i}",
                "status": "final",
                "code": {"text": "weight"},
                "subject": {"reference": f"Patient/{PATIENT}"},
            }
        }
        for i in range(count)
    ]
    return json.dumps({"resourceType": "Bundle", "type": "searchset", "entry": entries}).encode()


ROUTES = {
    "/fhir/metadata": Route(
        200,
        json.dumps(
            {
                "resourceType": "CapabilityStatement",
                "status": "active",
                "kind": "instance",
                "fhirVersion": "4.0.1",
                "format": ["json"],
                "date": "2026-01-01",
            }
        ).encode(),
        FHIR,
    ),
    f"/fhir/Patient/{PATIENT}/$everything": Route(200, _bundle(300), FHIR),
}

#: Runs `probe` as the console script does, with an atexit hook that reports teardown.
RUNNER = """
import atexit, sys
atexit.register(lambda: sys.stderr.write("TEARDOWN-RAN\\n"))
sys.argv = ["probe", *sys.argv[1:]]
from probe.cli.app import main
main()
"""


def _probe(*argv: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PROBE_TEST_TOKEN="test-token-value-1234")
    return subprocess.run(
        [sys.executable, "-c", RUNNER, *argv],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
        check=False,
    )


def test_probe_sync_prints_everything_and_skips_teardown(tmp_path: Path) -> None:
    with serve(ROUTES) as (root, _seen):
        done = _probe(
            "sync",
            f"{root}/fhir",
            "--patient",
            PATIENT,
            "--token-env",
            "PROBE_TEST_TOKEN",
            "--format",
            "json",
            tmp_path=tmp_path,
        )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)  # complete: flushed before the process ended
    assert result["outcome"] == "completed"
    assert result["resources_by_type"] == {"Observation": 300, "Patient": 1}
    assert "TEARDOWN-RAN" not in done.stderr


def test_a_sync_that_gets_no_data_keeps_its_exit_code(tmp_path: Path) -> None:
    with serve({"/fhir/metadata": ROUTES["/fhir/metadata"]}) as (root, _seen):
        done = _probe(
            "sync",
            f"{root}/fhir",
            "--patient",
            "missing",
            "--token-env",
            "PROBE_TEST_TOKEN",
            "--format",
            "json",
            tmp_path=tmp_path,
        )
    assert done.returncode == 1, done.stderr
    assert json.loads(done.stdout)["outcome"] != "completed"
    assert "TEARDOWN-RAN" not in done.stderr


def test_other_commands_keep_the_normal_teardown(tmp_path: Path) -> None:
    done = _probe("--version", tmp_path=tmp_path)
    assert done.returncode == 0
    assert "TEARDOWN-RAN" in done.stderr
