"""PatientSync against an in-memory payer: paging, fallback, references, tokens, findings."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from probe.directory.schema import BearerCredentials, RefreshTokenCredentials, SecretRef
from probe.directory.secrets import SecretSource, TokenStore
from probe.http.fetch import Fetcher
from probe.http.limits import Limits
from probe.sync.auth import Authorizer
from probe.sync.limits import SyncLimits
from probe.sync.result import SyncResult
from probe.sync.runner import PatientSync
from tests.discovery_docs import capability_statement
from tests.sync.fhir_mock import BASE, TOKEN_URL, MockPayer

ENV = {"RT": "refresh-1", "SECRET": "client-secret-xyz", "TOKEN": "static-token"}


def refresh_creds(method: str = "client_secret_basic") -> RefreshTokenCredentials:
    return RefreshTokenCredentials(
        kind="refresh_token",
        client_id="probe-app",
        client_secret=SecretRef(env="SECRET") if method != "none" else None,
        refresh_token=SecretRef(env="RT"),
        auth_method=method,  # type: ignore[arg-type]
        token_url=TOKEN_URL,
    )


def sync(
    payer: MockPayer,
    credentials: Any = None,
    *,
    capability: dict[str, Any] | None = None,
    limits: SyncLimits | None = None,
    token_store: TokenStore | None = None,
) -> SyncResult:
    async def nap(_: float) -> None:
        return None

    async def go() -> SyncResult:
        async with httpx.AsyncClient(transport=httpx.MockTransport(payer.handler)) as client:
            fetcher = Fetcher(client, Limits(), sleep=nap)
            auth = Authorizer(
                fetcher,
                BASE,
                credentials,
                SecretSource(env=ENV),
                record=lambda _: None,
                token_store=token_store,
            )
            job = PatientSync(
                fetcher,
                BASE,
                "p1",
                auth,
                capability=capability,
                limits=limits or SyncLimits(page_size=4),
            )
            return await job.run()

    return anyio.run(go)


def test_everything_with_paging_completes_with_exact_counts() -> None:
    payer = MockPayer(
        resources=__import__("tests.sync.fhir_mock", fromlist=["patient_record"]).patient_record(
            n_eobs=10
        )
    )
    result = sync(payer, refresh_creds())
    assert result.outcome == "completed"
    # Practitioners come from resolving references: they are part of the patient's record.
    assert result.resources_by_type == {
        "Condition": 1,
        "Coverage": 1,
        "ExplanationOfBenefit": 10,
        "MedicationRequest": 1,
        "Organization": 1,
        "Patient": 1,
        "Practitioner": 2,
    }
    assert result.pages == 4  # 15 resources, 4 per page
    assert result.everything.support_level == "paged"
    assert not result.everything.fallback_used
    steps = result.requests_by_step
    assert steps["everything"] == {"200": 1}
    assert steps["pagination"] == {"200": 3}
    assert steps["token"] == {"200": 1}
    # Practitioner/pr0 and pr1 are not in $everything: fetched as references.
    assert steps["reference"] == {"200": 2}
    refs = result.references
    assert (refs.fetched, refs.other_origin) == (2, 0)
    # Patient/p1 (relative + absolute), Organization/org1, Coverage/c1, #med1, Practitioner x2
    assert refs.found == 6 and refs.resolved == 6 and refs.rate == 1.0
    assert result.validation_failures == {}
    assert result.tokens.refresh_token_issued is True
    assert result.tokens.access_token_lifetime_s == 3600
    assert result.duration_ms is not None and result.duration_ms >= 0


def test_client_secret_basic_is_sent_only_to_the_token_endpoint() -> None:
    payer = MockPayer()
    sync(payer, refresh_creds())
    token_requests = [r for r in payer.requests if str(r.url) == TOKEN_URL]
    assert len(token_requests) == 1
    expected = "Basic " + base64.b64encode(b"probe-app:client-secret-xyz").decode()
    assert token_requests[0].headers["authorization"] == expected
    fhir_requests = [r for r in payer.requests if str(r.url) != TOKEN_URL]
    assert all(r.headers["authorization"] == "Bearer access-1" for r in fhir_requests)


def test_client_secret_post_and_public_client() -> None:
    payer = MockPayer()
    sync(payer, refresh_creds("client_secret_post"))
    form = payer.requests[0].content.decode()
    assert (
        "client_secret=client-secret-xyz" in form
        and "authorization" not in payer.requests[0].headers
    )
    payer = MockPayer()
    sync(payer, refresh_creds("none"))
    form = payer.requests[0].content.decode()
    assert "client_id=probe-app" in form and "client_secret" not in form


def test_expired_access_token_is_refreshed_once_on_401() -> None:
    payer = MockPayer(expire_after=3)
    result = sync(payer, refresh_creds())
    assert result.outcome == "completed"
    assert result.tokens.refreshes >= 1
    assert result.requests_by_step["token"] == {"200": 1 + result.tokens.refreshes}
    assert (
        sum(codes.get("401", 0) for codes in result.requests_by_step.values())
        == result.tokens.refreshes
    )
    # Each 401 was followed by a refresh and a successful repeat of the same request.
    assert sum(codes.get("200", 0) for codes in result.requests_by_step.values()) >= 1 + 3 + 2


def test_rotated_refresh_token_is_kept_in_the_token_store(tmp_path: Path) -> None:
    store = TokenStore(tmp_path / "tokens.yaml")
    payer = MockPayer(rotate=True)
    result = sync(payer, refresh_creds(), token_store=store)
    assert result.tokens.refresh_token_rotated
    assert store.get(f"{BASE}|probe-app") == "refresh-2"
    assert (tmp_path / "tokens.yaml").stat().st_mode & 0o777 == 0o600
    # Next run uses the rotated token, although the environment still has the old one.
    result = sync(payer, refresh_creds(), token_store=store)
    assert result.outcome == "completed"


def test_invalid_refresh_token_is_auth_failed_without_leaking_secrets() -> None:
    payer = MockPayer(refresh_token="something-else")
    result = sync(payer, refresh_creds())
    assert result.outcome == "auth_failed"
    text = str(result.to_json())
    assert "invalid_grant" in text
    for secret in ENV.values():
        assert secret not in text


def test_static_bearer_token() -> None:
    payer = MockPayer(token="static-token")
    result = sync(payer, BearerCredentials(kind="bearer", token=SecretRef(env="TOKEN")))
    assert result.outcome == "completed"
    assert result.tokens.kind == "bearer"
    assert "token" not in result.requests_by_step


def test_everything_unsupported_falls_back_to_declared_types() -> None:
    payer = MockPayer(everything="404")
    result = sync(payer, refresh_creds(), capability=capability_statement())
    assert result.everything.support_level == "unsupported"
    assert result.everything.fallback_used
    assert "not supported" in (result.everything.reason or "")
    # capability_statement() declares EOB, Coverage, Patient, Condition, Observation, Immunization
    assert set(result.searched_types) == {
        "Patient",
        "Coverage",
        "ExplanationOfBenefit",
        "Condition",
        "Observation",
        "Immunization",
    }
    assert result.resources_by_type["ExplanationOfBenefit"] == 5
    assert result.resources_by_type["Coverage"] == 1
    assert result.requests_by_step["everything"] == {"404": 1}
    assert result.requests_by_step["individual"]["200"] == 6
    # The 404 is recorded (and scored), but the fallback recovered the whole record.
    assert result.outcome == "completed"


def test_everything_post_only_when_declared() -> None:
    payer = MockPayer(everything="405")
    result = sync(payer, refresh_creds(), capability=capability_statement())
    assert result.everything.method == "POST" and result.everything.supported
    post = [r for r in payer.requests if r.method == "POST" and "$everything" in str(r.url)]
    assert len(post) == 1 and post[0].headers["content-type"] == "application/fhir+json"
    payer = MockPayer(everything="405")
    cap = capability_statement()
    for res in cap["rest"][0]["resource"]:
        res.pop("operation", None)
    result = sync(payer, refresh_creds(), capability=cap)
    assert not [r for r in payer.requests if r.method == "POST" and "$everything" in str(r.url)]
    assert result.everything.fallback_used


def test_paging_loop_is_detected_and_fallback_runs() -> None:
    payer = MockPayer(paging="loop")
    result = sync(payer, refresh_creds())
    assert any(f.code == "paging_loop" for f in result.findings)
    assert result.everything.support_level == "limited"
    assert result.everything.fallback_used
    assert result.resources_by_type["ExplanationOfBenefit"] == 5


def test_cross_origin_next_link_is_not_followed() -> None:
    payer = MockPayer(paging="cross_origin")
    result = sync(payer, refresh_creds())
    assert any(f.code == "next_link_cross_origin" for f in result.findings)
    assert all(r.url.host == "fhir.payer.example" for r in payer.requests)


def test_relative_next_links_are_followed() -> None:
    payer = MockPayer(paging="relative")
    result = sync(payer, refresh_creds())
    assert result.everything.support_level == "paged"
    assert result.resources_by_type["ExplanationOfBenefit"] == 5


def test_pages_that_shrink_to_nothing() -> None:
    payer = MockPayer(paging="empty")
    result = sync(payer, refresh_creds())
    assert any(f.code == "empty_pages" for f in result.findings)


def test_one_page_without_links_ignoring_count() -> None:
    payer = MockPayer(everything="one_page_no_link")
    result = sync(payer, refresh_creds())
    codes = {f.code for f in result.findings}
    assert {"count_ignored", "no_total", "no_full_url"} <= codes
    assert result.everything.support_level == "limited"
    assert result.resources_by_type["ExplanationOfBenefit"] == 5


def test_429_is_retried_and_recorded_as_retry() -> None:
    payer = MockPayer(throttle_first=True)
    result = sync(payer, refresh_creds())
    assert result.requests_by_step["everything"] == {"429": 1}
    assert result.requests_by_step["retry"] == {"200": 1}
    assert result.outcome == "completed"


def test_dangling_references() -> None:
    payer = MockPayer(readable={"Practitioner/pr0": {"resourceType": "Practitioner", "id": "pr0"}})
    result = sync(payer, refresh_creds())
    assert result.references.fetched == 2
    assert result.references.resolved == 5
    assert result.references.unresolved == [f"{BASE}/Practitioner/pr1"]
    assert result.requests_by_step["reference"] == {"200": 1, "404": 1}
    assert any(f.code == "dangling_references" for f in result.findings)


def test_other_origin_references_are_reported_never_fetched() -> None:
    from tests.sync.fhir_mock import patient_record

    record = patient_record()
    record[1]["payor"] = [{"reference": "https://other.example/fhir/Organization/x"}]
    payer = MockPayer(resources=record)
    result = sync(payer, refresh_creds())
    assert result.references.other_origin == 1
    assert all(r.url.host == "fhir.payer.example" for r in payer.requests)
    assert any(f.code == "reference_other_origin" for f in result.findings)


def test_validation_failures_are_counted_per_type() -> None:
    from tests.sync.fhir_mock import patient_record

    record = patient_record()
    record[0]["gender"] = "femme"
    record[0]["birthDate"] = "01/01/1970"
    payer = MockPayer(resources=record)
    result = sync(payer, refresh_creds())
    assert result.validation_failures == {"Patient": 1}
    assert "Patient/p1" in result.validation_samples["Patient"]


def test_multiple_patients_and_json_content_type_are_findings() -> None:
    from tests.sync.fhir_mock import patient_record

    record = patient_record()
    record.append({"resourceType": "Patient", "id": "p1-merged"})
    payer = MockPayer(resources=record, content_type="application/json")
    result = sync(payer, refresh_creds())
    codes = {f.code for f in result.findings}
    assert {"multiple_patients", "content_type_json"} <= codes


def test_page_cap_bounds_the_sync() -> None:
    payer = MockPayer()
    result = sync(payer, refresh_creds(), limits=SyncLimits(page_size=1, max_pages=3))
    assert result.pages == 3
    assert any(f.code == "page_cap" for f in result.findings)


@pytest.mark.parametrize("missing", ["RT", "SECRET"])
def test_missing_secret_names_the_variable(missing: str) -> None:
    env = dict(ENV)
    del env[missing]

    async def go() -> SyncResult:
        async with httpx.AsyncClient(transport=httpx.MockTransport(MockPayer().handler)) as client:
            fetcher = Fetcher(client, Limits())
            auth = Authorizer(
                fetcher, BASE, refresh_creds(), SecretSource(env=env), record=lambda _: None
            )
            return await PatientSync(fetcher, BASE, "p1", auth).run()

    from probe.directory.secrets import SecretError

    with pytest.raises(SecretError, match=f"environment variable {missing} is not set"):
        anyio.run(go)
