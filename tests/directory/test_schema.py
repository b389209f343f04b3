"""The endpoints.yaml schema: problems by line and field, targets() flattening, dump/load."""

from __future__ import annotations

from pathlib import Path

import pytest

from probe.directory.schema import (
    BackendServicesCredentials,
    BearerCredentials,
    Directory,
    DirectoryError,
    Endpoint,
    Environment,
    Payer,
    RefreshTokenCredentials,
    SecretRef,
    dump_directory,
    load_directory,
    parse_directory,
    targets,
)

P = Path("endpoints.yaml")


def problems(text: str) -> list[str]:
    with pytest.raises(DirectoryError) as info:
        parse_directory(text, P)
    assert str(info.value).startswith(f"{P}: {len(info.value.problems)} problem(s)")
    return info.value.problems


GOOD = """\
version: 1
secrets_file: secrets.yaml
payers:
  - name: Acme Health
    vendor: Onyx
    endpoints:
      - base_url: https://fhir.acme.example/r4/
        sandbox_url: https://sandbox.acme.example/r4
        credentials:
          kind: refresh_token
          client_id: probe-client
          client_secret: {secret: acme_client_secret}
          refresh_token: {env: ACME_REFRESH_TOKEN}
"""


def test_good_file_parses_and_normalises_trailing_slash() -> None:
    directory = parse_directory(GOOD, P)
    endpoint = directory.payers[0].endpoints[0]
    assert endpoint.base_url == "https://fhir.acme.example/r4"
    assert isinstance(endpoint.credentials, RefreshTokenCredentials)
    assert endpoint.credentials.refresh_token.describe() == "env:ACME_REFRESH_TOKEN"


def test_several_problems_at_once_in_line_order() -> None:
    text = """\
version: 1
payers:
  - name: Acme
    endpoints:
      - base_url: ftp://x.example
        environment: staging
        credentials:
          kind: bearer
          token: abc123
  - name: Acme
    endpoints:
      - base_url: https://ok.example/fhir
  - name: Beta
    lives: -3
    colour: blue
    endpoints: []
"""
    assert problems(text) == [
        "endpoints.yaml:5: payers.0.endpoints.0.base_url: must be an absolute http(s) URL",
        "endpoints.yaml:6: payers.0.endpoints.0.environment: Input should be 'production' or 'sandbox'",
        "endpoints.yaml:9: payers.0.endpoints.0.credentials.token: secrets must not be written "
        "in this file; use {env: VARIABLE} or {secret: KEY} with secrets_file",
        "endpoints.yaml:10: payers.1.name: payer name 'Acme' appears twice (first at line 3)",
        "endpoints.yaml:14: payers.2.lives: Input should be greater than or equal to 0",
        "endpoints.yaml:15: payers.2.colour: Extra inputs are not permitted",
        "endpoints.yaml:16: payers.2.endpoints: List should have at least 1 item after validation, not 0",
    ]


@pytest.mark.parametrize(
    ("credentials", "field"),
    [
        ("{kind: bearer, token: eyJhbGciOi}", "token"),
        (
            "{kind: refresh_token, client_id: c, client_secret: s3cret, refresh_token: {env: RT}}",
            "client_secret",
        ),
        (
            "{kind: backend_services, client_id: c, private_key: '-----BEGIN PRIVATE KEY-----'}",
            "private_key",
        ),
    ],
)
def test_inline_secret_refused_once(credentials: str, field: str) -> None:
    text = f"payers:\n  - name: A\n    endpoints:\n      - base_url: https://a.example\n        credentials: {credentials}\n"
    found = problems(text)
    assert found == [
        f"endpoints.yaml:5: payers.0.endpoints.0.credentials.{field}: secrets must not be "
        "written in this file; use {env: VARIABLE} or {secret: KEY} with secrets_file"
    ]


def test_every_credential_kind_by_reference() -> None:
    text = """\
secrets_file: ~/.config/probe/secrets.yaml
payers:
  - name: A
    endpoints:
      - base_url: https://a.example/fhir
        credentials: {kind: bearer, token: {env: A_TOKEN}}
      - base_url: https://b.example/fhir
        credentials:
          kind: refresh_token
          client_id: app
          auth_method: none
          refresh_token: {secret: b_refresh}
      - base_url: https://c.example/fhir
        credentials:
          kind: backend_services
          client_id: app
          private_key: {secret: c_key}
          algorithm: ES384
"""
    kinds = [e.credentials for e in parse_directory(text, P).payers[0].endpoints]
    assert isinstance(kinds[0], BearerCredentials)
    assert isinstance(kinds[1], RefreshTokenCredentials)
    assert isinstance(kinds[2], BackendServicesCredentials)
    assert kinds[2].private_key.describe() == "secrets-file:c_key"


def test_secret_reference_needs_exactly_one_source() -> None:
    text = "payers:\n  - name: A\n    endpoints:\n      - base_url: https://a.example\n        credentials: {kind: bearer, token: {env: X, secret: y}}\n"
    assert problems(text) == [
        "endpoints.yaml:5: payers.0.endpoints.0.credentials.token: give exactly one of 'env' "
        "(a variable name) or 'secret' (a key)"
    ]


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("not a url", "must be an absolute http(s) URL"),
        ("https://a.example/fhir?x=1", "a FHIR base URL has no query or fragment"),
        ("https:///fhir", "must be an absolute http(s) URL"),
    ],
)
def test_bad_base_url(url: str, message: str) -> None:
    text = f"payers:\n  - name: A\n    endpoints:\n      - base_url: '{url}'\n"
    assert problems(text) == [f"endpoints.yaml:4: payers.0.endpoints.0.base_url: {message}"]


def test_bad_enum_values() -> None:
    text = """\
payers:
  - name: A
    organization_status: Maybe
    lines_of_business: {offered: [dental]}
    endpoints:
      - base_url: https://a.example
"""
    found = problems(text)
    assert found[0].startswith(
        "endpoints.yaml:3: payers.0.organization_status: Input should be 'Live'"
    )
    assert found[1].startswith(
        "endpoints.yaml:4: payers.0.lines_of_business.offered.0: Input should be 'commercial'"
    )
    assert len(found) == 2


def test_yaml_syntax_error_has_its_line() -> None:
    text = "version: 1\npayers:\n  - name: A\n    endpoints: [\n  oops: }\n"
    (found,) = problems(text)
    assert found.startswith("endpoints.yaml:5: YAML syntax: ")


def test_duplicate_yaml_key_is_reported() -> None:
    text = "payers:\n  - name: A\n    endpoints:\n      - base_url: https://a.example\n        base_url: https://b.example\n"
    assert problems(text) == ["endpoints.yaml:5: payers.0.endpoints.0.base_url: key written twice"]


@pytest.mark.parametrize("text", ["- a\n- b\n", "just a string\n", "# comment\n42\n"])
def test_top_level_must_be_a_mapping(text: str) -> None:
    (found,) = problems(text)
    assert found.endswith("(top level): expected a mapping with 'payers'")


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n"])
def test_empty_file_is_an_error(text: str) -> None:
    assert problems(text) == [
        "endpoints.yaml:1: (top level): the file is empty; expected a mapping with 'payers'"
    ]


def test_explicit_empty_payer_list_is_valid() -> None:
    assert parse_directory("version: 1\npayers: []\n", P).payers == []


def test_load_directory_reads_a_bom_file(tmp_path: Path) -> None:
    path = tmp_path / "endpoints.yaml"
    path.write_bytes("\ufeff".encode() + GOOD.encode())
    assert load_directory(path).payers[0].name == "Acme Health"


def test_load_directory_errors_name_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(DirectoryError) as info:
        load_directory(missing)
    assert info.value.problems[0].startswith(f"{missing}: cannot read")
    latin1 = tmp_path / "latin1.yaml"
    latin1.write_bytes(b"payers:\n  - name: Caf\xe9\n")
    with pytest.raises(DirectoryError) as info:
        load_directory(latin1)
    assert info.value.problems == [f"{latin1}: not UTF-8 text"]


def _payer(name: str, *endpoints: Endpoint) -> Payer:
    return Payer(name=name, endpoints=list(endpoints))


def test_targets_flatten_sandbox_urls_and_deduplicate() -> None:
    directory = Directory(
        payers=[
            _payer(
                "A",
                Endpoint(base_url="https://a.example/r4", sandbox_url="https://sb.example/r4"),
                Endpoint(environment=Environment.SANDBOX, base_url="https://a-sb.example/r4"),
            ),
            # the same shared vendor sandbox named by a second payer: probed once
            _payer(
                "B", Endpoint(base_url="https://b.example/r4", sandbox_url="https://sb.example/r4")
            ),
            # the same URL in production and as a sandbox: two targets (different environments)
            _payer("C", Endpoint(base_url="https://sb.example/r4")),
        ]
    )
    found = [(t.payer.name, t.environment.value, t.base_url) for t in targets(directory)]
    assert found == [
        ("A", "production", "https://a.example/r4"),
        ("A", "sandbox", "https://sb.example/r4"),
        ("A", "sandbox", "https://a-sb.example/r4"),
        ("B", "production", "https://b.example/r4"),
        ("C", "production", "https://sb.example/r4"),
    ]
    assert targets(directory)[1].key == "sandbox:https://sb.example/r4"
    assert targets(directory)[1].endpoint.base_url == "https://a.example/r4"


def test_dump_then_load_round_trip(tmp_path: Path) -> None:
    directory = parse_directory(GOOD, P)
    text = dump_directory(directory)
    assert text.startswith("version: 1\n")
    assert "organization_status" not in text  # defaults are omitted
    path = tmp_path / "out.yaml"
    path.write_text(text, encoding="utf-8")
    assert load_directory(path) == directory


def test_dump_keeps_references_never_values() -> None:
    directory = Directory(
        payers=[
            _payer(
                "A",
                Endpoint(
                    base_url="https://a.example",
                    credentials=BearerCredentials(kind="bearer", token=SecretRef(env="A_TOKEN")),
                ),
            )
        ]
    )
    text = dump_directory(directory)
    assert "      token:\n        env: A_TOKEN\n" in text
    assert parse_directory(text, P) == directory


def test_the_documented_full_example_is_valid() -> None:
    docs = (Path(__file__).resolve().parents[2] / "docs" / "directory.md").read_text(
        encoding="utf-8"
    )
    example = docs.split("### A full example\n\n```yaml\n", 1)[1].split("```", 1)[0]
    directory = parse_directory(example, P)
    kinds = [e.credentials.kind for p in directory.payers for e in p.endpoints if e.credentials]
    assert kinds == ["refresh_token", "bearer", "backend_services"]
    assert [t.key for t in targets(directory)] == [
        "production:https://fhir.example-health.com/r4",
        "sandbox:https://sandbox.fhir.example-health.com/r4",
        "sandbox:https://demo.example-health.com/fhir",
        "production:https://api.example-medicaid.gov/fhir",
    ]
