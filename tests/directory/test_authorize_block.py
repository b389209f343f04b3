"""A test patient's `authorize:` block: the member's browser login that `probe run` renews."""

from __future__ import annotations

from pathlib import Path

import pytest

from probe.directory.schema import (
    DirectoryError,
    RefreshTokenCredentials,
    dump_directory,
    parse_directory,
)

P = Path("endpoints.yaml")

REFRESH = """\
        credentials:
          kind: refresh_token
          client_id: app
          client_secret: {env: APP_SECRET}
          refresh_token: {secret: acme_refresh}
"""


def directory_text(authorize: str, credentials: str = REFRESH) -> str:
    return (
        "secrets_file: secrets.yaml\n"
        "payers:\n"
        "  - name: Acme Health\n"
        "    endpoints:\n"
        "      - base_url: https://fhir.acme.example/r4\n"
        f"{credentials}"
        "        test_patients:\n"
        "          - label: member 1\n"
        "            id: pat-1\n"
        f"{authorize}"
    )


GOOD_BLOCK = """\
            authorize:
              username: {secret: acme_member_user}
              password: {env: ACME_MEMBER_PASSWORD}
              redirect_port: 18790
              recipe: recipes/acme.yaml
              every: 12h
              scope: launch/patient offline_access patient/*.read
"""


def problems(text: str) -> list[str]:
    with pytest.raises(DirectoryError) as info:
        parse_directory(text, P)
    return info.value.problems


def test_a_good_block_is_read_with_its_period() -> None:
    directory = parse_directory(directory_text(GOOD_BLOCK), P)
    endpoint = directory.payers[0].endpoints[0]
    assert isinstance(endpoint.credentials, RefreshTokenCredentials)
    block = endpoint.test_patients[0].authorize
    assert block is not None
    assert block.username.secret == "acme_member_user"
    assert block.password.env == "ACME_MEMBER_PASSWORD"
    assert block.redirect_port == 18790
    assert block.recipe == "recipes/acme.yaml"
    assert block.every_seconds == 12 * 3600
    # It survives a dump and a reload.
    again = parse_directory(dump_directory(directory), P)
    assert again.payers[0].endpoints[0].test_patients[0].authorize == block


@pytest.mark.parametrize(("every", "seconds"), [("7d", 7 * 86400), ("2w", 14 * 86400)])
def test_every_defaults_to_seven_days_and_takes_weeks(every: str, seconds: int) -> None:
    block_text = (
        "            authorize:\n"
        "              username: {env: U}\n"
        "              password: {env: P}\n"
        "              redirect_port: 18790\n"
    )
    if every != "7d":
        block_text += f"              every: {every}\n"
    block = parse_directory(directory_text(block_text), P).payers[0].endpoints[0]
    assert block.test_patients[0].authorize is not None
    assert block.test_patients[0].authorize.every_seconds == seconds


def test_a_literal_password_is_refused_by_file_line_and_field() -> None:
    block_text = (
        "            authorize:\n"
        "              username: {env: U}\n"
        "              password: hunter2-literal\n"
        "              redirect_port: 18790\n"
    )
    found = problems(directory_text(block_text))
    assert found == [
        "endpoints.yaml:16: payers.0.endpoints.0.test_patients.0.authorize.password: secrets "
        "must not be written in this file; use {env: VARIABLE} or {secret: KEY} with secrets_file"
    ]
    assert not any("hunter2-literal" in p for p in found)


def test_a_literal_username_and_a_bad_period_are_refused() -> None:
    block_text = (
        "            authorize:\n"
        "              username: member-one\n"
        "              password: {env: P}\n"
        "              redirect_port: 70000\n"
        "              every: 3 days\n"
    )
    found = problems(directory_text(block_text))
    where = "payers.0.endpoints.0.test_patients.0.authorize"
    assert [p.split(": ", 2)[:2] for p in found] == [
        ["endpoints.yaml:15", f"{where}.username"],
        ["endpoints.yaml:17", f"{where}.redirect_port"],
        ["endpoints.yaml:18", f"{where}.every"],
    ]


def test_authorize_needs_refresh_token_credentials() -> None:
    bearer = "        credentials: {kind: bearer, token: {env: ACME_TOKEN}}\n"
    found = problems(directory_text(GOOD_BLOCK, credentials=bearer))
    assert found == [
        "endpoints.yaml:11: payers.0.endpoints.0.test_patients.0.authorize: authorize needs the "
        "endpoint's credentials to be of kind refresh_token (client_id, client_secret, "
        "auth_method), not bearer"
    ]


def test_authorize_without_credentials_is_refused() -> None:
    found = problems(directory_text(GOOD_BLOCK, credentials=""))
    assert len(found) == 1
    assert found[0].startswith("endpoints.yaml:10: payers.0.endpoints.0.test_patients.0.authorize:")
    assert found[0].endswith("not none")
