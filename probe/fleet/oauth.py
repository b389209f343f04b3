"""The payers' authorization servers: token, authorize and revoke endpoints, and bearer checks.

Grants: ``refresh_token``, ``client_credentials`` and ``authorization_code`` (PKCE S256 only).
Client authentication: ``client_secret_basic``, ``client_secret_post``, public clients
(``none``) and ``private_key_jwt`` (the assertion's signature is verified against the client's
registered public key, with ``aud`` = token URL, ``exp``, ``iss`` = ``sub`` = client_id and a
one-time ``jti``). A client must use the method it is registered with. Errors follow RFC 6749
(``invalid_client``, ``invalid_grant``, ...). Access tokens expire (``expires_in``), or after a
number of uses for `expiring_tokens`; refresh tokens may expire and may rotate. The member
sign-in pages and consent steps in front of the code are in :mod:`probe.fleet.journeys`; this
module keeps their state (sign-in sessions) and mints the codes.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import itertools
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import jwt

from probe.fleet.config import PayerConfig, derive
from probe.fleet.credentials import PayerCredentials, issuer_key

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
MEMBER_PASSWORD = "password"
PATIENT_SCOPE = "launch/patient openid fhirUser offline_access patient/*.read"
SESSION_LIFETIME_S = 600.0


@dataclass(slots=True)
class Grant:
    """An issued access or refresh token and what it allows."""

    payer: str
    client_id: str
    patient: str | None
    scope: str
    issued_at: float
    expires_at: float | None
    max_uses: int | None = None
    uses: int = 0
    revoked: bool = False


@dataclass(slots=True)
class _Code:
    payer: str
    client_id: str
    redirect_uri: str
    challenge: str
    patient: str
    scope: str
    expires_at: float


@dataclass(slots=True)
class MemberSession:
    """A member who signed in and has not yet decided on one authorization request."""

    payer: str
    params: dict[str, str]
    patient: str
    expires_at: float


@dataclass(frozen=True, slots=True)
class OAuthError(Exception):
    """An RFC 6749 error response."""

    status: int
    error: str
    description: str
    headers: Mapping[str, str] = field(default_factory=dict)

    def body(self) -> dict[str, str]:
        """The JSON error body."""
        return {"error": self.error, "error_description": self.description}


@dataclass(frozen=True, slots=True)
class PayerAuth:
    """What one payer's authorization server knows: its config, client, patients, token URL."""

    config: PayerConfig
    credentials: PayerCredentials
    patients: tuple[str, ...]
    token_url: str


class TokenService:
    """Issues and checks tokens for every payer of a fleet (in memory)."""

    def __init__(self, seed: int, clock: Callable[[], float] = time.time) -> None:
        self.seed = seed
        self.clock = clock
        self.access: dict[str, Grant] = {}
        self.refresh: dict[str, Grant] = {}
        self._codes: dict[str, _Code] = {}
        self._sessions: dict[str, MemberSession] = {}
        self._jti_seen: set[tuple[str, str]] = set()
        self._counter = itertools.count(1)
        self.started_at = clock()

    def register(self, auth: PayerAuth) -> None:
        """Install a payer's pre-issued refresh token and static bearer token."""
        creds = auth.credentials
        first = auth.patients[0] if auth.patients else None
        oauth = auth.config.oauth
        lifetime = oauth.refresh_token_lifetime_s
        self.refresh[creds.refresh_token] = Grant(
            payer=auth.config.slug,
            client_id=creds.client_id,
            patient=first,
            scope=PATIENT_SCOPE,
            issued_at=self.started_at,
            expires_at=None if lifetime is None else self.started_at + lifetime,
        )
        self.access[creds.bearer_token] = Grant(
            payer=auth.config.slug,
            client_id=creds.client_id,
            patient=first,
            scope="patient/*.read",
            issued_at=self.started_at,
            expires_at=None,
        )

    def _new_token(self, prefix: str, slug: str) -> str:
        raw = derive(self.seed, slug, prefix, next(self._counter))
        return prefix + "-" + base64.urlsafe_b64encode(raw).decode().rstrip("=")

    # -- bearer checks ------------------------------------------------------------------------

    def check_bearer(self, slug: str, authorization: str | None) -> Grant:
        """The grant behind a request's bearer token, or OAuthError (401) saying why not."""
        if not authorization or not authorization.lower().startswith("bearer "):
            raise OAuthError(401, "invalid_request", "no bearer token", _bearer_challenge())
        token = authorization[7:].strip()
        grant = self.access.get(token)
        if grant is None or grant.payer != slug or grant.revoked:
            raise OAuthError(
                401, "invalid_token", "unknown access token", _bearer_challenge("invalid_token")
            )
        if grant.expires_at is not None and self.clock() >= grant.expires_at:
            raise OAuthError(
                401, "invalid_token", "the access token expired", _bearer_challenge("invalid_token")
            )
        if grant.max_uses is not None and grant.uses >= grant.max_uses:
            raise OAuthError(
                401,
                "invalid_token",
                "the access token has been used too many times",
                _bearer_challenge("invalid_token"),
            )
        grant.uses += 1
        return grant

    # -- token endpoint -----------------------------------------------------------------------

    def token(
        self, auth: PayerAuth, form: Mapping[str, str], authorization: str | None
    ) -> dict[str, Any]:
        """Handle a token request; returns the JSON success body or raises OAuthError."""
        grant_type = form.get("grant_type")
        if not grant_type:
            raise OAuthError(400, "invalid_request", "grant_type is required")
        client_id = self._authenticate(auth, form, authorization)
        if grant_type == "refresh_token":
            return self._refresh(auth, client_id, form)
        if grant_type == "client_credentials":
            if auth.credentials.auth == "none":
                raise OAuthError(400, "unauthorized_client", "public clients cannot use this grant")
            return self._issue(auth, client_id, None, form.get("scope") or "system/*.read", None)
        if grant_type == "authorization_code":
            return self._code(auth, client_id, form)
        raise OAuthError(400, "unsupported_grant_type", f"grant_type {grant_type} not supported")

    def _authenticate(
        self, auth: PayerAuth, form: Mapping[str, str], authorization: str | None
    ) -> str:
        creds = auth.credentials
        registered = creds.auth
        if form.get("client_assertion") or form.get("client_assertion_type"):
            if registered != "private_key_jwt":
                raise OAuthError(401, "invalid_client", "client is not registered for JWT auth")
            return self._verify_assertion(auth, form)
        if authorization and authorization.lower().startswith("basic "):
            try:
                decoded = base64.b64decode(authorization[6:].strip(), validate=True).decode()
            except (binascii.Error, UnicodeDecodeError):
                raise OAuthError(
                    401, "invalid_client", "malformed Basic credentials", _basic_challenge()
                ) from None
            cid, _, secret = decoded.partition(":")
            if registered != "client_secret_basic":
                raise OAuthError(
                    401,
                    "invalid_client",
                    "client is not registered for client_secret_basic",
                    _basic_challenge(),
                )
            if cid != creds.client_id or secret != creds.client_secret:
                raise OAuthError(
                    401, "invalid_client", "client authentication failed", _basic_challenge()
                )
            return cid
        cid = form.get("client_id", "")
        if "client_secret" in form:
            if registered != "client_secret_post":
                raise OAuthError(
                    401, "invalid_client", "client is not registered for client_secret_post"
                )
            if cid != creds.client_id or form["client_secret"] != creds.client_secret:
                raise OAuthError(401, "invalid_client", "client authentication failed")
            return cid
        if cid:
            if registered not in ("none", "bearer") or cid != creds.client_id:
                raise OAuthError(401, "invalid_client", "client authentication required")
            return cid
        raise OAuthError(401, "invalid_client", "no client authentication")

    def _verify_assertion(self, auth: PayerAuth, form: Mapping[str, str]) -> str:
        creds = auth.credentials
        if form.get("client_assertion_type") != ASSERTION_TYPE:
            raise OAuthError(
                400, "invalid_request", f"client_assertion_type must be {ASSERTION_TYPE}"
            )
        assertion = form.get("client_assertion", "")
        try:
            claims = jwt.decode(
                assertion,
                creds.public_key(),
                algorithms=[creds.algorithm],
                audience=auth.token_url,
                options={"require": ["exp", "iss", "sub", "aud", "jti"]},
            )
        except jwt.ExpiredSignatureError:
            raise OAuthError(401, "invalid_client", "client assertion expired") from None
        except jwt.InvalidAudienceError:
            raise OAuthError(
                401, "invalid_client", f"client assertion aud must be {auth.token_url}"
            ) from None
        except jwt.PyJWTError as exc:
            raise OAuthError(401, "invalid_client", f"client assertion rejected: {exc}") from None
        if claims["iss"] != creds.client_id or claims["sub"] != creds.client_id:
            raise OAuthError(
                401, "invalid_client", "client assertion iss and sub must be client_id"
            )
        if form.get("client_id") not in (None, creds.client_id):
            raise OAuthError(401, "invalid_client", "client_id does not match the assertion")
        if float(claims["exp"]) - time.time() > 300:
            raise OAuthError(
                401, "invalid_client", "client assertion exp is more than 5 minutes out"
            )
        key = (creds.client_id, str(claims["jti"]))
        if key in self._jti_seen:
            raise OAuthError(401, "invalid_client", "client assertion jti was already used")
        self._jti_seen.add(key)
        return creds.client_id

    def _refresh(self, auth: PayerAuth, client_id: str, form: Mapping[str, str]) -> dict[str, Any]:
        token = form.get("refresh_token")
        if not token:
            raise OAuthError(400, "invalid_request", "refresh_token is required")
        grant = self.refresh.get(token)
        if grant is None or grant.payer != auth.config.slug or grant.client_id != client_id:
            raise OAuthError(400, "invalid_grant", "unknown refresh token")
        if grant.revoked:
            raise OAuthError(400, "invalid_grant", "refresh token was revoked or already rotated")
        if grant.expires_at is not None and self.clock() >= grant.expires_at:
            raise OAuthError(400, "invalid_grant", "refresh token expired")
        behaviour = auth.config.behaviour
        rotate = auth.config.oauth.rotate_refresh_tokens or bool(
            behaviour.expiring_tokens and behaviour.expiring_tokens.rotate_refresh_tokens
        )
        new_refresh = token
        if rotate:
            grant.revoked = True
            new_refresh = self._new_token("rt", auth.config.slug)
            self.refresh[new_refresh] = Grant(
                payer=grant.payer,
                client_id=client_id,
                patient=grant.patient,
                scope=grant.scope,
                issued_at=self.clock(),
                expires_at=grant.expires_at,
            )
        return self._issue(auth, client_id, grant.patient, grant.scope, new_refresh)

    def issue(self, auth: PayerAuth, client_id: str, patient: str | None) -> dict[str, Any]:
        """Mint an access token directly (no client authentication; for in-process tests)."""
        return self._issue(auth, client_id, patient, "patient/*.read", None)

    def _issue(
        self,
        auth: PayerAuth,
        client_id: str,
        patient: str | None,
        scope: str,
        refresh_token: str | None,
    ) -> dict[str, Any]:
        oauth = auth.config.oauth
        expiring = auth.config.behaviour.expiring_tokens
        lifetime = expiring.lifetime_s if expiring else oauth.access_token_lifetime_s
        now = self.clock()
        token = self._new_token("at", auth.config.slug)
        self.access[token] = Grant(
            payer=auth.config.slug,
            client_id=client_id,
            patient=patient,
            scope=scope,
            issued_at=now,
            expires_at=now + lifetime,
            max_uses=expiring.max_requests if expiring else None,
        )
        body: dict[str, Any] = {
            "access_token": token,
            "token_type": "Bearer",
            "expires_in": int(lifetime) if float(lifetime).is_integer() else lifetime,
            "scope": scope,
        }
        if patient is not None:
            body["patient"] = patient
        if refresh_token is not None:
            body["refresh_token"] = refresh_token
            # Like several payer gateways (non-standard but common): announce the lifetime.
            refresh_life = oauth.refresh_token_lifetime_s
            if refresh_life is not None:
                body["refresh_token_expires_in"] = int(refresh_life)
        if patient is not None and "openid" in scope.split():
            body["id_token"] = jwt.encode(
                {
                    "iss": auth.token_url.rsplit("/oauth/", 1)[0] + "/fhir",
                    "sub": patient,
                    "aud": client_id,
                    "iat": int(time.time()),
                    "exp": int(time.time()) + 3600,
                    "fhirUser": f"Patient/{patient}",
                },
                issuer_key(self.seed),
                algorithm="ES384",
            )
        return body

    # -- authorization code -------------------------------------------------------------------

    def authorize(self, auth: PayerAuth, params: Mapping[str, str]) -> None:
        """Validate an authorization request's parameters (raises OAuthError when invalid)."""
        if params.get("client_id") != auth.credentials.client_id:
            raise OAuthError(400, "invalid_client", "unknown client_id")
        if params.get("response_type") != "code":
            raise OAuthError(400, "unsupported_response_type", "response_type must be code")
        if not params.get("redirect_uri"):
            raise OAuthError(400, "invalid_request", "redirect_uri is required")
        if params.get("code_challenge_method") != "S256" or not params.get("code_challenge"):
            raise OAuthError(
                400, "invalid_request", "PKCE with code_challenge_method S256 required"
            )

    def member(self, auth: PayerAuth, username: str, password: str) -> str | None:
        """The patient id a member signs in as, or None for unknown members or wrong passwords."""
        if username in auth.patients and password == MEMBER_PASSWORD:
            return username
        return None

    def new_id(self, prefix: str, slug: str) -> str:
        """A fresh opaque identifier (sign-in sessions, verification sessions)."""
        return self._new_token(prefix, slug)

    def start_session(self, auth: PayerAuth, params: Mapping[str, str], patient: str) -> str:
        """Remember a signed-in member's authorization request until consent; returns its id."""
        key = self._new_token("txn", auth.config.slug)
        self._sessions[key] = MemberSession(
            payer=auth.config.slug,
            params=dict(params),
            patient=patient,
            expires_at=self.clock() + SESSION_LIFETIME_S,
        )
        return key

    def session(self, auth: PayerAuth, key: str) -> MemberSession:
        """A pending sign-in session of this payer (OAuthError when unknown, used or expired)."""
        found = self._sessions.get(key)
        if found is None or found.payer != auth.config.slug or self.clock() >= found.expires_at:
            raise OAuthError(400, "invalid_request", "unknown or expired sign-in session")
        return found

    def end_session(self, key: str) -> None:
        """Forget a sign-in session (the member decided)."""
        self._sessions.pop(key, None)

    def issue_code(
        self, auth: PayerAuth, params: Mapping[str, str], patient: str, scope: str
    ) -> str:
        """Mint an authorization code for a validated request, a patient and the granted scope."""
        self.authorize(auth, params)
        code = self._new_token("code", auth.config.slug)
        self._codes[code] = _Code(
            payer=auth.config.slug,
            client_id=params["client_id"],
            redirect_uri=params["redirect_uri"],
            challenge=params["code_challenge"],
            patient=patient,
            scope=scope,
            expires_at=self.clock() + 300,
        )
        return code

    def _code(self, auth: PayerAuth, client_id: str, form: Mapping[str, str]) -> dict[str, Any]:
        code = self._codes.pop(form.get("code", ""), None)
        if code is None or code.payer != auth.config.slug or code.client_id != client_id:
            raise OAuthError(400, "invalid_grant", "unknown or used authorization code")
        if self.clock() >= code.expires_at:
            raise OAuthError(400, "invalid_grant", "authorization code expired")
        if form.get("redirect_uri") != code.redirect_uri:
            raise OAuthError(400, "invalid_grant", "redirect_uri does not match")
        verifier = form.get("code_verifier", "")
        digest = hashlib.sha256(verifier.encode()).digest()
        if base64.urlsafe_b64encode(digest).decode().rstrip("=") != code.challenge:
            raise OAuthError(400, "invalid_grant", "code_verifier does not match code_challenge")
        refresh = self._new_token("rt", auth.config.slug)
        lifetime = auth.config.oauth.refresh_token_lifetime_s
        now = self.clock()
        self.refresh[refresh] = Grant(
            payer=auth.config.slug,
            client_id=client_id,
            patient=code.patient,
            scope=code.scope,
            issued_at=now,
            expires_at=None if lifetime is None else now + lifetime,
        )
        return self._issue(auth, client_id, code.patient, code.scope, refresh)

    def revoke(self, token: str) -> None:
        """Revoke an access or refresh token (unknown tokens are ignored, per RFC 7009)."""
        for store in (self.access, self.refresh):
            if token in store:
                store[token].revoked = True


def callback_url(redirect_uri: str, query: Mapping[str, str]) -> str:
    """The client's redirect URI with the authorization response parameters added."""
    if not query:
        return redirect_uri
    sep = "&" if "?" in redirect_uri else "?"
    return redirect_uri + sep + urlencode(query)


def _bearer_challenge(error: str | None = None) -> dict[str, str]:
    value = 'Bearer realm="fleet"'
    if error:
        value += f', error="{error}"'
    return {"WWW-Authenticate": value}


def _basic_challenge() -> dict[str, str]:
    return {"WWW-Authenticate": 'Basic realm="fleet"'}


def jwks(seed: int) -> dict[str, Any]:
    """The JWKS publishing the fleet's id_token signing key."""
    public = issuer_key(seed).public_key()
    jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(public))
    jwk.update({"kid": "fleet-issuer-1", "alg": "ES384", "use": "sig"})
    return {"keys": [jwk]}
