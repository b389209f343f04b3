"""collect_inputs: PayerInputs from the observation store (SQLite), inside the window only."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from probe.directory.schema import Directory, LineOfBusiness, OrganizationStatus
from probe.models import CheckResult, CheckSpec, Exchange, ExtractStep, Severity, Status
from probe.score.collect import collect_inputs, resource_type_of
from probe.score.engine import score
from probe.score.inputs import AuthCounts, Sample
from probe.store.engine import open_store
from probe.store.handle import Store
from probe.store.tables import RunKind
from tests.score.builders import AS_OF, INSIDE, OUTSIDE, WINDOW

BASE = "https://fhir.acme.example/r4"
SANDBOX = "https://sandbox.acme.example/r4"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with open_store(f"sqlite:///{tmp_path / 'probe.db'}") as s:
        yield s


def _directory() -> Directory:
    return Directory.model_validate(
        {
            "payers": [
                {
                    "name": "Acme Health",
                    "lives": 20000,
                    "vendor": "Cloudy FHIR",
                    "organization_status": "Live",
                    "lines_of_business": {
                        "offered": ["commercial", "medicaid"],
                        "supported": ["medicaid"],
                    },
                    "endpoints": [
                        {
                            "base_url": BASE,
                            "sandbox_url": SANDBOX,
                            "portal_url": "https://developer.acme.example",
                            "facts": {
                                "member_portal_opt_in_required": False,
                                "refresh_token_max_days": 365,
                            },
                        }
                    ],
                },
                {
                    "name": "Tiny Plan",
                    "lives": 100,
                    "endpoints": [{"base_url": "https://tiny.example/fhir"}],
                },
            ]
        }
    )


def _ex(url: str, step: ExtractStep, status: int | None, at: object = INSIDE) -> Exchange:
    return Exchange("GET", url, step, status=status, started_at=at)  # type: ignore[arg-type]


def _check(check_id: str, status: Status) -> CheckResult:
    return CheckResult(CheckSpec(check_id, check_id, Severity.REQUIRED, "spec"), status, "msg")


def test_resource_type_of() -> None:
    assert resource_type_of(f"{BASE}/Coverage?patient=1", BASE) == "Coverage"
    assert resource_type_of(f"{BASE}/Patient/123", BASE + "/") == "Patient"
    assert resource_type_of(f"{BASE}/metadata", BASE) is None
    assert resource_type_of("https://elsewhere.example/Patient/1", BASE) is None


def test_collect_builds_inputs_within_the_window(store: Store) -> None:
    ids = store.upsert_directory(_directory())
    prod, sandbox = ids[f"production:{BASE}"], ids[f"sandbox:{SANDBOX}"]
    run = store.start_run(RunKind.NIGHTLY)
    ignored_run = store.start_run(RunKind.PRERELEASE)
    with store.writer(run) as w:
        w.add_exchanges(
            prod,
            [
                _ex(f"{BASE}/Patient/1/$everything", ExtractStep.EVERYTHING, 200),
                _ex(f"{BASE}/ExplanationOfBenefit?patient=1", ExtractStep.INDIVIDUAL, 200),
                _ex(f"{BASE}/Coverage?patient=1", ExtractStep.INDIVIDUAL, 500),
                _ex(f"{BASE}/Condition?patient=1", ExtractStep.INDIVIDUAL, 200),
                _ex(f"{BASE}/Coverage?patient=1", ExtractStep.RETRY, None),
                _ex(f"{BASE}/Practitioner/9", ExtractStep.REFERENCE, 200),
                _ex(f"{BASE}/Organization/9", ExtractStep.REFERENCE, 404),
                _ex(f"{BASE}/Patient?_id=1", ExtractStep.INDIVIDUAL, 200, OUTSIDE),
                _ex(f"{BASE}/metadata", ExtractStep.DISCOVERY, 200),
                _ex("https://developer.acme.example", ExtractStep.PORTAL, 200),
            ],
        )
        w.add_check_results(
            prod,
            [
                _check("metadata.reachable", Status.PASS),
                _check("metadata.is_capability_statement", Status.PASS),
            ],
            observed_at=INSIDE,
        )
        w.add_check_results(
            prod,
            [_check("smart.reachable", Status.FAIL), _check("smart.is_json", Status.SKIP)],
            observed_at=INSIDE,
        )
        w.add_check_results(
            sandbox, [_check("metadata.is_capability_statement", Status.PASS)], observed_at=INSIDE
        )
        for seconds in (2.0, 3.0, 40.0):
            w.add_sync_job(
                prod,
                "patient-a",
                created_at=INSIDE,
                completed_at=INSIDE + timedelta(seconds=seconds),
                outcome="completed",
                resources_by_type={"Patient": 1, "Observation": 3, "Goal": 0},
                details={
                    "everything": {"supported": True, "paged": True, "support_level": "paged"},
                    "tokens": {"refresh_token_issued": True, "refresh_token_lifetime_s": 86400.0},
                    # 40 s of wall time, of which 30 s was probe's own politeness waiting
                    "timing": {"scored_ms": 10_000.0} if seconds == 40.0 else None,
                },
            )
        w.add_sync_job(
            prod,
            "patient-b",
            created_at=INSIDE,
            completed_at=INSIDE + timedelta(seconds=999),
            outcome="auth_failed",
        )
        w.add_sync_job(
            prod,
            "old",
            created_at=OUTSIDE,
            completed_at=OUTSIDE + timedelta(seconds=999),
            outcome="completed",
        )
    with store.writer(ignored_run) as w:
        w.add_exchanges(prod, [_ex(f"{BASE}/Coverage?patient=1", ExtractStep.INDIVIDUAL, 200)])

    auth = {"Acme Health": [Sample(INSIDE, AuthCounts(authorized=19, failed=1), ("authlog:1",))]}
    with store.session() as session:
        inputs = collect_inputs(session, WINDOW, authorizations=auth)
    acme, tiny = inputs
    assert (acme.name, tiny.name) == ("Acme Health", "Tiny Plan")
    assert acme.organization_status is OrganizationStatus.LIVE
    assert acme.vendor == "Cloudy FHIR"
    assert acme.lines_offered == {LineOfBusiness.COMMERCIAL, LineOfBusiness.MEDICAID}
    assert acme.lines_supported == {LineOfBusiness.MEDICAID}
    assert acme.facts.refresh_token_max_days == 365
    assert acme.portal_url == "https://developer.acme.example"
    assert acme.sandbox_declared is True
    assert [s.value for s in acme.sandbox_checks] == [True]
    assert [s.value for s in acme.capability_checks] == [True]
    assert [s.value for s in acme.smart_checks] == [False]
    assert [s.value for s in acme.portal_checks] == [True]

    (requests,) = acme.requests
    assert (requests.value.successes, requests.value.attempts) == (3, 5)
    assert requests.evidence == (f"run:{run}",)
    assert len(requests.value.evidence) == 2  # the two failed requests
    (refs,) = acme.references
    assert (refs.value.successes, refs.value.attempts) == (1, 2)
    available = frozenset().union(*(s.value for s in acme.resources_available))
    assert available == {"ExplanationOfBenefit", "Condition", "Patient", "Observation"}
    assert sorted(s.value for s in acme.sync_durations_s) == [
        2.0,
        3.0,
        10.0,
    ]  # probe's own waits excluded
    assert {s.value for s in acme.everything} == {"paged"}
    assert {s.value.max_days for s in acme.refresh} == {1.0}

    card = score(inputs, as_of=AS_OF)
    assert [e.payer for e in card.excluded] == ["Tiny Plan"]
    scored = card.payer("Acme Health")
    points = {m.metric_id: m.points for m in scored.metrics}
    assert points == {
        "status": 10,
        "sandbox": 6,
        "capability_statement": 2,
        "smart_configuration": 0,
        "auth_success": 14,
        "refresh_token": 10,  # configured 365 days beats the observed 1 day
        "inactive_member_access": 0,
        "portal_opt_in": 6,
        "eligibility_errors": 2,
        "lines_of_business": 2,  # only the CMS-mandated medicaid of commercial + medicaid
        "request_success": 1,  # 3 of 5 (prerelease run and out-of-window ignored)
        "reference_resolution": 2,
        "carin_bb": 4,
        "clinical": 2,
        "sync_speed": 4,
        "everything": 3,
        "developer_portal": 2,
    }
