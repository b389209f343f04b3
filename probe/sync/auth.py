"""Access tokens for a sync: static bearer, refresh-token grant, SMART Backend Services.

Tokens are refreshed before they expire and once after a 401. Client secrets and tokens are
sent only to the token endpoint, which must be configured explicitly or share the FHIR base
URL's origin; a token URL read from a server's document is untrusted input.
"""

from __future__ import annotations

import base64
import math
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeAlias
from urllib.parse import quote, urlencode

from probe.directory.credentials import (
    BackendServicesCredentials,
    BearerCredentials,
    RefreshTokenCredentials,
    plain_credentials,
)
from probe.directory.secrets import SecretSource, TokenStore, on_secret_resolved
from probe.http.body import parse_json
from probe.http.fetch import Fetcher
from probe.http.redact import KNOWN_SECRETS, register_secret
from probe.http.urls import origin_of
from probe.models import Exchange, ExtractStep
from probe.sync.result import TokenFacts

if TYPE_CHECKING:
    from probe.directory import credentials as plain
    from probe.directory import schema
    from probe.sync.documents import PendingDocuments

#: What a sync takes as credentials: the plain values `probe sync` builds from its options
#: (probe.directory.credentials, no pydantic) or the directory's models (`probe run`), which
#: the authorizer copies into plain values when it is made.
Credentials: TypeAlias = (
    "plain.Credentials | schema.BearerCredentials | schema.RefreshTokenCredentials"
    " | schema.BackendServicesCredentials"
)

# Every secret resolved from the directory's references is scrubbed wherever probe stores or
# prints text (probe/http/redact.py).
on_secret_resolved(register_secret)


class AuthError(Exception):
    """Authorization failed; the message is safe to show (no secret values)."""


@dataclass(slots=True)
class Authorizer:
    """Holds the current access token for one endpoint and obtains new ones when needed."""

    fetcher: Fetcher
    base_url: str
    credentials: Credentials | None
    secrets: SecretSource
    record: Callable[[list[Exchange]], None]
    facts: TokenFacts = field(default_factory=TokenFacts)
    discovered_token_url: str | None = None
    #: Discovery still in flight: its SMART configuration's token endpoint becomes
    #: `discovered_token_url` when a token is first needed without a configured one.
    discovery: PendingDocuments | None = None
    token_store: TokenStore | None = None
    clock: Callable[[], float] = time.monotonic
    _access_token: str | None = None
    _expires_at: float | None = None
    _refresh_token: str | None = None
    _secret_values: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        # The directory's pydantic models are copied into plain values of the same fields.
        self.credentials = plain_credentials(self.credentials)

    @property
    def store_key(self) -> str:
        """The token store key for this endpoint and client."""
        client = getattr(self.credentials, "client_id", "static")
        return f"{self.base_url}|{client}"

    @property
    def secret_values(self) -> list[str]:
        """Every secret this authorizer holds, for scrubbing text before it is shown."""
        values = [*self._secret_values]
        values += [v for v in (self._access_token, self._refresh_token) if v]
        return values

    def token_url(self) -> str:
        """The token endpoint to use; AuthError if only an untrusted cross-origin one is known."""
        configured = getattr(self.credentials, "token_url", None)
        if configured:
            return str(configured)
        url = self.discovered_token_url
        if not url:
            raise AuthError(
                "no token endpoint: set credentials.token_url or serve a SMART configuration"
            )
        if origin_of(url) != origin_of(self.base_url):
            raise AuthError(
                f"the SMART configuration names a token endpoint on another origin "
                f"({origin_of(url)}); confirm it by setting credentials.token_url"
            )
        return url

    async def headers(self) -> dict[str, str]:
        """Authorization headers for the next FHIR request (empty without credentials)."""
        if self.credentials is None:
            return {}
        if self._access_token is None or self._expiring():
            await self._obtain()
        return {"Authorization": f"Bearer {self._access_token}"}

    async def after_unauthorized(self) -> bool:
        """Called once after a 401: obtain a fresh token; False when none can be had."""
        if self.credentials is None or isinstance(self.credentials, BearerCredentials):
            return False
        try:
            await self._obtain()
        except AuthError:
            return False
        return True

    def _expiring(self) -> bool:
        if self._expires_at is None:
            return False
        return self.clock() >= self._expires_at

    async def _obtain(self) -> None:
        creds = self.credentials
        needs_discovery = not isinstance(creds, BearerCredentials) and not getattr(
            creds, "token_url", None
        )
        if self.discovery is not None and needs_discovery:
            documents = await self.discovery.get()
            self.discovered_token_url = token_endpoint(documents.smart_configuration)
            self.discovery = None
        if isinstance(creds, BearerCredentials):
            self.facts.kind = "bearer"
            self._access_token = self.secrets.resolve(creds.token)
            self._secret_values.append(self._access_token)
            return
        if isinstance(creds, RefreshTokenCredentials):
            self.facts.kind = "refresh_token"
            await self._refresh_grant(creds)
        elif isinstance(creds, BackendServicesCredentials):
            self.facts.kind = "backend_services"
            await self._client_credentials_grant(creds)

    async def _refresh_grant(self, creds: RefreshTokenCredentials) -> None:
        refresh = self._refresh_token
        if refresh is None and self.token_store is not None:
            refresh = self.token_store.get(self.store_key)
        if refresh is None:
            refresh = self.secrets.resolve(creds.refresh_token)
        self._secret_values.append(refresh)
        form = {"grant_type": "refresh_token", "refresh_token": refresh}
        if creds.scope:
            form["scope"] = creds.scope
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        if creds.auth_method == "client_secret_basic":
            secret = self.secrets.resolve(creds.client_secret)  # type: ignore[arg-type]
            self._secret_values.append(secret)
            KNOWN_SECRETS.register_basic(creds.client_id, secret)
            pair = f"{quote(creds.client_id, safe='')}:{quote(secret, safe='')}"
            headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
        elif creds.auth_method == "client_secret_post":
            secret = self.secrets.resolve(creds.client_secret)  # type: ignore[arg-type]
            self._secret_values.append(secret)
            form |= {"client_id": creds.client_id, "client_secret": secret}
        else:
            form["client_id"] = creds.client_id
        data = await self._post_token(form, headers)
        new_refresh = data.get("refresh_token")
        if isinstance(new_refresh, str) and new_refresh:
            register_secret(new_refresh)
            self.facts.refresh_token_issued = True
            if new_refresh != refresh:
                self.facts.refresh_token_rotated = True
                if self.token_store is not None:
                    self.token_store.put(self.store_key, new_refresh)
            self._refresh_token = new_refresh
        else:
            self.facts.refresh_token_issued = self.facts.refresh_token_issued or False
            self._refresh_token = refresh

    async def _client_credentials_grant(self, creds: BackendServicesCredentials) -> None:
        token_url = self.token_url()
        key = self.secrets.resolve(creds.private_key)
        now = int(time.time())
        claims = {
            "iss": creds.client_id,
            "sub": creds.client_id,
            "aud": token_url,
            "exp": now + 300,
            "iat": now,
            "jti": uuid.uuid4().hex,
        }
        headers_jwt = {"kid": creds.key_id} if creds.key_id else None
        import jwt  # PyJWT and its cryptography backends load only when an assertion is signed

        try:
            assertion = jwt.encode(claims, key, algorithm=creds.algorithm, headers=headers_jwt)
        except (ValueError, TypeError, jwt.PyJWTError):
            raise AuthError(
                f"cannot sign the client assertion with {creds.private_key.describe()} "
                f"({creds.algorithm}): not a usable private key"
            ) from None
        self._secret_values.append(assertion)
        register_secret(assertion)
        form = {
            "grant_type": "client_credentials",
            "scope": creds.scope,
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": assertion,
        }
        await self._post_token(form, {"Content-Type": "application/x-www-form-urlencoded"})
        self.facts.refresh_token_issued = False

    async def _post_token(self, form: dict[str, str], headers: dict[str, str]) -> dict[str, Any]:
        token_url = self.token_url()
        attempts = await self.fetcher.request(
            "POST",
            token_url,
            step=ExtractStep.TOKEN,
            accept="application/json",
            headers=headers,
            content=urlencode(form).encode(),
        )
        self.record(attempts)
        final = attempts[-1]
        parsed = parse_json(final, max_depth=32)
        if final.status is None:
            raise AuthError(f"token endpoint unreachable: {final.error_class}")
        if not final.ok or parsed.data is None:
            error = (parsed.data or {}).get("error") if parsed.data else None
            description = (parsed.data or {}).get("error_description") if parsed.data else None
            detail = f"{error}" + (f": {description}" if description else "") if error else ""
            raise AuthError(
                f"token endpoint answered HTTP {final.status}{f' ({detail})' if detail else ''}"
            )
        data = parsed.data
        token = data.get("access_token")
        if not isinstance(token, str) or not token:
            raise AuthError("token response has no access_token")
        if not _HEADER_SAFE.fullmatch(token):
            raise AuthError(
                "token response's access_token cannot be sent in a header "
                "(non-ASCII, control characters or spaces; RFC 6750 b64token)"
            )
        register_secret(token)
        if self._access_token is not None:
            self.facts.refreshes += 1
        self._access_token = token
        lifetime = _number(data.get("expires_in"))
        self.facts.access_token_lifetime_s = lifetime
        self._expires_at = None
        if lifetime is not None:
            skew = min(30.0, lifetime * 0.1)
            self._expires_at = self.clock() + max(0.0, lifetime - skew)
        refresh_life = _number(
            data.get("refresh_token_expires_in") or data.get("refresh_expires_in")
        )
        if refresh_life is not None:
            self.facts.refresh_token_lifetime_s = refresh_life
        return data


def token_endpoint(smart_configuration: dict[str, Any] | None) -> str | None:
    """The token endpoint a SMART configuration names (untrusted: see Authorizer.token_url)."""
    if smart_configuration and isinstance(smart_configuration.get("token_endpoint"), str):
        return str(smart_configuration["token_endpoint"])
    return None


#: What an access token may hold to be sent as ``Bearer <token>``: printable ASCII, no spaces.
_HEADER_SAFE = re.compile(r"[\x21-\x7e]{1,16384}")


def _number(value: Any) -> float | None:
    """A finite number from a token response field (seconds), or None."""
    if isinstance(value, bool):
        return None
    try:
        if isinstance(value, int | float | str):
            number = float(value)
            return number if math.isfinite(number) else None
    except (ValueError, OverflowError):
        return None
    return None
