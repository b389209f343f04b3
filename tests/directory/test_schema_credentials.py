"""The plain credential values (probe.directory.credentials, no pydantic) accept and refuse what
the directory schema's models do, with the same first problem, and the directory's models copy
into them field for field."""

from __future__ import annotations

import dataclasses
import itertools
from typing import Any

import pytest
from pydantic import ValidationError

from probe.directory import credentials as plain
from probe.directory import schema

ENV_NAMES = ["TOKEN", "_x9", "9BAD", "has-dash", "", "A B"]
URLS = [None, "https://auth.example/token", "https://user:pw@auth.example/token", "not a url"]
CLIENT_IDS = ["app", ""]


def _outcome(build: Any) -> tuple[str, Any]:
    """('ok', fields) or ('error', 'field: message') for the first problem, as the CLI shows it."""
    try:
        made = build()
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        message = first["msg"].removeprefix("Value error, ")
        return "error", f"{where}: {message}" if where else message
    except plain.CredentialsError as exc:
        return "error", str(exc)
    return "ok", _fields(made)


def _fields(made: Any) -> dict[str, Any]:
    if dataclasses.is_dataclass(made):
        raw = {f.name: getattr(made, f.name) for f in dataclasses.fields(made)}
    else:
        raw = {name: getattr(made, name) for name in type(made).model_fields}
    return {k: _fields(v) if hasattr(v, "describe") else v for k, v in raw.items()}


@pytest.mark.parametrize(
    ("env", "secret"),
    [*itertools.product([*ENV_NAMES, None], [None, "key", ""])],
)
def test_secret_refs_agree(env: str | None, secret: str | None) -> None:
    assert _outcome(lambda: plain.SecretRef(env=env, secret=secret)) == _outcome(
        lambda: schema.SecretRef(env=env, secret=secret)
    )


@pytest.mark.parametrize("env", ENV_NAMES)
def test_bearer_agrees(env: str) -> None:
    assert _outcome(lambda: plain.BearerCredentials(token=plain.SecretRef(env=env))) == _outcome(
        lambda: schema.BearerCredentials(kind="bearer", token=schema.SecretRef(env=env))
    )


@pytest.mark.parametrize(
    ("client_id", "secret", "method", "url", "scope"),
    list(
        itertools.product(
            CLIENT_IDS,
            [None, "SECRET", "9BAD"],
            ["client_secret_basic", "client_secret_post", "none", "private_key_jwt"],
            URLS,
            [None, "patient/*.read"],
        )
    ),
)
def test_refresh_token_agrees(
    client_id: str, secret: str | None, method: str, url: str | None, scope: str | None
) -> None:
    def build(module: Any, **kind: Any) -> Any:
        return module.RefreshTokenCredentials(
            **kind,
            client_id=client_id,
            client_secret=module.SecretRef(env=secret) if secret else None,
            refresh_token=module.SecretRef(env="RT"),
            auth_method=method,
            token_url=url,
            scope=scope,
        )

    assert _outcome(lambda: build(plain)) == _outcome(lambda: build(schema, kind="refresh_token"))


@pytest.mark.parametrize(
    ("client_id", "key_id", "algorithm", "url", "scope"),
    list(
        itertools.product(
            CLIENT_IDS, [None, "k1"], ["RS384", "ES384", "HS256", ""], URLS, ["system/*.read"]
        )
    ),
)
def test_backend_services_agree(
    client_id: str, key_id: str | None, algorithm: str, url: str | None, scope: str
) -> None:
    def build(module: Any, **kind: Any) -> Any:
        return module.BackendServicesCredentials(
            **kind,
            client_id=client_id,
            private_key=module.SecretRef(env="KEY"),
            key_id=key_id,
            algorithm=algorithm,
            token_url=url,
            scope=scope,
        )

    assert _outcome(lambda: build(plain)) == _outcome(
        lambda: build(schema, kind="backend_services")
    )


def test_the_directory_models_copy_into_plain_values() -> None:
    models = [
        schema.BearerCredentials(kind="bearer", token=schema.SecretRef(secret="tok")),
        schema.RefreshTokenCredentials(
            kind="refresh_token",
            client_id="app",
            client_secret=schema.SecretRef(env="S"),
            refresh_token=schema.SecretRef(secret="rt"),
            auth_method="client_secret_post",
            token_url="https://auth.example/token",
            scope="patient/*.read",
        ),
        schema.RefreshTokenCredentials(
            kind="refresh_token",
            client_id="app",
            refresh_token=schema.SecretRef(env="RT"),
            auth_method="none",
        ),
        schema.BackendServicesCredentials(
            kind="backend_services",
            client_id="app",
            private_key=schema.SecretRef(env="KEY"),
            key_id="k1",
            algorithm="ES384",
        ),
    ]
    for model in models:
        copied = plain.plain_credentials(model)
        assert type(copied).__name__ == type(model).__name__
        assert _fields(copied) == _fields(model)
        assert plain.plain_credentials(copied) is copied
    assert plain.plain_credentials(None) is None


def test_what_is_not_credentials_is_refused() -> None:
    class Other:
        kind = "password"

    with pytest.raises(TypeError, match="not credentials: Other of kind 'password'"):
        plain.plain_credentials(Other())


def test_the_secret_refs_describe_themselves_alike() -> None:
    for ref in ({"env": "TOKEN"}, {"secret": "key"}):
        assert plain.SecretRef(**ref).describe() == schema.SecretRef(**ref).describe()
