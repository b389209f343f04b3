"""One patient authorization attempt, end to end: discovery, the browser (or a person), the
loopback callback, the code exchange and the refresh token's safe keeping."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import anyio

from probe.authorize.browser import Credentials, DriveResult, drive_browser
from probe.authorize.callback import listen_for_callback
from probe.authorize.outcome import AttemptResult, Outcome, Verdict, classify
from probe.authorize.pkce import new_pkce
from probe.authorize.recipe import RecipeStep
from probe.authorize.request import (
    DEFAULT_SCOPE,
    AuthorizationRequest,
    new_state,
    redirect_uri_for,
    wants_offline,
)
from probe.authorize.token import ClientAuth, TokenResult, choose_client_auth, exchange_code
from probe.checks.discovery import run_discovery
from probe.checks.metadata import oauth_uris
from probe.directory.secrets import SecretSource, TokenStore
from probe.http.fetch import Fetcher, new_client
from probe.http.guard import AddressGuard
from probe.http.limits import Limits
from probe.http.urls import normalize_base

log = logging.getLogger(__name__)

DISCOVERY_SHARE = 0.25  # at most this share of the deadline goes to discovery
TOKEN_TIMEOUT_S = 30.0


class AuthorizeSetupError(Exception):
    """The attempt cannot start (e.g. the redirect port is taken); a usage-level problem."""


@dataclass(frozen=True, slots=True)
class AuthorizeOptions:
    """What `probe authorize` was asked to do (secrets kept out of reprs)."""

    base_url: str
    client_id: str
    redirect_port: int
    scope: str = DEFAULT_SCOPE
    client_secret: str | None = field(default=None, repr=False)
    credentials: Credentials | None = None
    recipe: Sequence[RecipeStep] | None = None
    decline: bool = False
    interactive: bool = False
    deadline_s: float = 120.0
    verify: bool | str = True


@dataclass(frozen=True, slots=True)
class Endpoints:
    """The authorization server's endpoints and where they were found."""

    authorization: str | None
    token: str | None
    source: str | None
    auth_methods: tuple[str, ...] = ()


def endpoints_from(documents: dict[str, Any]) -> Endpoints:
    """The endpoints from the SMART configuration, else the CapabilityStatement's oauth-uris."""
    smart = documents.get("smart_configuration")
    if isinstance(smart, dict):
        authorization = smart.get("authorization_endpoint")
        token = smart.get("token_endpoint")
        if isinstance(authorization, str) and isinstance(token, str):
            methods = smart.get("token_endpoint_auth_methods_supported")
            listed = tuple(str(m) for m in methods) if isinstance(methods, list) else ()
            return Endpoints(authorization, token, "smart-configuration", listed)
    uris = oauth_uris(documents.get("capability"))
    if uris.get("authorize") and uris.get("token"):
        return Endpoints(uris["authorize"], uris["token"], "capability-statement")
    return Endpoints(None, None, None)


def _bare(url: str | None) -> str | None:
    """A URL without query or fragment (for evidence)."""
    if not url:
        return None
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"


def _ms(start: float, at: float | None) -> float | None:
    return None if at is None else round((at - start) * 1000, 1)


def _retry_with_post(token: TokenResult, auth: ClientAuth, methods: Sequence[str]) -> bool:
    """Whether a refused client_secret_basic exchange should be tried once with _post."""
    return (
        auth.method == "client_secret_basic"
        and token.error == "invalid_client"
        and (not methods or "client_secret_post" in methods)
    )


async def _discover(fetcher: Fetcher, base: str, seconds: float) -> Endpoints:
    with anyio.move_on_after(seconds):
        report = await run_discovery(fetcher, base)
        return endpoints_from(report.documents)
    return Endpoints(None, None, None)


async def run_attempt(
    options: AuthorizeOptions,
    *,
    secrets: SecretSource | None = None,
    token_store: TokenStore | None = None,
    announce: Callable[[str], None] | None = None,
) -> AttemptResult:
    """Make one authorization attempt and report it; never raises for what a server does.

    With `options.interactive` the authorization URL goes to `announce` and a person signs in;
    otherwise headless Chromium does. A refresh token goes to `token_store` only.
    """
    started = time.monotonic()
    deadline = started + options.deadline_s
    started_at = datetime.now(UTC)
    base = normalize_base(options.base_url)
    guard = AddressGuard()
    guard.admit(base)
    evidence: dict[str, Any] = {}

    def result(verdict: Verdict, **extra: Any) -> AttemptResult:
        """The attempt's result with its evidence so far (and a log line of its outcome)."""
        out = AttemptResult(
            base_url=base,
            verdict=verdict,
            started_at=started_at.isoformat(),
            duration_ms=(time.monotonic() - started) * 1000,
            evidence=evidence,
            **extra,
        )
        log.info("authorize %s: %s", base, out.outcome)
        return out

    async with new_client(verify=options.verify, guard=guard) as client:
        limits = Limits(total_timeout=min(30.0, options.deadline_s * DISCOVERY_SHARE))
        fetcher = Fetcher(client, limits, guard=guard)
        endpoints = await _discover(fetcher, base, options.deadline_s * DISCOVERY_SHARE)
        evidence["discovery_ms"] = _ms(started, time.monotonic())
        found = {
            "authorization_endpoint": _bare(endpoints.authorization),
            "token_endpoint": _bare(endpoints.token),
            "source": endpoints.source,
        }
        if endpoints.authorization is None or endpoints.token is None:
            verdict = Verdict(
                Outcome.ERROR,
                "no_authorization_endpoint",
                "neither the SMART configuration nor the CapabilityStatement names the "
                "authorization and token endpoints",
            )
            return result(verdict, endpoints=found)

        request = AuthorizationRequest(
            authorization_endpoint=endpoints.authorization,
            client_id=options.client_id,
            redirect_uri=redirect_uri_for(options.redirect_port),
            scope=options.scope,
            aud=base,
            pkce=new_pkce(),
            state=new_state(),
        )
        drive: DriveResult | None = None
        async with contextlib.AsyncExitStack() as stack:
            try:
                listener = await stack.enter_async_context(
                    listen_for_callback(options.redirect_port, request.state)
                )
            except OSError as exc:
                reason = exc.strerror or str(exc)
                raise AuthorizeSetupError(
                    f"cannot listen on 127.0.0.1:{options.redirect_port}: {reason}"
                ) from None
            if options.interactive:
                if announce is not None:
                    announce(request.url())
                await listener.wait(deadline - time.monotonic())
            else:
                drive = await drive_browser(
                    request.url(),
                    credentials=options.credentials,
                    recipe=options.recipe,
                    secrets=secrets or SecretSource(),
                    decline=options.decline,
                    done=lambda: listener.callback is not None,
                    started=started,
                    deadline=deadline,
                    authorization_host=urlsplit(endpoints.authorization).hostname or "",
                )
        callback = listener.callback
        evidence["time_to_callback_ms"] = _ms(started, listener.received_at)
        if drive is not None:
            browser = drive.evidence
            evidence["time_to_first_page_ms"] = browser.first_page_ms
            evidence["navigation"] = browser.navigations
            evidence["pages"] = browser.pages
            evidence["pages_seen"] = len(browser.pages)
            evidence["popups"] = browser.popups
            evidence["actions"] = browser.actions
            evidence["browser_stop"] = drive.stop

        token: TokenResult | None = None
        if callback is not None and callback.state_ok and callback.code is not None:
            auth = choose_client_auth(
                options.client_id, options.client_secret, endpoints.auth_methods
            )
            token = await exchange_code(
                client,
                endpoints.token,
                callback.code,
                request.pkce.verifier,
                request.redirect_uri,
                auth,
                max(min(TOKEN_TIMEOUT_S, deadline - time.monotonic()), 1.0),
            )
            if _retry_with_post(token, auth, endpoints.auth_methods):
                # Servers authenticate the client before they look at (and spend) the code,
                # so a client registered for client_secret_post can still exchange it.
                auth = ClientAuth(auth.client_id, auth.secret, "client_secret_post")
                evidence["client_auth_retried"] = True
                token = await exchange_code(
                    client,
                    endpoints.token,
                    callback.code,
                    request.pkce.verifier,
                    request.redirect_uri,
                    auth,
                    max(min(TOKEN_TIMEOUT_S, deadline - time.monotonic()), 1.0),
                )
            evidence["time_to_token_ms"] = _ms(started, time.monotonic())
            evidence["client_auth"] = auth.method

    verdict = classify(
        callback,
        token,
        drive.stop if drive else None,
        drive.detail if drive else None,
        drive.vendor if drive else None,
    )
    findings: list[dict[str, str]] = []
    extra: dict[str, Any] = {"endpoints": found, "redirects": 0, "findings": findings}
    if drive is not None:
        extra["redirects"] = len(drive.evidence.navigations)
        extra["vendor"] = drive.vendor
    if callback is not None:
        extra["error_description"] = callback.error_description
    if token is not None:
        evidence["token_response"] = {
            "status": token.status,
            "scope": token.scope,
            "patient": token.patient,
            "expires_in": token.expires_in,
            "refresh_token": token.refresh_token is not None,
        }
        if token.error is not None:
            extra["error_description"] = token.error_description
    if token is not None and token.ok:
        extra["patient"] = token.patient
        extra["refresh_token_issued"] = token.refresh_token is not None
        extra["scopes_granted"] = (token.scope or "").split()
        if token.refresh_token is not None and token_store is not None:
            token_store.put(f"{base}|{options.client_id}", token.refresh_token)
            evidence["refresh_token_stored"] = True
        if wants_offline(options.scope) and token.refresh_token is None:
            findings.append(
                {
                    "id": "authorize.refresh_token",
                    "message": "offline_access was requested (with prompt=consent) but the "
                    "token response has no refresh_token",
                }
            )
        if "launch/patient" in options.scope.split() and not token.patient:
            findings.append(
                {
                    "id": "authorize.patient_context",
                    "message": "launch/patient was requested but the token response has no patient",
                }
            )
    return result(verdict, **extra)
