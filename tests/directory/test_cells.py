"""Turning directory cells into FHIR base URLs (shared by seed and import-cms)."""

from __future__ import annotations

import pytest

from probe.directory.cells import (
    UnusableValue,
    base_urls_in_cell,
    clean_vendor,
    describe_text,
    normalize_base_url,
    portal_in_cell,
)
from probe.directory.cms import cms_payer_name, column_letter
from probe.directory.seed import payer_key


@pytest.mark.parametrize(
    ("raw", "base", "removed"),
    [
        ("https://fhir.example.com/r4/", "https://fhir.example.com/r4", []),
        (
            "  https://fhir.example.com/r4/metadata\u00a0 ",
            "https://fhir.example.com/r4",
            ["metadata"],
        ),
        (
            "https://x.example/r4/.well-known/smart-configuration",
            "https://x.example/r4",
            [".well-known/smart-configuration"],
        ),
        ("https://x.example/fhir/Patient", "https://x.example/fhir", ["Patient"]),
        (
            "https://x.example/fhir/Patient/123/$everything",
            "https://x.example/fhir",
            ["Patient/123/$everything"],
        ),
        (
            "https://x.example/fhir/ExplanationOfBenefit?patient=42",
            "https://x.example/fhir",
            ["ExplanationOfBenefit", "?patient=42"],
        ),
        # odd casing and plurals as real directories write them
        (
            "https://api.alaskafhir.com/r4/Explanationofbenefits",
            "https://api.alaskafhir.com/r4",
            ["Explanationofbenefits"],
        ),
        (
            "https://x.example/r4/ExplanationOfbenefits",
            "https://x.example/r4",
            ["ExplanationOfbenefits"],
        ),
        # placeholders and everything after them
        (
            "https://x.example/fhir/Patient/{patientId}",
            "https://x.example/fhir",
            ["Patient", "{patientId}"],
        ),
        ("https://x.example/fhir/{resource}", "https://x.example/fhir", ["{resource}"]),
        ("https://x.example/api/R4/[parameters]", "https://x.example/api/R4", ["[parameters]"]),
        (
            "https://x.example/R4/ExplanationOfBenefit?patient=[patientSysID]",
            "https://x.example/R4",
            ["ExplanationOfBenefit", "?patient=[patientSysID]"],
        ),
        ("https://x.example/fhir/%7BpatientId%7D", "https://x.example/fhir", ["%7BpatientId%7D"]),
        # OpenAPI description at the base, operations, fragments
        (
            "https://api-crsp-prd.safhir.io/v1/api/carin-bb/openapi.json",
            "https://api-crsp-prd.safhir.io/v1/api/carin-bb",
            ["openapi.json"],
        ),
        ("https://x.example/fhir/$export", "https://x.example/fhir", ["$export"]),
        ("https://x.example/fhir#top", "https://x.example/fhir", ["#top"]),
        # host lower-cased, path kept, default port dropped, other port kept
        ("HTTPS://API.VermontFHIR.com:443/r4/", "https://api.vermontfhir.com/r4", []),
        ("http://fhir.example.com:8080/R4", "http://fhir.example.com:8080/R4", []),
        ("https://[2001:db8::1]:8443/fhir/", "https://[2001:db8::1]:8443/fhir", []),
        # an all-lowercase segment is part of the base, not a resource type
        (
            "https://hub.floridafx.gov/base/patient/metadata",
            "https://hub.floridafx.gov/base/patient",
            ["metadata"],
        ),
        ("https://x.example/", "https://x.example", []),
    ],
)
def test_normalize_base_url(raw: str, base: str, removed: list[str]) -> None:
    assert normalize_base_url(raw) == (base, removed)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("ftp://x.example/fhir", "not an http(s) URL"),
        ("x.example/fhir", "not an http(s) URL"),
        ("[base]/Patient", "not an http(s) URL"),
        ("https://[base]/Patient", "the host is a placeholder, not a real server"),
        ("https://{host}/fhir", "the host is a placeholder, not a real server"),
        (
            "https://user:pw@x.example/fhir",
            "contains user:password@ (never put credentials in a directory)",
        ),
        (
            "https://sandbox.mhbapp.com/index.html",
            "a web page or document (index.html), not a FHIR base URL",
        ),
        ("https://x.example/guide.pdf", "a web page or document (guide.pdf), not a FHIR base URL"),
        ("https://x.example:99999/", "malformed host or port"),
        ("https://intranet/fhir", "no valid host name"),
        ("https://a.example/x https://b.example/y", "contains spaces: not a single URL"),
        ("", "empty"),
    ],
)
def test_unusable_urls(raw: str, reason: str) -> None:
    with pytest.raises(UnusableValue) as info:
        normalize_base_url(raw)
    assert str(info.value) == reason


def test_cell_with_two_urls_on_lines_or_spaces() -> None:
    for cell in (
        "https://fite.ia.example/ \n\nhttps://slap.ia.example/  ",
        "https://fite.ia.example/ https://slap.ia.example/",
    ):
        bases, rejected = base_urls_in_cell(cell)
        assert [b.url for b in bases] == ["https://fite.ia.example", "https://slap.ia.example"]
        assert rejected == []


def test_cell_duplicates_collapse() -> None:
    bases, _ = base_urls_in_cell("https://a.example/r4/Patient\nhttps://a.example/r4/metadata")
    assert [b.url for b in bases] == ["https://a.example/r4"]


def test_labelled_urls_keep_the_fhir_base_only() -> None:
    cell = (
        "Oauth Auth URL: https://uat.example/auth/authorize\n"
        "Oauth Token URL: https://uat.example/auth/token\n"
        "Claims and Member base URL: https://uat.example/fhir/R4/\n"
        "Formulary base URL: https://uat.example/fhir/pd/R4/\n"
        "Provider base URL: https://uat.example/fhir/pd/R4/"
    )
    bases, rejected = base_urls_in_cell(cell)
    assert [b.url for b in bases] == ["https://uat.example/fhir/R4"]
    assert [(r.value, r.reason) for r in rejected] == [
        (
            "Oauth Auth URL: https://uat.example/auth/authorize",
            "an OAuth endpoint, not a FHIR base URL",
        ),
        (
            "Oauth Token URL: https://uat.example/auth/token",
            "an OAuth endpoint, not a FHIR base URL",
        ),
        (
            "Formulary base URL: https://uat.example/fhir/pd/R4/",
            "labelled as another API (Formulary/Provider)",
        ),
        (
            "Provider base URL: https://uat.example/fhir/pd/R4/",
            "labelled as another API (Formulary/Provider)",
        ),
    ]


def test_bare_host_beside_a_longer_url_on_it_is_redundant() -> None:
    bases, rejected = base_urls_in_cell("https://sb.example.com/pa/api/v1/\nhttps://sb.example.com")
    assert [b.url for b in bases] == ["https://sb.example.com/pa/api/v1"]
    assert [r.reason for r in rejected] == [
        "only the host of https://sb.example.com/pa/api/v1, listed beside it"
    ]


def test_url_in_parentheses_and_sentence() -> None:
    bases, _ = base_urls_in_cell("Use the form (https://x.example/fhir/r4).")
    assert [b.url for b in bases] == ["https://x.example/fhir/r4"]


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "empty"),
        ("N/A", "not applicable (N/A): no URL"),
        ("NA", "not applicable (N/A): no URL"),
        ("Not Applicable (no clinical data)", "not applicable (N/A): no URL"),
        ("N/A. All data will be available under one URL.", "not applicable (N/A): no URL"),
        ("Yes", "answers 'Yes' instead of giving a URL"),
        ("TBD", "to be determined (TBD): no URL yet"),
        ("TBD - this is not determined yet.", "to be determined (TBD): no URL yet"),
        ("Not Yet Available", "not available yet: no URL"),
        ("Targeted for May 2026", "not available yet: no URL"),
        ("same", "says it is the same as another column: no separate URL"),
        ("helpdesk@state.example 1-800-555-0100", "contact details (an e-mail address), not a URL"),
        ("Formulary information is in the Provider API", "free text without an http(s) URL"),
    ],
)
def test_describe_text(text: str, reason: str) -> None:
    assert describe_text(text) == reason
    if text:
        assert base_urls_in_cell(text) == ([], [base_urls_in_cell(text)[1][0]])
        assert base_urls_in_cell(text)[1][0].reason == reason


def test_empty_and_nbsp_only_cells_give_nothing() -> None:
    assert base_urls_in_cell("") == ([], [])
    assert base_urls_in_cell("\u00a0 \n") == ([], [])


def test_portal_prefers_registration_link() -> None:
    cell = "Quick Start Guide: https://docs.example/qsg.html\n\nRegister: https://docs.example/register.html\n"
    assert portal_in_cell(cell) == ("https://docs.example/register.html", [])
    assert portal_in_cell("See https://dev.example/ for details") == ("https://dev.example/", [])
    url, rejected = portal_in_cell("TBD")
    assert url is None and [r.reason for r in rejected] == ["to be determined (TBD): no URL yet"]


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("Patient360 (bcbsdirect/anthem P360Member platform) [inferred from host]", "Patient360"),
        ("Onyx (SaFHIR) [inferred from host]", "Onyx"),
        (
            "Abacus Insights [inferred from host]; Onyx registration [per row text]",
            "Abacus Insights",
        ),
        ("CareEvolution", "CareEvolution"),
        ("[inferred from host]", None),
    ],
)
def test_clean_vendor(raw: str, clean: str | None) -> None:
    assert clean_vendor(raw) == clean


def test_payer_key_matches_spellings_of_one_payer() -> None:
    assert payer_key("Blue Cross Blue Shield of Minnesota") == payer_key("BCBS Minnesota")
    assert payer_key("BlueCross BlueShield of Tennessee") == payer_key("BCBS Tennessee")
    assert payer_key("Cigna Healthcare") == payer_key("Cigna") == payer_key("CIGNA")
    assert payer_key("Humana Inc.") == payer_key("Humana")
    assert payer_key("Blue Shield CA") != payer_key("BCBS CA")


def test_cms_names_and_column_letters() -> None:
    assert cms_payer_name("Alabama") == "Alabama Medicaid (FFS)"
    assert cms_payer_name("Guam (GU)") == "Guam Medicaid (FFS)"
    assert [column_letter(i) for i in (0, 5, 19, 25, 26, 33)] == ["A", "F", "T", "Z", "AA", "AH"]
