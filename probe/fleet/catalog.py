"""The fleet's endpoints directory (`probe.directory.schema` format) and the secrets file behind it.

Credentials appear in the directory only as ``{secret: KEY}`` references; the values live in
the secrets mapping (written to a mode-0600 YAML file by ``probe fleet serve --secrets-out``).
Both are built from a :class:`FleetPayers` (what ``Fleet.directory()`` and ``Fleet.secrets()``
pass: the fleet itself), so this module does not depend on the app.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Protocol

import yaml

from probe.directory.schema import (
    BackendServicesCredentials,
    BearerCredentials,
    Directory,
    Endpoint,
    EndpointFacts,
    Environment,
    LineOfBusiness,
    LinesOfBusiness,
    MemberAuthorization,
    Payer,
    RefreshTokenCredentials,
    SecretRef,
    TestPatient,
    dump_directory,
)
from probe.fleet.config import FleetConfig, derive_int
from probe.fleet.credentials import PayerCredentials
from probe.fleet.oauth import MEMBER_PASSWORD
from probe.fleet.sites import PayerSite

Credentials = RefreshTokenCredentials | BackendServicesCredentials | BearerCredentials
_LOBS = list(LineOfBusiness)


class FleetPayers(Protocol):
    """What the directory and the secrets are built from (a ``Fleet`` is one)."""

    @property
    def config(self) -> FleetConfig:
        """The fleet config (its seed)."""

    @property
    def sites(self) -> Mapping[str, PayerSite]:
        """Every payer's site, by slug, in payer order."""

    def credentials(self, slug: str) -> PayerCredentials:
        """The fleet client's credentials at this payer (secret values included)."""

    def patients(self, slug: str) -> list[str]:
        """The payer's test patient ids."""


def secret_key(slug: str, name: str) -> str:
    """The secrets-file key of one of a payer's secrets (e.g. ``acme/client_secret``)."""
    return f"{slug}/{name}"


def _token_url_needed(site: PayerSite) -> bool:
    behaviour = site.config.behaviour
    html = behaviour.html_login
    return behaviour.no_smart_config is not None or (html is not None and html.smart_config_too)


def _credentials(fleet: FleetPayers, site: PayerSite) -> Credentials:
    creds = fleet.credentials(site.slug)
    slug = site.slug
    token_url = site.token_url if _token_url_needed(site) else None
    if creds.auth == "bearer":
        return BearerCredentials(kind="bearer", token=SecretRef(secret=secret_key(slug, "token")))
    if creds.auth == "private_key_jwt":
        return BackendServicesCredentials(
            kind="backend_services",
            client_id=creds.client_id,
            private_key=SecretRef(secret=secret_key(slug, "private_key")),
            key_id=creds.key_id,
            algorithm="ES384" if creds.algorithm == "ES384" else "RS384",
            token_url=token_url,
        )
    return RefreshTokenCredentials(
        kind="refresh_token",
        client_id=creds.client_id,
        client_secret=(
            None if creds.auth == "none" else SecretRef(secret=secret_key(slug, "client_secret"))
        ),
        refresh_token=SecretRef(secret=secret_key(slug, "refresh_token")),
        auth_method=creds.auth,
        token_url=token_url,
    )


#: The first member-login redirect port of the fleet's directory (one port per payer after it).
AUTHORIZE_PORT = 18790


def member_secret_key(slug: str, patient: str, name: str) -> str:
    """The secrets-file key of a test member's login (``username`` or ``password``)."""
    return secret_key(slug, f"member/{patient}/{name}")


def with_member_logins(directory: Directory, first_port: int = AUTHORIZE_PORT) -> Directory:
    """The fleet's directory with an ``authorize:`` block on every test patient of each payer
    whose client uses refresh tokens: the member's login by reference to the secrets file
    (:func:`build_secrets` writes the values), redirect port ``first_port`` + the payer's index,
    renewed every 7 days."""
    payers = []
    for index, payer in enumerate(directory.payers):
        endpoints = []
        for endpoint in payer.endpoints:
            creds = endpoint.credentials
            if isinstance(creds, RefreshTokenCredentials) and creds.refresh_token.secret:
                slug = creds.refresh_token.secret.rsplit("/", 1)[0]
                patients = [
                    patient.model_copy(
                        update={
                            "authorize": MemberAuthorization(
                                username=SecretRef(
                                    secret=member_secret_key(slug, patient.id, "username")
                                ),
                                password=SecretRef(
                                    secret=member_secret_key(slug, patient.id, "password")
                                ),
                                redirect_port=first_port + index,
                                every="7d",
                            )
                        }
                    )
                    for patient in endpoint.test_patients
                ]
                endpoint = endpoint.model_copy(update={"test_patients": patients})
            endpoints.append(endpoint)
        payers.append(payer.model_copy(update={"endpoints": endpoints}))
    return directory.model_copy(update={"payers": payers})


def member_login_secrets(directory: Directory) -> dict[str, str]:
    """The test members' logins that the ``authorize:`` blocks of a fleet directory made by
    :func:`with_member_logins` refer to, by key (username: the patient id; the fleet's member
    password)."""
    out: dict[str, str] = {}
    for payer in directory.payers:
        for endpoint in payer.endpoints:
            for patient in endpoint.test_patients:
                block = patient.authorize
                if block is not None and block.username.secret and block.password.secret:
                    out[block.username.secret] = patient.id
                    out[block.password.secret] = MEMBER_PASSWORD
    return out


def build_directory(
    fleet: FleetPayers, secrets_file: str | None = None, *, authorize_port: int | None = None
) -> Directory:
    """Every payer of the fleet as a directory entry, credentials by reference; with
    `authorize_port`, test members sign in through the browser (:func:`with_member_logins`)."""
    seed = fleet.config.seed
    payers = []
    for slug, site in fleet.sites.items():
        config = site.config
        offered = sorted(
            {_LOBS[derive_int(seed, slug, "lob", i) % len(_LOBS)] for i in range(2)},
            key=_LOBS.index,
        )
        patients = [
            TestPatient(label=f"member {j + 1}", id=pid)
            for j, pid in enumerate(fleet.patients(slug))
        ]
        portal = None
        if config.portal != "none":
            portal = f"{site.origin(site.host)}{site.prefix}/developers"
        endpoint = Endpoint(
            environment=Environment.PRODUCTION,
            base_url=site.base_url,
            sandbox_url=site.sandbox_url,
            portal_url=portal,
            credentials=_credentials(fleet, site),
            test_patients=patients,
            facts=config.facts or EndpointFacts(),
        )
        archetypes = ", ".join(config.behaviour.names)
        payers.append(
            Payer(
                name=config.display_name,
                lives=config.lives
                if config.lives is not None
                else 10_000 + derive_int(seed, slug, "lives") % 5_000_000,
                vendor=config.vendor or "probe fleet",
                organization_status=config.organization_status,
                lines_of_business=LinesOfBusiness(offered=offered, supported=offered),
                source=f"probe fleet (archetypes: {archetypes})",
                endpoints=[endpoint],
            )
        )
    directory = Directory(secrets_file=secrets_file, payers=payers)
    return directory if authorize_port is None else with_member_logins(directory, authorize_port)


def build_secrets(fleet: FleetPayers, *, member_logins: bool = False) -> dict[str, str]:
    """The secrets the directory refers to, by key (only those a payer's client uses); with
    `member_logins`, also the test members' logins of :func:`with_member_logins`."""
    out: dict[str, str] = {}
    for slug in fleet.sites:
        creds = fleet.credentials(slug)
        if creds.auth == "bearer":
            out[secret_key(slug, "token")] = creds.bearer_token
        elif creds.auth == "private_key_jwt":
            out[secret_key(slug, "private_key")] = creds.private_key_pem
        else:
            out[secret_key(slug, "refresh_token")] = creds.refresh_token
            if creds.auth != "none":
                out[secret_key(slug, "client_secret")] = creds.client_secret
            for patient in fleet.patients(slug) if member_logins else ():
                out[member_secret_key(slug, patient, "username")] = patient
                out[member_secret_key(slug, patient, "password")] = MEMBER_PASSWORD
    return out


#: The first line of every file `probe fleet serve` writes (directory and secrets): what marks a
#: file the fleet may overwrite at its next start (:func:`fleet_generated`).
GENERATED_MARK = "# Generated by `probe fleet serve`"
DIRECTORY_HEADER = (
    f"{GENERATED_MARK}: the directory of a simulated payer fleet on loopback.\n"
    "# Rewritten each time the fleet starts; not a real payer directory.\n"
)
SECRETS_HEADER = (
    f"{GENERATED_MARK}: the secrets of a simulated payer fleet on loopback (test values).\n"
)


def fleet_generated(path: Path) -> bool:
    """True when `path` is a file `probe fleet serve` wrote (its first line is the mark)."""
    try:
        with path.open("rb") as handle:
            first = handle.readline(200)
    except OSError:
        return False
    return first.startswith(GENERATED_MARK.encode())


def directory_text(directory: Directory) -> str:
    """The fleet's directory as YAML, marked as generated (:data:`DIRECTORY_HEADER`)."""
    return DIRECTORY_HEADER + dump_directory(directory)


def write_secrets(path: Path, secrets: dict[str, str]) -> None:
    """Write the secrets mapping as YAML (marked as generated), readable by the owner only
    (mode 0600)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(SECRETS_HEADER + yaml.safe_dump(secrets, sort_keys=True, width=1000))
