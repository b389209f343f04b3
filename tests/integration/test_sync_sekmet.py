"""`probe sync` against sekmet-fhir 0.1.1, a FHIR R4 server written elsewhere (see conftest.py).

One of the fleet's committed test patients (109 resources: the record and the practitioners,
organizations and locations it references) is loaded with a transaction Bundle whose entries
are linked by ``urn:uuid:`` fullUrls; sekmet assigns the ids. The figures `probe sync` prints
are checked against counts computed from that Bundle.

What sekmet 0.1.1 does with `Patient/{id}/$everything`, and so what is asserted:

* It returns the Patient and its whole compartment (every resource that references the patient)
  in ONE Bundle without links, ignoring `_count`. The operation defines `_count` for paging and
  returns a single Bundle only "unless the client requests otherwise"; probe reports this as the
  `count_ignored` finding, `paged: false`, support level `limited`.
* Of the resources the record references, the spec says $everything returns "any resource
  referenced from those" (the practitioners, organizations and locations). sekmet follows
  references only through the search parameters it indexes; its ExplanationOfBenefit has no
  `care-team` or `facility` parameter, so the Practitioners (EOB.careTeam.provider) and
  Locations (EOB.facility) are left out while the Organizations (EOB.provider, Coverage.payor)
  are in. probe resolves the missing ones by reading them (`references.fetched`) and counts
  them in `resources_by_type`, so the sync still sees every resource of the record: asserted
  below as resources_by_type == the Bundle's counts, with the reads counted separately.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import (
    TOKEN,
    LoadedPatient,
    Sekmet,
    fleet_patient_resources,
    load_patient,
    run_sekmet,
    self_signed_cert,
    transaction_bundle,
)

pytestmark = pytest.mark.slow

TOKEN_ENV = "PROBE_IT_SEKMET_TOKEN"
PAGE_SIZE = 20  # the record has 102 resources in $everything: several pages were asked for


@dataclass(frozen=True)
class Expected:
    """What the loaded Bundle says a sync must find."""

    compartment: Counter[str]  # Patient + every resource referencing the patient, by type
    referenced: Counter[str]  # resources the compartment references (outside it), by type


def _references(node: Any) -> set[str]:
    found: set[str] = set()
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "reference" and isinstance(value, str):
                found.add(value)
            else:
                found |= _references(value)
    elif isinstance(node, list):
        for item in node:
            found |= _references(item)
    return found


def expected_from(bundle: dict[str, Any]) -> Expected:
    by_url = {e["fullUrl"]: e["resource"] for e in bundle["entry"]}
    (patient_urn,) = [u for u, r in by_url.items() if r["resourceType"] == "Patient"]
    compartment = {
        u for u, r in by_url.items() if u == patient_urn or patient_urn in _references(r)
    }
    referenced = set().union(*(_references(by_url[u]) for u in compartment)) - compartment
    assert referenced <= by_url.keys()
    return Expected(
        Counter(by_url[u]["resourceType"] for u in compartment),
        Counter(by_url[u]["resourceType"] for u in referenced),
    )


def probe_sync(
    server: Sekmet, patient_id: str, token: str, *extra: str
) -> tuple[int, dict[str, Any], str]:
    """Run `probe sync ... --format json` in a child process: (exit code, JSON, all output)."""
    env = {**os.environ, TOKEN_ENV: token}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "probe.cli",
            "sync",
            server.base_url,
            "--patient",
            patient_id,
            "--token-env",
            TOKEN_ENV,
            "--format",
            "json",
            "--page-size",
            str(PAGE_SIZE),
            *extra,
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.stdout.strip(), done.stderr
    return done.returncode, json.loads(done.stdout), done.stdout + done.stderr


def assert_full_record(out: dict[str, Any], expected: Expected) -> None:
    """The sync saw the whole record: $everything's compartment, plus the references it read."""
    got = Counter(out["resources_by_type"])
    refs = out["references"]
    # The compartment: exactly what was loaded, type by type (the spec's SHOULD, met by sekmet).
    assert {t: got[t] for t in expected.compartment} == dict(expected.compartment)
    assert set(got) <= set(expected.compartment) | set(expected.referenced)
    # Referenced resources: those $everything left out (sekmet 0.1.1: Practitioner and
    # Location, see the module docstring) were each read once by reference resolution, and
    # resources_by_type counts them too: the sync saw the whole loaded record, nothing else.
    assert refs["fetched"] == expected.referenced["Practitioner"] + expected.referenced["Location"]
    assert got == expected.compartment + expected.referenced
    assert refs["resolved"] == refs["found"] and refs["rate"] == 1.0
    assert refs["in_bundle"] == refs["found"] - refs["fetched"]
    assert refs["other_origin"] == 0 and refs["unresolved_sample"] == []
    assert out["requests_by_step"] == {
        "everything": {"200": 1},
        "reference": {"200": refs["fetched"]},
    }
    # The fleet's data passed sekmet's strict R4B check on the way in and probe's R4 check out.
    assert out["validation_failures_by_type"] == {}


@pytest.fixture(scope="module")
def sekmet_http(
    sekmet_bin: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Sekmet, LoadedPatient]]:
    with run_sekmet(sekmet_bin, tmp_path_factory.mktemp("sekmet-http")) as server:
        yield server, load_patient(server, transaction_bundle(fleet_patient_resources()))


def test_sync_counts_match_the_loaded_bundle(sekmet_http: tuple[Sekmet, LoadedPatient]) -> None:
    server, loaded = sekmet_http
    code, out, text = probe_sync(server, loaded.patient_id, TOKEN)
    assert code == 0, text
    assert out["outcome"] == "completed"
    assert out["patient"]["id"] == loaded.patient_id
    expected = expected_from(loaded.bundle)
    assert sum(expected.compartment.values()) > PAGE_SIZE
    assert_full_record(out, expected)
    assert out["pages"] == 1 and out["bytes"] > 0 and out["duration_ms"] > 0
    assert out["everything"] == {
        "supported": True,
        "paged": False,  # sekmet ignores _count on $everything: one page of everything
        "support_level": "limited",
        "method": "GET",
        "fallback_used": False,
        "pages": 1,
        "reason": "count_ignored",
    }
    assert [f["code"] for f in out["findings"]] == ["count_ignored"]
    assert out["tokens"]["kind"] == "bearer"
    assert TOKEN not in text


def test_wrong_token_is_auth_failed_without_secrets(
    sekmet_http: tuple[Sekmet, LoadedPatient],
) -> None:
    server, loaded = sekmet_http
    wrong = "not-the-token-9b7e3d"
    code, out, text = probe_sync(server, loaded.patient_id, wrong)
    assert code == 1
    assert out["outcome"] == "auth_failed"
    assert out["resources_by_type"] == {}
    # One refused request; no fallback searches with a token the server has refused.
    assert out["requests_by_step"] == {"everything": {"401": 1}}
    assert out["everything"]["supported"] is None
    assert [f["code"] for f in out["findings"]] == ["token_rejected"]
    assert wrong not in text and TOKEN not in text


def test_tls_needs_the_ca_bundle(sekmet_bin: Path, tmp_path: Path) -> None:
    cert, key = self_signed_cert(tmp_path)
    with run_sekmet(sekmet_bin, tmp_path / "sekmet-tls", tls=(cert, key)) as server:
        assert server.base_url.startswith("https://")
        loaded = load_patient(server, transaction_bundle(fleet_patient_resources()))

        code, out, text = probe_sync(server, loaded.patient_id, TOKEN)
        assert code == 1
        assert out["outcome"] == "failed"
        assert out["requests_by_step"] == {"everything": {"tls": 1}}
        assert out["everything"]["supported"] is None  # not reached: says nothing of $everything
        (finding,) = out["findings"]
        assert finding["code"] == "unreachable"
        assert "CERTIFICATE_VERIFY_FAILED" in finding["message"]
        assert TOKEN not in text

        code, out, text = probe_sync(server, loaded.patient_id, TOKEN, "--ca-bundle", str(cert))
        assert code == 0, text
        assert out["outcome"] == "completed"
        assert out["base_url"].startswith("https://127.0.0.1:")
        assert_full_record(out, expected_from(loaded.bundle))
