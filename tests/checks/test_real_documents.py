"""Real payer, vendor and EHR documents from ../shared, served from loopback through `probe check`.

The files are read in place (never copied into the repository); each test pins the verdicts and
the wording that makes the quirk obvious to a reader of the report.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from probe.cli.app import app
from tests.discovery_docs import capability_statement, smart_configuration
from tests.servers import Route, serve

FHIR = {"Content-Type": "application/fhir+json"}
JSON = {"Content-Type": "application/json"}


def check(metadata: Route, smart: Route) -> tuple[int, dict[str, dict[str, Any]]]:
    routes = {"/fhir/metadata": metadata, "/fhir/.well-known/smart-configuration": smart}
    with serve(routes) as (root, _):
        result = CliRunner().invoke(app, ["check", f"{root}/fhir", "--format", "json"])
    data = json.loads(result.stdout)
    return result.exit_code, {c["id"]: c for c in data["checks"]}


def real(shared: Path, name: str) -> bytes:
    return (shared / "data" / "real" / name).read_bytes()


def plain_smart() -> Route:
    return Route(200, json.dumps(smart_configuration()).encode(), JSON)


def plain_capability() -> Route:
    doc = capability_statement()
    del doc["rest"][0]["security"]["extension"]
    return Route(200, json.dumps(doc).encode(), FHIR)


def test_bfd_placeholders_fail_r4_validation_with_paths(shared_dir: Path) -> None:
    code, checks = check(
        Route(200, real(shared_dir, "capability/bfd_v2_r4_metadata_current.json"), FHIR),
        plain_smart(),
    )
    assert code == 1
    assert checks["metadata.valid_r4"]["status"] == "fail"
    errors = checks["metadata.valid_r4"]["evidence"]["errors"]
    assert [e.split(":")[0] for e in errors] == [
        "CapabilityStatement.id",
        "CapabilityStatement.date",
    ]
    assert checks["metadata.fhir_version"]["status"] == "pass"
    assert checks["metadata.smart_security"]["status"] == "fail"


def test_blue_button_r4_declared_as_4_0_0_is_r4_with_a_warning(shared_dir: Path) -> None:
    _, checks = check(
        Route(200, real(shared_dir, "capability/bluebutton_v2_r4_metadata.json"), FHIR),
        plain_smart(),
    )
    assert checks["metadata.valid_r4"]["status"] == "pass"
    assert checks["metadata.fhir_version"]["status"] == "warn"
    assert "4.0.0" in checks["metadata.fhir_version"]["message"]
    # EOB, Coverage and Patient declared; no CARIN BB conformance claimed (recommended).
    assert checks["metadata.carin_bb_resources"]["status"] == "pass"
    assert checks["metadata.carin_bb_instantiates"]["status"] == "warn"
    assert checks["metadata.patient_everything"]["status"] == "fail"


def test_cerner_dstu2_conformance(shared_dir: Path) -> None:
    code, checks = check(
        Route(200, real(shared_dir, "capability/ehr_cerner_dstu2_conformance.json"), FHIR),
        plain_smart(),
    )
    assert code == 1
    assert "DSTU2 'Conformance'" in checks["metadata.is_capability_statement"]["message"]
    assert checks["metadata.fhir_version"]["status"] == "fail"
    assert checks["metadata.valid_r4"]["status"] == "skip"


def test_provider_directory_is_not_a_patient_access_api(shared_dir: Path) -> None:
    _, checks = check(
        Route(200, real(shared_dir, "capability/centene_provider_directory_hapi.json"), FHIR),
        plain_smart(),
    )
    assert checks["metadata.valid_r4"]["status"] == "pass"
    assert checks["metadata.carin_bb_resources"]["status"] == "fail"
    assert (
        "ExplanationOfBenefit, Coverage, Patient"
        in checks["metadata.carin_bb_resources"]["message"]
    )


def test_devoted_two_field_smart_configuration(shared_dir: Path) -> None:
    code, checks = check(
        Route(200, real(shared_dir, "capability/devoted_health_patient_access.json"), FHIR),
        Route(200, real(shared_dir, "smart/devoted_health_smart_configuration.json"), JSON),
    )
    assert code == 1
    assert (
        checks["metadata.smart_security"]["status"] == "pass"
    )  # legacy security-service system accepted
    assert checks["metadata.carin_bb_resources"]["message"].endswith("Coverage")
    assert checks["smart.required_fields"]["evidence"]["missing_required"] == [
        "grant_types_supported",
        "capabilities",
        "code_challenge_methods_supported",
    ]
    assert checks["smart.matches_capability"]["status"] == "pass"


def test_oidc_document_at_smart_path(shared_dir: Path) -> None:
    _, checks = check(
        plain_capability(),
        Route(200, real(shared_dir, "smart/devoted_health_oauth_authorization_server.json"), JSON),
    )
    assert "OpenID Connect discovery document" in checks["smart.required_fields"]["message"]
    assert (
        checks["smart.pkce_s256"]["status"] == "fail"
        and "plain" in checks["smart.pkce_s256"]["message"]
    )


def test_cognito_oidc_document(shared_dir: Path) -> None:
    _, checks = check(
        plain_capability(),
        Route(200, real(shared_dir, "smart/b_well_smart_configuration.json"), JSON),
    )
    assert checks["smart.required_fields"]["status"] == "fail"
    assert "OpenID Connect" in checks["smart.required_fields"]["message"]


@pytest.mark.parametrize(
    ("name", "status"),
    [
        ("smart/ehr_epic_sandbox_r4_smart_configuration.json", "warn"),
        ("smart/flexpa_smart_configuration.json", "warn"),
    ],
)
def test_complete_real_smart_configurations(shared_dir: Path, name: str, status: str) -> None:
    """Every required field is there (pass); some recommended ones are not (their own check)."""
    _, checks = check(plain_capability(), Route(200, real(shared_dir, name), JSON))
    assert checks["smart.required_fields"]["status"] == "pass"
    assert checks["smart.recommended_fields"]["status"] == status
    assert checks["smart.pkce_s256"]["status"] == "pass"


def test_smart_configuration_without_grants_or_pkce(shared_dir: Path) -> None:
    _, checks = check(
        plain_capability(),
        Route(200, real(shared_dir, "smart/ehr_fhir_sandbox_smart_configuration.json"), JSON),
    )
    assert checks["smart.required_fields"]["evidence"]["missing_required"] == [
        "grant_types_supported",
        "code_challenge_methods_supported",
    ]
    assert checks["smart.patient_access_capabilities"]["status"] == "fail"


def test_html_401_page_on_metadata(shared_dir: Path) -> None:
    body = real(shared_dir, "errors/ehr_healthit_sandbox_401_consent_search.html")
    code, checks = check(
        Route(401, body, {"Content-Type": "text/html;charset=utf-8"}), plain_smart()
    )
    assert code == 1
    reachable = checks["metadata.reachable"]
    assert reachable["status"] == "fail" and "must be public" in reachable["message"]
    assert reachable["evidence"]["http_status"] == 401
    assert "HTTP Status 401" in reachable["evidence"]["excerpt"]


def test_empty_403_body_on_metadata(shared_dir: Path) -> None:
    body = real(shared_dir, "errors/ehr_epic_sandbox_403_account_search_emptybody.txt")
    assert body == b""
    _, checks = check(Route(403, body, {}), plain_smart())
    assert checks["metadata.reachable"]["message"].startswith("HTTP 403")
    assert checks["metadata.is_capability_statement"]["status"] == "skip"


def test_hapi_500_operation_outcome_text_is_surfaced(shared_dir: Path) -> None:
    body = real(shared_dir, "errors/cigna_sandbox_500_practitioner_read.json")
    _, checks = check(Route(500, body, FHIR), plain_smart())
    assert "HAPI-2001" in checks["metadata.reachable"]["message"]


def test_operation_outcome_without_issue_code_still_reads(shared_dir: Path) -> None:
    body = real(shared_dir, "errors/ehr_nextgen_404_careplan_search.json")
    _, checks = check(Route(200, body, FHIR), plain_smart())
    result = checks["metadata.is_capability_statement"]
    assert result["status"] == "fail"
    assert result["message"].startswith("OperationOutcome instead of a CapabilityStatement")


@pytest.mark.parametrize(
    ("name", "status", "missing"),
    [
        # CMS Blue Button 2.0: no _id or identifier, none of the STU 2 date parameters.
        (
            "bluebutton_v2_r4_metadata.json",
            "fail",
            ["_id", "identifier", "billable-period-start", "service-start-date"],
        ),
        # Epic's sandbox declares everything but _lastUpdated.
        ("ehr_epic_sandbox_r4.json", "fail", ["_lastUpdated"]),
        # Devoted: patient and date only.
        (
            "devoted_health_patient_access.json",
            "fail",
            [
                "_id",
                "_lastUpdated",
                "identifier",
                "type",
                "service-date",
                "billable-period-start",
                "service-start-date",
            ],
        ),
    ],
)
def test_carin_bb_eob_search_parameters_of_real_capability_statements(
    shared_dir: Path, name: str, status: str, missing: list[str]
) -> None:
    _, checks = check(Route(200, real(shared_dir, f"capability/{name}"), FHIR), plain_smart())
    result = checks["metadata.carin_bb_search"]
    assert result["status"] == status, result
    assert result["evidence"]["missing"] == missing
