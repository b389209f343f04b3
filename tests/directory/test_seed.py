"""`probe directory seed`: payers.csv rows merged per payer, and the committed endpoints.yaml."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from probe.cli.directory import directory_app
from probe.directory.records import ImportFormatError
from probe.directory.schema import Directory, load_directory, parse_directory, targets
from probe.directory.seed import Seed, render_seed, seed_from_csv

REPO = Path(__file__).resolve().parents[2]
SHARED = Path(__file__).resolve().parents[3] / "shared"
PAYERS_CSV = SHARED / "data" / "payers.csv"
HEADER = "payer,base_url,sandbox_url,vendor,portal_url,source\n"


@pytest.fixture(scope="module")
def real() -> Seed:
    if not PAYERS_CSV.is_file():
        pytest.fail(f"{PAYERS_CSV} is missing: CI has ../shared beside the clone")
    return seed_from_csv(PAYERS_CSV)


def endpoints(directory: Directory, name: str) -> list[tuple[str, str, str | None]]:
    payer = next(p for p in directory.payers if p.name == name)
    return [(e.environment.value, e.base_url, e.sandbox_url) for e in payer.endpoints]


def write_csv(tmp_path: Path, *rows: str) -> Path:
    path = tmp_path / "payers.csv"
    path.write_text(HEADER + "".join(r + "\n" for r in rows), encoding="utf-8")
    return path


# ---------------------------------------------------------------------------------------------
# The real payers.csv
# ---------------------------------------------------------------------------------------------


def test_real_csv_counts(real: Seed) -> None:
    directory = real.directory
    assert real.rows_read == 97
    assert len(real.payers) == 86
    assert len(directory.payers) == 74
    assert sum(len(p.endpoints) for p in directory.payers) == 87
    # 87 endpoints plus their paired sandbox URLs; a vendor sandbox shared by payers counts once
    assert len(targets(directory)) == 106
    missing = [p.name for p in real.payers if p.payer is None]
    assert missing == [
        "BCBS Massachusetts",
        "BCBS North Dakota",
        "Blue Shield CA",
        "CareFirst BCBS",
        "Centene",
        "Florida Blue (BCBS FL)",
        "HCSC (BCBS IL, MT, NM, OK, TX)",
        "Highmark BCBS",
        "Horizon BCBS NJ",
        "Independence Blue Cross",
        "Indiana Medicaid (FFS)",
        "Premera Blue Cross",
    ]
    assert len(real.issues) == 27
    assert sum(1 for i in real.issues if i.row_imported) == 12


def test_real_csv_rows_of_one_payer_are_merged(real: Seed) -> None:
    merged = {p.name: p.rows for p in real.payers if len(p.rows) > 1}
    assert merged == {
        "Aetna": [2, 54, 60],
        "BCBS Minnesota": [8, 53],
        "BCBS Tennessee": [18, 50],
        "Cigna Healthcare": [12, 51, 55],
        "Humana Inc.": [31, 52, 56],
        "Kaiser Permanente": [27, 48, 57],
        "Molina Healthcare": [28, 49],
    }
    directory = real.directory
    # identical rows under two spellings: one endpoint, base + sandbox paired
    assert endpoints(directory, "BCBS Minnesota") == [
        (
            "production",
            "https://api.bluecrossmn.com/fhir",
            "https://preview-api.bluecrossmn.com/fhir",
        )
    ]
    # distinct URLs from three sources: each its own endpoint, trailing slashes gone
    assert endpoints(directory, "Aetna") == [
        ("production", "https://apif1.aetna.com/fhir/v1/patientaccess", None),
        ("production", "https://apif1.aetna.com/fhir/v2/patientaccess", None),
        ("sandbox", "https://vteapif1.aetna.com/fhirdemo/v1/patientaccess", None),
        ("sandbox", "https://vteapif1.aetna.com/fhirdemo/v1", None),
    ]
    # row 12 gives v1-devportal as production and sandbox; row 51 as the sandbox of v1
    assert endpoints(directory, "Cigna Healthcare") == [
        ("production", "https://fhir.cigna.com/PatientAccess/v1", None),
        ("sandbox", "https://fhir.cigna.com/PatientAccess/v1-devportal", None),
        ("sandbox", "https://p-hi2.digitaledge.cigna.com/PatientAccess/v1-devportal", None),
    ]
    cigna = [i for i in real.issues if i.row == 12]
    assert [(i.column, i.reason) for i in cigna] == [
        ("base_url", "row 51 lists it as a sandbox: used as a sandbox, not production")
    ]
    kaiser = next(p for p in directory.payers if p.name == "Kaiser Permanente")
    assert len(kaiser.endpoints) == 1
    assert kaiser.source is not None and kaiser.source.count(" | ") == 2  # all three sources


def test_real_csv_vendor_is_clean_and_annotation_kept(real: Seed) -> None:
    payers = {p.name: p for p in real.directory.payers}
    anthem = payers["Anthem BCBS - Patient"]
    assert anthem.vendor == "Patient360"
    assert anthem.source is not None and anthem.source.endswith(
        " | vendor: Patient360 (bcbsdirect/anthem P360Member platform) [inferred from host]"
    )
    assert payers["UnitedHealthcare"].vendor == "Optum"
    assert payers["BCBS Louisiana"].vendor == "Onyx"
    assert payers["CareEvolution (vendor sandbox used by payers)"].vendor == "CareEvolution"
    assert payers["Aetna"].vendor is None
    for payer in real.directory.payers:
        assert payer.vendor is None or ("[" not in payer.vendor and "(" not in payer.vendor)
        assert payer.lives is None and payer.organization_status.value == "none"


def test_real_csv_cms_rows_are_cleaned(real: Seed) -> None:
    directory = real.directory
    assert endpoints(directory, "Alabama Medicaid (FFS)") == [
        (
            "production",
            "https://fhir.alabamaonehealthrecord.com/csp/healthshare/hsods/fhir/r4",
            "https://fhir.stage.alabamaonehealthrecord.com/csp/healthshare/hsods/fhir/r4",
        )
    ]
    assert endpoints(directory, "Arkansas Medicaid (FFS)") == [
        ("production", "https://fite.ar-prd.gw02.abacusinsights.ai", None),
        ("production", "https://slap.ar-prd.gw02.abacusinsights.ai", None),
    ]
    assert endpoints(directory, "Texas Medicaid (FFS)") == [
        (
            "production",
            "https://cmsinterop.tmhp.com/tmhp/fhir/R4",
            "https://cmsinterop-uat.tmhp.com/tmhp/fhir/R4",
        )
    ]
    assert endpoints(directory, "Missouri Medicaid (FFS)")[0][1] == (
        "https://iox.mohealthnet.conduent.com/patientAccess/api/R4"
    )
    by_row = {(i.row, i.column, i.value): i.reason for i in real.issues}
    assert by_row[(64, "sandbox_url", "Yes")] == "answers 'Yes' instead of giving a URL"
    assert by_row[(17, "sandbox_url", "https://apiportal.bcbsnd.com/")] == (
        "the developer portal (a web page), not a FHIR base URL"
    )
    assert by_row[(95, "sandbox_url", "https://sandbox.mhbapp.com/index.html")] == (
        "a web page or document (index.html), not a FHIR base URL"
    )
    wyoming = next(p for p in directory.payers if p.name == "Wyoming Medicaid (FFS)")
    assert (
        wyoming.endpoints[0].portal_url == "https://arp.wy-np.fhir.mhbapp.com/app-registration.html"
    )


def test_real_csv_output_is_deterministic_and_loads(real: Seed, tmp_path: Path) -> None:
    text = render_seed(real, "../shared/data/payers.csv")
    assert text == render_seed(seed_from_csv(PAYERS_CSV), "../shared/data/payers.csv")
    path = tmp_path / "endpoints.yaml"
    path.write_text(text, encoding="utf-8")
    assert load_directory(path) == real.directory
    assert (
        "# CSV rows 2, 54, 60: Aetna; Aetna (sandbox per plaidhealth); Aetna (v2 patient access)"
        in text
    )
    assert (
        "# - BCBS Massachusetts (CSV row 14): developer portal https://developer.bluecrossma.com/interops-fhir"
        in text
    )
    assert "credentials:" not in text


def test_cli_seed_out_and_stdout(tmp_path: Path) -> None:
    out = tmp_path / "endpoints.yaml"
    runner = CliRunner()
    result = runner.invoke(directory_app, ["seed", str(PAYERS_CSV), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        f"payers.csv {PAYERS_CSV}: 97 rows naming 86 payers",
        "seeded: 74 payers, 87 endpoints, 45 sandbox base URLs",
        "not seeded: 12 payers without a usable base URL; 12 values ignored (report on stderr)",
        f"wrote {out}",
    ]
    assert "Values of" in result.stderr and "Traceback" not in result.stderr
    to_stdout = runner.invoke(directory_app, ["seed", str(PAYERS_CSV)])
    assert to_stdout.exit_code == 0
    assert to_stdout.stdout == out.read_text(encoding="utf-8")


# ---------------------------------------------------------------------------------------------
# The committed endpoints.yaml
# ---------------------------------------------------------------------------------------------


def test_committed_endpoints_yaml_loads_and_matches_the_seed(real: Seed) -> None:
    path = REPO / "endpoints.yaml"
    directory = load_directory(path)
    assert [p.name for p in directory.payers] == [p.name for p in real.directory.payers]
    text = path.read_text(encoding="utf-8")
    assert "docs/directory.md" in text
    assert (
        "Generated by `probe directory seed ../shared/data/payers.csv`, then hand-reviewed" in text
    )
    assert all(e.credentials is None for p in directory.payers for e in p.endpoints)
    # the review's edits: bare 1upHealth hosts given their /r4 base
    for name in ("Colorado", "New York", "Oklahoma", "Oregon"):
        payer = next(p for p in directory.payers if p.name == f"{name} Medicaid (FFS)")
        assert payer.endpoints[0].base_url.endswith(".com/r4")
    result = CliRunner().invoke(directory_app, ["validate", str(path)])
    assert result.exit_code == 0
    assert result.stdout == (
        f"{path}: valid: 74 payers, 87 endpoints, 45 sandbox URLs, 0 with credentials\n"
    )


# ---------------------------------------------------------------------------------------------
# Synthetic CSVs
# ---------------------------------------------------------------------------------------------


def test_qualified_names_merge_with_the_bare_name_only(tmp_path: Path) -> None:
    path = write_csv(
        tmp_path,
        "Acme,https://a.example/fhir/,https://sb.acme.example/fhir/,,https://dev.acme.example,src1",
        "Acme (recorded calls),https://a.example/fhir,,,,src2",
        "Acme Inc.,https://a.example/fhir/metadata,,,,src1",
        "Zed Plan (FFS),https://z.example/r4/Patient,,,,src3",
    )
    seed = seed_from_csv(path)
    assert [(p.name, p.rows) for p in seed.payers] == [("Acme", [2, 3, 4]), ("Zed Plan (FFS)", [5])]
    assert endpoints(seed.directory, "Acme") == [
        ("production", "https://a.example/fhir", "https://sb.acme.example/fhir")
    ]
    acme = seed.directory.payers[0]
    assert acme.source == "src1 | src2"
    assert acme.endpoints[0].portal_url == "https://dev.acme.example"
    assert endpoints(seed.directory, "Zed Plan (FFS)") == [
        ("production", "https://z.example/r4", None)
    ]


def test_same_row_production_and_sandbox_kept_as_production(tmp_path: Path) -> None:
    seed = seed_from_csv(write_csv(tmp_path, "Acme,https://a.example/r4,https://a.example/r4/,,,s"))
    assert endpoints(seed.directory, "Acme") == [("production", "https://a.example/r4", None)]
    assert [i.reason for i in seed.issues] == [
        "same as this row's production base URL: kept as production only"
    ]


def test_payer_without_urls_is_listed_in_a_comment(tmp_path: Path) -> None:
    seed = seed_from_csv(
        write_csv(
            tmp_path, "Acme,https://a.example/r4,,,,s", "Nobody,,TBD,,https://dev.nobody.example,s"
        )
    )
    text = render_seed(seed, "payers.csv")
    assert "# - Nobody (CSV row 3): developer portal https://dev.nobody.example" in text
    assert [p.name for p in parse_directory(text, Path("x")).payers] == ["Acme"]
    assert [(i.row, i.value, i.reason, i.row_imported) for i in seed.issues] == [
        (3, "TBD", "to be determined (TBD): no URL yet", False)
    ]


def test_nothing_seeded_still_loads(tmp_path: Path) -> None:
    seed = seed_from_csv(write_csv(tmp_path, "Nobody,,,,,s"))
    text = render_seed(seed, "payers.csv")
    assert "payers: []" in text
    assert parse_directory(text, Path("x")).payers == []


def test_quoted_multi_url_cells_and_bom(tmp_path: Path) -> None:
    path = tmp_path / "payers.csv"
    body = (
        HEADER
        + '"Acme","https://a.example/ https://b.example/","\u00a0https://sb.example/r4/metadata",,,"s"\n'
    )
    path.write_bytes(b"\xef\xbb\xbf" + body.encode("utf-8"))
    seed = seed_from_csv(path)
    assert endpoints(seed.directory, "Acme") == [
        ("production", "https://a.example", None),
        ("production", "https://b.example", None),
        ("sandbox", "https://sb.example/r4", None),
    ]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "the file is empty"),
        (b"name,url\nAcme,https://a.example\n", "missing column(s) payer, base_url, sandbox_url"),
        (b"\x00\x01\x02", "binary data, not a CSV file"),
    ],
)
def test_bad_csv_exits_2(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "payers.csv"
    path.write_bytes(content)
    with pytest.raises(ImportFormatError, match=message.replace("(", r"\(").replace(")", r"\)")):
        seed_from_csv(path)
    result = CliRunner().invoke(directory_app, ["seed", str(path)])
    assert result.exit_code == 2
    assert message in result.stderr and result.stdout == "" and "Traceback" not in result.stderr


def test_row_without_a_payer_name_is_reported(tmp_path: Path) -> None:
    seed = seed_from_csv(
        write_csv(tmp_path, ",https://a.example/r4,,,,s", "Acme,https://b.example,,,,s")
    )
    assert [p.name for p in seed.directory.payers] == ["Acme"]
    assert [(i.row, i.column, i.reason, i.row_imported) for i in seed.issues] == [
        (2, "payer", "no payer name", False)
    ]
