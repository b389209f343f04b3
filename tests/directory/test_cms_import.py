"""`probe directory import-cms`: the real CMS State Medicaid Agency directory, and each quirk."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from probe.cli.directory import directory_app
from probe.directory.cms import CmsImport, import_cms
from probe.directory.records import ImportFormatError
from probe.directory.schema import Environment, LineOfBusiness, parse_directory

SHARED = Path(__file__).resolve().parents[3] / "shared"
CMS_FILE = SHARED / "data" / "cms-sma-endpoint-directory.csv"


@pytest.fixture(scope="module")
def real() -> CmsImport:
    if not CMS_FILE.is_file():
        pytest.fail(f"{CMS_FILE} is missing: CI has ../shared beside the clone")
    return import_cms(CMS_FILE)


def endpoints_of(result: CmsImport, name: str) -> list[tuple[str, str, str | None]]:
    payer = next(p for p in result.directory.payers if p.name == name)
    return [(e.environment.value, e.base_url, e.sandbox_url) for e in payer.endpoints]


# ---------------------------------------------------------------------------------------------
# The real file, as CMS publishes it
# ---------------------------------------------------------------------------------------------


def test_real_file_counts(real: CmsImport) -> None:
    assert (real.rows_read, real.first_row, real.last_row) == (56, 3, 58)
    assert len(real.directory.payers) == real.rows_imported == 37
    assert real.production_urls == 41
    assert real.sandbox_urls == 29
    assert sum(len(p.endpoints) for p in real.directory.payers) == 43
    assert real.rows_not_imported == 19
    assert len(real.issues) == 58
    assert sum(1 for i in real.issues if i.row_imported) == 29
    assert real.completed_from_capability == [
        "Colorado: https://api.coloradofhir.com -> https://api.coloradofhir.com/r4",
        "New York: https://api.newyorkfhir.com -> https://api.newyorkfhir.com/r4",
        "Oklahoma: https://api.oklahomafhir.com -> https://api.oklahomafhir.com/r4",
        "Oregon: https://api.oregonfhir.com -> https://api.oregonfhir.com/r4",
    ]


def test_real_file_rows_not_imported(real: CmsImport) -> None:
    skipped = sorted({(i.row, i.payer) for i in real.issues if not i.row_imported})
    assert skipped == [
        (5, "Arizona"),
        (7, "California"),
        (10, "District of Columbia"),
        (14, "Hawaii"),
        (16, "Illinois"),
        (17, "Indiana"),
        (26, "Minnesota"),
        (27, "Mississippi"),
        (29, "Montana"),
        (34, "New Mexico"),
        (36, "North Carolina"),
        (38, "Ohio"),
        (45, "Tennessee"),
        (49, "Virginia"),
        (54, "American Samoa (AS)"),
        (55, "Guam (GU)"),
        (56, "Northern Mariana Islands (MP)"),
        (57, "Puerto Rico (PR)"),
        (58, "Virgin Islands (VI)"),
    ]
    by_row = {(i.row, i.column): (i.line, i.value, i.reason) for i in real.issues}
    assert by_row[(5, "F claims")] == (45, "N/A", "not applicable (N/A): no URL")
    assert by_row[(14, "F claims")] == (
        140,
        "",
        "empty: no production base URL (status Not Yet Started)",
    )
    assert by_row[(17, "T sandbox")] == (146, "TBD", "to be determined (TBD): no URL yet")
    assert by_row[(26, "F claims")] == (308, "Not Yet Available", "not available yet: no URL")


def test_real_file_values_ignored_in_imported_rows(real: CmsImport) -> None:
    ignored = [(i.row, i.payer, i.column, i.value, i.reason) for i in real.issues if i.row_imported]
    assert (8, "Colorado", "T sandbox", "Yes", "answers 'Yes' instead of giving a URL") in ignored
    assert (
        47,
        "Utah",
        "G PDex",
        "same",
        "says it is the same as another column: no separate URL",
    ) in ignored
    assert (
        50,
        "Washington",
        "T sandbox",
        "https://sandbox.mhbapp.com/index.html",
        "a web page or document (index.html), not a FHIR base URL",
    ) in ignored
    assert (
        53,
        "Wyoming",
        "T sandbox",
        "https://sb.fhir.mhbapp.com",
        "only the host of https://sb.fhir.mhbapp.com/pa/api/v1, listed beside it",
    ) in ignored
    assert (
        6,
        "Arkansas",
        "T sandbox",
        "https://fite.ar-prd.gw02.abacusinsights.ai/",
        "same as the production base URL: not a separate sandbox",
    ) in ignored
    texas = [
        (value, reason)
        for row, _, column, value, reason in ignored
        if row == 46 and column == "T sandbox"
    ]
    assert texas == [
        (
            "Oauth Auth URL: https://cmsinterop-uat.tmhp.com/tmhp_auth/authorize",
            "an OAuth endpoint, not a FHIR base URL",
        ),
        (
            "Oauth Token URL: https://cmsinterop-uat.tmhp.com/tmhp_auth/token",
            "an OAuth endpoint, not a FHIR base URL",
        ),
        (
            "Formulary base URL: https://cmsinterop-uat.tmhp.com/tmhp/fhir/pd/R4/",
            "labelled as another API (Formulary/Provider)",
        ),
        (
            "Provider base URL: https://cmsinterop-uat.tmhp.com/tmhp/fhir/pd/R4/",
            "labelled as another API (Formulary/Provider)",
        ),
    ]
    reasons = {reason for *_, reason in ignored}
    assert "contact details (an e-mail address), not a URL" in reasons


def test_real_file_base_urls(real: CmsImport) -> None:
    # a resource path (odd casing) is cut; the sandbox's /metadata too; rows 3 and 4 paired
    assert endpoints_of(real, "Alabama Medicaid (FFS)") == [
        (
            "production",
            "https://fhir.alabamaonehealthrecord.com/csp/healthshare/hsods/fhir/r4",
            "https://fhir.stage.alabamaonehealthrecord.com/csp/healthshare/hsods/fhir/r4",
        )
    ]
    assert endpoints_of(real, "Alaska Medicaid (FFS)") == [
        ("production", "https://api.alaskafhir.com/r4", "https://api.1updemohealthplan.com/r4")
    ]
    # resource + query placeholder; bare-host sandbox kept as written
    assert endpoints_of(real, "Missouri Medicaid (FFS)") == [
        (
            "production",
            "https://iox.mohealthnet.conduent.com/patientAccess/api/R4",
            "https://iox.uat.mohealthnet.conduent.com",
        )
    ]
    # OpenAPI description file at the base
    assert (
        endpoints_of(real, "Maryland Medicaid (FFS)")[0][1]
        == "https://api-crsp-prd.safhir.io/v1/api/carin-bb"
    )
    # .../Patient in both production and sandbox
    assert endpoints_of(real, "Nebraska Medicaid (FFS)") == [
        (
            "production",
            "https://dhhs-api.ne.gov/dhhs/trading-partner/api/cmsi/patient-access-api/1.0.0",
            "https://dhhs-uat-api.ne.gov/dhhs/trading-partner/api/cmsi/patient-access-api/1.0.0",
        )
    ]
    # /metadata given as the base URL; "same" in the PDex and CHIP columns
    assert endpoints_of(real, "Utah Medicaid (FFS)") == [
        (
            "production",
            "https://fp.medicaid.utah.gov/ProviderClient",
            "https://tng-mybenefits.utah.gov/ProviderClient",
        )
    ]
    # trailing no-break spaces
    assert endpoints_of(real, "North Dakota Medicaid (FFS)") == [
        (
            "production",
            "https://us120.fhir.m3.edifecsfedcloud.com/nd_pa",
            "https://uat120.fhir.m3.edifecsfedcloud.com/nd_pa",
        )
    ]
    # the one labelled FHIR base among OAuth/Formulary/Provider URLs in the sandbox cell
    assert endpoints_of(real, "Texas Medicaid (FFS)") == [
        (
            "production",
            "https://cmsinterop.tmhp.com/tmhp/fhir/R4",
            "https://cmsinterop-uat.tmhp.com/tmhp/fhir/R4",
        )
    ]
    # two URLs in one cell, the sandbox cell repeating them: two production endpoints
    assert endpoints_of(real, "Arkansas Medicaid (FFS)") == [
        ("production", "https://fite.ar-prd.gw02.abacusinsights.ai", None),
        ("production", "https://slap.ar-prd.gw02.abacusinsights.ai", None),
    ]
    # two + two: each URL its own endpoint
    assert endpoints_of(real, "Pennsylvania Medicaid (FFS)") == [
        ("production", "https://fite.pa-prd.gw03.abacusinsights.ai", None),
        ("production", "https://slap.pa-prd.gw03.abacusinsights.ai", None),
        ("sandbox", "https://fite.pa-stg.gw03.abacusinsights.ai", None),
        ("sandbox", "https://slap.pa-stg.gw03.abacusinsights.ai", None),
    ]
    # claims (?_pretty=true) and PDex (Patient?name=&_pretty=true) on two hosts
    assert endpoints_of(real, "South Carolina Medicaid (FFS)") == [
        ("production", "https://claims.fhir.scdhhs.online/fhir/patientaccess", None),
        ("production", "https://pa.fhir.scdhhs.online/fhir/patientaccess", None),
    ]
    # the same URL in claims, PDex, CHIP: one endpoint; host lower-cased
    assert endpoints_of(real, "Michigan Medicaid (FFS)") == [
        (
            "production",
            "https://api.interopstation.com/mdhhs/fhir",
            "https://api.interopstation.com/dev1/fhir",
        )
    ]
    assert endpoints_of(real, "Vermont Medicaid (FFS)")[0][1] == "https://api.vermontfhir.com/r4"
    # bare host completed from the Capability Statement link (.../r4/metadata)
    assert endpoints_of(real, "Colorado Medicaid (FFS)") == [
        ("production", "https://api.coloradofhir.com/r4", None)
    ]


def test_real_file_payer_fields(real: CmsImport) -> None:
    alaska = next(p for p in real.directory.payers if p.name == "Alaska Medicaid (FFS)")
    assert alaska.source == (
        "CMS State Medicaid Agency endpoint directory (cms-sma-endpoint-directory.csv), "
        "row 4, status Active, FHIR 4.0.1, as of 4/28/2023"
    )
    assert (
        alaska.organization_status.value == "none"
        and alaska.lives is None
        and alaska.vendor is None
    )
    assert alaska.lines_of_business.supported == [LineOfBusiness.MEDICAID]
    assert alaska.endpoints[0].portal_url == (
        "https://docs.1up.health/help-center/Content/en-US/get-started/quick-start/register.html"
    )
    south_carolina = next(
        p for p in real.directory.payers if p.name == "South Carolina Medicaid (FFS)"
    )
    assert "status Offline" in (south_carolina.source or "")
    for payer in real.directory.payers:
        for endpoint in payer.endpoints:
            assert endpoint.credentials is None
            for url in (endpoint.base_url, endpoint.sandbox_url):
                assert url is None or not (url.endswith("/") or "?" in url or "metadata" in url)


def test_real_file_import_is_deterministic(real: CmsImport) -> None:
    assert import_cms(CMS_FILE).directory == real.directory


def test_cli_on_the_real_file_writes_loadable_yaml(tmp_path: Path) -> None:
    out = tmp_path / "cms.yaml"
    result = CliRunner().invoke(
        directory_app, ["import-cms", str(CMS_FILE), "--out", str(out)], env={"COLUMNS": "200"}
    )
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        f"CMS SMA endpoint directory {CMS_FILE}: 56 state rows (file rows 3-58)",
        "imported: 37 payers, 41 production and 29 sandbox base URLs (4 completed from the Capability Statement link)",
        "not imported: 19 rows without a usable base URL; 29 values ignored in imported rows (report on stderr)",
        f"wrote {out}",
    ]
    assert "Values of" in result.stderr and "Virgin Islands (VI)" in result.stderr
    assert "row not imported" in result.stderr and "Traceback" not in result.stderr
    directory = parse_directory(out.read_text(encoding="utf-8"), out)
    assert len(directory.payers) == 37


def test_cli_to_stdout_is_yaml_with_the_summary_as_comments() -> None:
    result = CliRunner().invoke(directory_app, ["import-cms", str(CMS_FILE)])
    assert result.exit_code == 0
    assert result.stdout.startswith("# Generated by `probe directory import-cms")
    assert "# imported: 37 payers" in result.stdout
    assert len(parse_directory(result.stdout, Path("stdout")).payers) == 37


# ---------------------------------------------------------------------------------------------
# Synthetic files, one quirk at a time
# ---------------------------------------------------------------------------------------------

GROUP = [
    "State Medicaid Agency Interoperability and Patient Access Endpoint Directory",
    "",
    "Patient Access Endpoint Information ",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "Provider Directory Endpoint Information ",
    "",
]
HEADER = [
    "State",
    "Information as of date\n(Date Completing the Survey)",
    "Production Base URL for Claims Data (CARIN BB)",
    "Production Base URL for Member Health Data (PDex), if different then claims URL",
    "Production Base URL for CHIP data, if different then Medicaid",
    "Status\n(drop-down list)",
    "FHIR Capability Statement Link",
    "FHIR Version \n(drop-down list)",
    "Sandbox/Test URL(s)",
    "API Registration Info",
    "Provider Directory Production Base URL",
    "Sandbox/Test URL",
]
COLUMN = {
    "claims": 2,
    "pdex": 3,
    "chip": 4,
    "status": 5,
    "capability": 6,
    "sandbox": 8,
    "registration": 9,
    "pd": 10,
    "pd_sandbox": 11,
}


def cms_csv(
    tmp_path: Path, rows: list[dict[str, str]], *, bom: bool = True, group: bool = True
) -> Path:
    """A file laid out like the CMS one: (BOM,) group header row, column header row, CRLF."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    if group:
        writer.writerow(GROUP)
    writer.writerow(HEADER)
    for row in rows:
        cells = [""] * len(HEADER)
        cells[0] = row.get("state", "")
        cells[1] = "10/1/2024"
        for key, index in COLUMN.items():
            cells[index] = row.get(key, "")
        writer.writerow(cells)
    path = tmp_path / "sma.csv"
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + buffer.getvalue().encode("utf-8"))
    return path


def one(tmp_path: Path, **row: str) -> CmsImport:
    return import_cms(cms_csv(tmp_path, [{"state": "Testland", "status": "Active", **row}]))


def test_bom_and_two_header_rows(tmp_path: Path) -> None:
    with_bom = import_cms(
        cms_csv(tmp_path, [{"state": "Testland", "claims": "https://a.example/r4"}])
    )
    assert [p.name for p in with_bom.directory.payers] == ["Testland Medicaid (FFS)"]
    assert (with_bom.first_row, with_bom.rows_read) == (3, 1)
    without = import_cms(
        cms_csv(
            tmp_path,
            [{"state": "Testland", "claims": "https://a.example/r4"}],
            bom=False,
            group=False,
        )
    )
    assert [p.endpoints for p in without.directory.payers] == [
        p.endpoints for p in with_bom.directory.payers
    ]
    assert without.first_row == 2
    assert without.directory.payers[0].source == (
        "CMS State Medicaid Agency endpoint directory (sma.csv), row 2, as of 10/1/2024"
    )


def test_multi_line_cell_rows_and_lines(tmp_path: Path) -> None:
    result = import_cms(
        cms_csv(
            tmp_path,
            [
                {
                    "state": "Aland",
                    "claims": "https://a.example/r4/Patient\n\nhttps://b.example/r4/Patient",
                },
                {"state": "Bland", "claims": "N/A"},
            ],
        )
    )
    assert endpoints_of(result, "Aland Medicaid (FFS)") == [
        ("production", "https://a.example/r4", None),
        ("production", "https://b.example/r4", None),
    ]
    (issue,) = result.issues
    # the column header row spans lines 2-5 (three embedded newlines), Aland lines 6-8
    assert (issue.row, issue.line, issue.payer, issue.column) == (4, 9, "Bland", "C claims")


def test_nbsp_everywhere(tmp_path: Path) -> None:
    result = one(
        tmp_path, claims="\u00a0https://a.example/nd_pa\u00a0\u00a0", sandbox="\u00a0\u00a0"
    )
    assert endpoints_of(result, "Testland Medicaid (FFS)") == [
        ("production", "https://a.example/nd_pa", None)
    ]
    assert result.issues == []


def test_resource_path_and_metadata(tmp_path: Path) -> None:
    result = one(
        tmp_path,
        claims="https://a.example/fhir/ExplanationOfBenefit",
        sandbox="https://sb.example/fhir/metadata",
    )
    assert endpoints_of(result, "Testland Medicaid (FFS)") == [
        ("production", "https://a.example/fhir", "https://sb.example/fhir")
    ]


def test_placeholders(tmp_path: Path) -> None:
    result = one(
        tmp_path,
        claims="https://a.example/fhir/Patient/{patientId}/$everything",
        pdex="[base]/Patient",
        sandbox="https://sb.example/api/R4/ExplanationOfBenefit?patient=[patientSysID]",
    )
    assert endpoints_of(result, "Testland Medicaid (FFS)") == [
        ("production", "https://a.example/fhir", "https://sb.example/api/R4")
    ]
    assert [(i.column, i.value, i.reason) for i in result.issues] == [
        ("D PDex", "[base]/Patient", "free text without an http(s) URL")
    ]


def test_two_urls_in_one_cell(tmp_path: Path) -> None:
    result = one(
        tmp_path,
        claims="https://fite.example/ https://slap.example/",
        sandbox="https://fite-stg.example/",
    )
    assert endpoints_of(result, "Testland Medicaid (FFS)") == [
        ("production", "https://fite.example", None),
        ("production", "https://slap.example", None),
        ("sandbox", "https://fite-stg.example", None),
    ]


def test_yes_tbd_na_in_url_columns(tmp_path: Path) -> None:
    result = one(
        tmp_path, claims="https://a.example/r4", sandbox="Yes", registration="TBD", pdex="N/A"
    )
    assert endpoints_of(result, "Testland Medicaid (FFS)") == [
        ("production", "https://a.example/r4", None)
    ]
    assert [(i.row, i.column, i.value, i.reason, i.row_imported) for i in result.issues] == [
        (3, "D PDex", "N/A", "not applicable (N/A): no URL", True),
        (3, "I sandbox", "Yes", "answers 'Yes' instead of giving a URL", True),
        (3, "J registration", "TBD", "to be determined (TBD): no URL yet", True),
    ]


def test_row_with_nothing_usable(tmp_path: Path) -> None:
    result = one(tmp_path, status="Not yet started", sandbox="TBD")
    assert result.directory.payers == [] and result.rows_not_imported == 1
    assert [(i.column, i.value, i.reason, i.row_imported) for i in result.issues] == [
        ("C claims", "", "empty: no production base URL (status Not yet started)", False),
        ("I sandbox", "TBD", "to be determined (TBD): no URL yet", False),
    ]


def test_provider_directory_columns_are_not_imported(tmp_path: Path) -> None:
    result = one(
        tmp_path, pd="https://pd.example/fhir/Practitioner", pd_sandbox="https://pd-sb.example/fhir"
    )
    assert result.directory.payers == []
    assert [i.reason for i in result.issues] == ["empty: no production base URL (status Active)"]


def test_capability_link_completes_a_bare_host_only(tmp_path: Path) -> None:
    result = one(
        tmp_path, claims="https://api.example.com", capability="https://api.example.com/r4/metadata"
    )
    assert endpoints_of(result, "Testland Medicaid (FFS)")[0][1] == "https://api.example.com/r4"
    # a capability "link" that is not a .../metadata URL says nothing about the base
    other = one(
        tmp_path,
        claims="https://api.example.com/fhir",
        capability="https://api.example.com/fhir/resource?x=1",
    )
    assert endpoints_of(other, "Testland Medicaid (FFS)")[0][1] == "https://api.example.com/fhir"


def test_sandbox_same_as_production_is_reported(tmp_path: Path) -> None:
    result = one(tmp_path, claims="https://a.example/", sandbox="https://a.example")
    assert endpoints_of(result, "Testland Medicaid (FFS)") == [
        ("production", "https://a.example", None)
    ]
    assert [i.reason for i in result.issues] == [
        "same as the production base URL: not a separate sandbox"
    ]


def test_state_listed_twice_is_merged(tmp_path: Path) -> None:
    path = cms_csv(
        tmp_path,
        [
            {"state": "Testland", "claims": "https://a.example/r4"},
            {
                "state": "Testland",
                "claims": "https://a.example/r4/Patient",
                "sandbox": "https://sb.example/r4",
            },
            {"state": "", "claims": "https://orphan.example/r4"},
        ],
    )
    result = import_cms(path)
    assert endpoints_of(result, "Testland Medicaid (FFS)") == [
        ("production", "https://a.example/r4", "https://sb.example/r4")
    ]
    assert [(i.row, i.reason) for i in result.issues] == [(5, "no state name")]


def test_columns_are_found_by_header_not_position(tmp_path: Path) -> None:
    text = "Sandbox/Test URL(s),State,Production Base URL for Claims Data (CARIN BB)\r\nhttps://sb.example/r4,Testland,https://a.example/r4\r\n"
    path = tmp_path / "reordered.csv"
    path.write_text(text, encoding="utf-8")
    result = import_cms(path)
    assert endpoints_of(result, "Testland Medicaid (FFS)") == [
        ("production", "https://a.example/r4", "https://sb.example/r4")
    ]


def test_windows_1252_file_is_read(tmp_path: Path) -> None:
    path = cms_csv(
        tmp_path,
        [{"state": "Testland", "claims": "https://a.example/r4", "registration": "Caf\u00e9"}],
    )
    path.write_bytes(path.read_bytes()[3:].decode("utf-8").encode("cp1252"))
    assert import_cms(path).issues[0].value == "Caf\u00e9"


# ---------------------------------------------------------------------------------------------
# Files that are not the CMS directory: exit 2, a clear message, no traceback
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "the file is empty"),
        (b"\xef\xbb\xbf \r\n", "the file is empty"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "binary data, not a CSV file"),
        (
            b"payer,base_url\r\nAcme,https://a.example\r\n",
            "not the CMS State Medicaid Agency endpoint directory",
        ),
        (b"\xff\xfe\x81\x8d garbage", "not UTF-8 or Windows-1252 text"),
    ],
)
def test_unrecognisable_files_exit_2(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "x.csv"
    path.write_bytes(content)
    with pytest.raises(ImportFormatError, match=message):
        import_cms(path)
    result = CliRunner().invoke(directory_app, ["import-cms", str(path)])
    assert result.exit_code == 2
    assert result.stderr.startswith("error: ") and message in result.stderr
    assert result.stdout == "" and "Traceback" not in result.stderr


def test_unreadable_paths_exit_2(tmp_path: Path) -> None:
    for path in (tmp_path / "missing.csv", tmp_path):
        result = CliRunner().invoke(directory_app, ["import-cms", str(path)])
        assert result.exit_code == 2, result.output
        assert f"error: {path}: cannot read" in result.stderr
        assert "Traceback" not in result.output


def test_unwritable_out_exits_2(tmp_path: Path) -> None:
    out = tmp_path / "no" / "such" / "dir.yaml"
    result = CliRunner().invoke(directory_app, ["import-cms", str(CMS_FILE), "--out", str(out)])
    assert result.exit_code == 2
    assert f"error: cannot write {out}" in result.stderr


def test_shared_vendor_sandbox_is_probed_once(real: CmsImport) -> None:
    from probe.directory.schema import targets

    sandboxes = [t for t in targets(real.directory) if t.environment is Environment.SANDBOX]
    urls = [t.base_url for t in sandboxes]
    assert urls.count("https://api.1updemohealthplan.com/r4") == 1
    assert len(urls) == len(set(urls))


def test_dump_is_plain_yaml(real: CmsImport) -> None:
    from probe.directory.schema import dump_directory

    data = yaml.safe_load(dump_directory(real.directory))
    assert list(data) == ["version", "payers"]
