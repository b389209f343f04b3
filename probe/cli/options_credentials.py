"""Building credentials from `probe sync` command-line options (references only, no values)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from probe.directory.credentials import Credentials


def credentials_from_options(
    *,
    token_env: str | None,
    refresh_token_env: str | None,
    client_id: str | None,
    client_secret_env: str | None,
    auth_method: str,
    private_key_env: str | None,
    key_id: str | None,
    algorithm: str,
    scope: str | None,
    token_url: str | None,
) -> Credentials | None:
    """The credentials the options describe; ValueError with a usage message when inconsistent.

    They are the plain values of probe.directory.credentials, checked as the directory's schema
    checks its own (same messages), without importing pydantic or YAML."""
    from probe.directory.credentials import (
        BackendServicesCredentials,
        BearerCredentials,
        CredentialsError,
        RefreshTokenCredentials,
        SecretRef,
    )

    kinds = [
        k
        for k, v in (
            ("--token-env", token_env),
            ("--refresh-token-env", refresh_token_env),
            ("--private-key-env", private_key_env),
        )
        if v
    ]
    if len(kinds) > 1:
        raise ValueError(f"choose one credential kind, not {' and '.join(kinds)}")
    try:
        if token_env:
            return BearerCredentials(token=SecretRef(env=token_env))
        if refresh_token_env:
            if not client_id:
                raise ValueError("--refresh-token-env needs --client-id")
            return RefreshTokenCredentials(
                client_id=client_id,
                client_secret=SecretRef(env=client_secret_env) if client_secret_env else None,
                refresh_token=SecretRef(env=refresh_token_env),
                auth_method=auth_method,  # type: ignore[arg-type]  # checked when built
                token_url=token_url,
                scope=scope,
            )
        if private_key_env:
            if not client_id:
                raise ValueError("--private-key-env needs --client-id")
            return BackendServicesCredentials(
                client_id=client_id,
                private_key=SecretRef(env=private_key_env),
                key_id=key_id,
                algorithm=algorithm,  # type: ignore[arg-type]  # checked when built
                token_url=token_url,
                scope=scope or "system/*.read",
            )
    except CredentialsError as exc:
        raise ValueError(str(exc)) from None
    return None


# The credential options shared by `probe sync` and `probe prerelease` (typer parameter types).
TokenEnv = Annotated[str | None, typer.Option(help="env var holding a static access token")]
RefreshTokenEnv = Annotated[str | None, typer.Option(help="env var holding a refresh token")]
ClientId = Annotated[str | None, typer.Option(help="OAuth client id")]
ClientSecretEnv = Annotated[str | None, typer.Option(help="env var holding the client secret")]
AuthMethod = Annotated[str, typer.Option(help="client_secret_basic, client_secret_post or none")]
PrivateKeyEnv = Annotated[
    str | None, typer.Option(help="env var holding a PEM private key (Backend Services)")
]
KeyId = Annotated[str | None, typer.Option(help="kid of the private key")]
Algorithm = Annotated[str, typer.Option(help="RS384 or ES384")]
Scope = Annotated[str | None, typer.Option(help="scope to request")]
TokenUrl = Annotated[
    str | None, typer.Option(help="token endpoint (default: from SMART configuration)")
]
TokenStorePath = Annotated[
    Path | None, typer.Option(help="YAML file keeping rotated refresh tokens")
]
PageSize = Annotated[int, typer.Option(min=1, max=1000, help="_count per page")]
NoValidate = Annotated[
    bool, typer.Option("--no-validate", help="skip R4 validation of each resource")
]
