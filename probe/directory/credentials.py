"""Credential kinds as plain values, for code that uses credentials without loading a directory.

`probe sync` builds its credentials from command-line options and the sync's authorizer
(probe/sync/auth.py) holds them; neither needs pydantic or YAML, which the directory's schema
(probe/directory/schema.py) is built on and which cost a command about a tenth of a second of
start-up. The directory keeps its pydantic models (their validation and error messages are the
loader's); :func:`plain_credentials` turns one of them into the value defined here, with the
same fields. The checks below are the schema's own, with the same messages.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Final, Literal, Protocol
from urllib.parse import urlsplit

AuthMethod = Literal["client_secret_basic", "client_secret_post", "none"]
Algorithm = Literal["RS384", "ES384"]

#: The names an ``{env: NAME}`` reference may give (the schema's pattern).
ENV_NAME_PATTERN: Final = r"^[A-Za-z_][A-Za-z0-9_]*$"
_ENV_NAME = re.compile(ENV_NAME_PATTERN)
AUTH_METHODS: Final = ("client_secret_basic", "client_secret_post", "none")
ALGORITHMS: Final = ("RS384", "ES384")
USERINFO_MESSAGE: Final = (
    "a URL must not carry a user name or password (user:password@host); "
    "put credentials in 'credentials' as {env: VARIABLE} or {secret: KEY}"
)


class CredentialsError(ValueError):
    """Credentials that cannot be used; `field` names where (empty for the whole), `message` why.

    The message is the directory schema's for the same problem (pydantic's wording, without its
    "Value error, " prefix)."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        self.message = message
        super().__init__(f"{field}: {message}" if field else message)


class SecretReference(Protocol):
    """Where a secret comes from, as the directory's pydantic ``SecretRef`` or :class:`SecretRef`
    gives it: exactly one of an environment variable's name and a secrets-file key."""

    @property
    def env(self) -> str | None:
        """The environment variable holding the secret, or None."""

    @property
    def secret(self) -> str | None:
        """The key of the secrets file holding the secret, or None."""

    def describe(self) -> str:
        """A safe description of where the secret lives (never its value)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class SecretRef:
    """Where a secret comes from: an environment variable or a key of the secrets file."""

    env: str | None = None
    secret: str | None = None

    def __post_init__(self) -> None:
        if self.env is not None and not _ENV_NAME.match(self.env):
            raise CredentialsError("env", f"String should match pattern '{ENV_NAME_PATTERN}'")
        if self.secret is not None and not self.secret:
            raise CredentialsError("secret", "String should have at least 1 character")
        if (self.env is None) == (self.secret is None):
            raise CredentialsError(
                "", "give exactly one of 'env' (a variable name) or 'secret' (a key)"
            )

    def describe(self) -> str:
        """A safe description of where the secret lives (never its value)."""
        return f"env:{self.env}" if self.env else f"secrets-file:{self.secret}"


@dataclass(frozen=True, slots=True, kw_only=True)
class BearerCredentials:
    """A static access token."""

    token: SecretRef
    kind: Literal["bearer"] = "bearer"


@dataclass(frozen=True, slots=True, kw_only=True)
class RefreshTokenCredentials:
    """A refresh token exchanged at the token endpoint, for a confidential or public client."""

    client_id: str
    refresh_token: SecretRef
    client_secret: SecretRef | None = None
    auth_method: AuthMethod = "client_secret_basic"
    token_url: str | None = None
    scope: str | None = None
    kind: Literal["refresh_token"] = "refresh_token"

    def __post_init__(self) -> None:
        _check_client_id(self.client_id)
        if self.auth_method not in AUTH_METHODS:
            raise CredentialsError("auth_method", _one_of(AUTH_METHODS))
        _check_token_url(self.token_url)
        if self.auth_method != "none" and self.client_secret is None:
            raise CredentialsError("", f"auth_method {self.auth_method} needs client_secret")


@dataclass(frozen=True, slots=True, kw_only=True)
class BackendServicesCredentials:
    """SMART Backend Services: client_credentials with a private_key_jwt assertion."""

    client_id: str
    private_key: SecretRef
    key_id: str | None = None
    algorithm: Algorithm = "RS384"
    token_url: str | None = None
    scope: str = "system/*.read"
    kind: Literal["backend_services"] = "backend_services"

    def __post_init__(self) -> None:
        _check_client_id(self.client_id)
        if self.algorithm not in ALGORITHMS:
            raise CredentialsError("algorithm", _one_of(ALGORITHMS))
        _check_token_url(self.token_url)


Credentials = BearerCredentials | RefreshTokenCredentials | BackendServicesCredentials


def url_userinfo_problem(value: str) -> str | None:
    """Why a URL may not be used because it carries credentials (``user:password@host``)."""
    return USERINFO_MESSAGE if "@" in urlsplit(value).netloc else None


def plain_credentials(credentials: Any) -> Credentials | None:
    """`credentials` as one of this module's values: the directory's pydantic model of the same
    kind is copied field by field (already validated by the loader); None stays None."""
    if credentials is None or isinstance(
        credentials, BearerCredentials | RefreshTokenCredentials | BackendServicesCredentials
    ):
        return credentials
    kind = credentials.kind
    if kind == "bearer":
        return BearerCredentials(token=_plain_ref(credentials.token))
    if kind == "refresh_token":
        secret = credentials.client_secret
        return RefreshTokenCredentials(
            client_id=credentials.client_id,
            refresh_token=_plain_ref(credentials.refresh_token),
            client_secret=None if secret is None else _plain_ref(secret),
            auth_method=credentials.auth_method,
            token_url=credentials.token_url,
            scope=credentials.scope,
        )
    if kind == "backend_services":
        return BackendServicesCredentials(
            client_id=credentials.client_id,
            private_key=_plain_ref(credentials.private_key),
            key_id=credentials.key_id,
            algorithm=credentials.algorithm,
            token_url=credentials.token_url,
            scope=credentials.scope,
        )
    raise TypeError(f"not credentials: {type(credentials).__name__} of kind {kind!r}")


def _plain_ref(ref: SecretReference) -> SecretRef:
    return ref if isinstance(ref, SecretRef) else SecretRef(env=ref.env, secret=ref.secret)


def _check_client_id(value: str) -> None:
    if not value:
        raise CredentialsError("client_id", "String should have at least 1 character")


def _check_token_url(value: str | None) -> None:
    problem = None if value is None else url_userinfo_problem(value)
    if problem is not None:
        raise CredentialsError("token_url", problem)


def _one_of(values: tuple[str, ...]) -> str:
    quoted = [f"'{v}'" for v in values]
    return f"Input should be {', '.join(quoted[:-1])} or {quoted[-1]}"
