"""The fleet: one Starlette ASGI app that serves every simulated payer on every loopback host.

``Fleet(config, port=...)`` builds the app (``fleet.app``), the payers' sites, data, tokens and
stats. The same app object is served by one uvicorn server per address (see
:mod:`probe.fleet.serve`) or used in-process with ``httpx.ASGITransport`` /
:meth:`Fleet.transport`. Routes::

    /payers/{slug}/fhir/...            production base (FHIR API, metadata, SMART config)
    /payers/{slug}/api/r4/...          new base of a `moved` payer
    /payers/{slug}/sandbox/fhir/...    sandbox base of a `sandbox_only` payer
    /payers/{slug}/oauth/{authorize,consent,token,revoke,jwks}
    /_idv/idme/{slug}/verify           identity-verification detour (probe.fleet.journeys)
    /_fleet/stats (GET; DELETE resets), /_fleet/health
"""

from __future__ import annotations

import contextlib
import functools
import socket
import struct
import time
from collections import OrderedDict
from collections.abc import Callable
from urllib.parse import parse_qsl

import anyio
import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.types import Message, Receive, Scope, Send

from probe.directory.schema import Directory
from probe.fleet.catalog import build_directory, build_secrets
from probe.fleet.config import PAGING_STYLES, FleetConfig, derive, derive_int
from probe.fleet.credentials import PayerCredentials, payer_credentials
from probe.fleet.documents import (
    PayerUrls,
    capability_statement,
    login_page,
    operation_outcome,
    smart_configuration,
    tomcat_page,
)
from probe.fleet.errors import FleetReset
from probe.fleet.faults import FaultPlanner
from probe.fleet.fhir import FHIR_JSON, PLAIN_JSON, FhirContext, fhir_response, handle_fhir
from probe.fleet.journeys import Journeys
from probe.fleet.oauth import OAuthError, PayerAuth, TokenService, jwks
from probe.fleet.paging import LinkStyle
from probe.fleet.patients import PayerData, build_payer_data, patient_ids
from probe.fleet.portal import portal_page
from probe.fleet.sites import PayerSite, hostile_addresses, layout
from probe.fleet.stats import FleetStats
from probe.fleet.transport import FleetTransport

DATA_CACHE_PAYERS = 256
_MOUNTS = (("sandbox/fhir", "sandbox"), ("api/r4", "moved"), ("fhir", "production"))


class Fleet:
    """Every simulated payer of one fleet config, as one ASGI app plus in-process accessors."""

    def __init__(
        self,
        config: FleetConfig,
        *,
        port: int = 8080,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.port = port
        self.addresses, self.sites = layout(config, port)
        self.hostile_addresses = hostile_addresses(self.sites)  # served by fleet.hostile
        self.stats = FleetStats(log_headers=config.log_headers, max_records=config.max_log_records)
        self.tokens = TokenService(config.seed, clock)
        self.journeys = Journeys(self.tokens)
        self.faults = FaultPlanner(config.seed)
        self._data: OrderedDict[str, PayerData] = OrderedDict()
        self._auth: dict[str, PayerAuth] = {}
        for slug, site in self.sites.items():
            auth = PayerAuth(
                config=site.config,
                credentials=payer_credentials(config.seed, site.config),
                patients=tuple(patient_ids(config.seed, site.config)),
                token_url=site.token_url,
            )
            self._auth[slug] = auth
            self.tokens.register(auth)
        routes = [
            Route("/_fleet/stats", self._stats_route, methods=["GET", "DELETE"]),
            Route("/_fleet/health", self._health_route, methods=["GET"]),
            Route("/payers/{slug}/{rest:path}", self._payer_route, methods=["GET", "POST"]),
            Route("/_idv/idme/{slug}/verify", self._idv_route, methods=["GET", "POST"]),
        ]
        self.app = _Accounting(self, Starlette(routes=routes))

    # -- in-process accessors -----------------------------------------------------------------

    def site(self, slug: str) -> PayerSite:
        """A payer's site (addresses and URLs); KeyError for an unknown slug."""
        return self.sites[slug]

    def base_url(self, slug: str) -> str:
        """The production base URL the directory lists for this payer."""
        return self.sites[slug].base_url

    def credentials(self, slug: str) -> PayerCredentials:
        """The fleet client's credentials at this payer (secret values included)."""
        return self._auth[slug].credentials

    def patients(self, slug: str) -> list[str]:
        """The payer's test patient ids."""
        return list(self._auth[slug].patients)

    def issue_access_token(self, slug: str, patient: str | None = None) -> str:
        """Mint a valid access token for a payer without an HTTP token exchange (for tests)."""
        auth = self._auth[slug]
        body = self.tokens.issue(auth, auth.credentials.client_id, patient or auth.patients[0])
        return str(body["access_token"])

    def data(self, slug: str) -> PayerData:
        """The payer's served data (built on first use, least recently used dropped)."""
        data = self._data.get(slug)
        if data is None:
            data = build_payer_data(self.config.seed, self.sites[slug].config)
            self._data[slug] = data
            if len(self._data) > DATA_CACHE_PAYERS:
                self._data.popitem(last=False)
        else:
            self._data.move_to_end(slug)
        return data

    def paging_style(self, slug: str) -> LinkStyle:
        """The payer's continuation style (`cursor` for `cursor_paging`; configured, or seeded)."""
        site = self.sites[slug]
        if site.config.behaviour.cursor_paging is not None:
            return "cursor"
        if site.config.paging_style is not None:
            return site.config.paging_style
        style = PAGING_STYLES[derive_int(self.config.seed, slug, "paging-style") % 4]
        if style == "offset" and site.config.behaviour.paging_cross_origin is not None:
            return "ct"  # a cross-origin page is authorised by an opaque token, not an offset
        return style

    def directory(self, secrets_file: str | None = None) -> Directory:
        """The endpoints directory for this fleet (credentials by reference only)."""
        return build_directory(self, secrets_file)

    def secrets(self) -> dict[str, str]:
        """The secrets file's mapping (key -> secret) the directory refers to."""
        return build_secrets(self)

    def transport(self) -> httpx.AsyncBaseTransport:
        """An httpx transport into this app that refuses unserved addresses and maps resets."""
        return FleetTransport(self.app, self.addresses, self.port)

    # -- routes -------------------------------------------------------------------------------

    async def _health_route(self, request: Request) -> Response:
        return JSONResponse({"status": "ok", "payers": len(self.sites)})

    async def _stats_route(self, request: Request) -> Response:
        if request.method == "DELETE":
            self.stats.reset()
            return JSONResponse({"reset": True})
        everything = request.query_params.get("all") in ("1", "true")
        host = None if everything else _server(request.scope)[0]
        try:
            records = int(request.query_params.get("records", "0"))
        except ValueError:
            records = 0
        return JSONResponse(self.stats.snapshot(host=host, records=records))

    async def _idv_route(self, request: Request) -> Response:
        site = self.sites.get(request.path_params["slug"])
        if (
            site is None
            or site.config.oauth.journey != "identity_verification"
            or _server(request.scope)[0] != site.idv_host
        ):
            return Response("Not Found", 404, media_type="text/plain")
        return await self.journeys.verify_identity(request, site)

    async def _payer_route(self, request: Request) -> Response:
        slug = request.path_params["slug"]
        site = self.sites.get(slug)
        host = _server(request.scope)[0]
        if site is None or host not in site.hosts:
            return Response("Not Found", 404, media_type="text/plain")
        rest: str = request.path_params["rest"]
        if rest == "developers":
            return portal_page(site.config.display_name, site.config.portal)
        if rest.startswith("oauth/"):
            return await self._oauth(request, site, rest[len("oauth/") :])
        for prefix, mount in _MOUNTS:
            if rest == prefix or rest.startswith(prefix + "/"):
                return await self._base(request, site, mount, prefix, rest[len(prefix) :])
        return Response("Not Found", 404, media_type="text/plain")

    async def _base(
        self, request: Request, site: PayerSite, mount: str, prefix: str, sub: str
    ) -> Response:
        behaviour = site.config.behaviour
        if mount == "production" and behaviour.moved is not None:
            target = site.served_base_url + sub
            if request.url.query:
                target += "?" + request.url.query
            return RedirectResponse(target, status_code=behaviour.moved.status)
        if mount == "production" and behaviour.sandbox_only is not None:
            page = tomcat_page(503, "The service is temporarily unavailable")
            return HTMLResponse(page, status_code=503)
        if (mount == "moved" and behaviour.moved is None) or (
            mount == "sandbox" and not site.has_sandbox
        ):
            return Response("Not Found", 404, media_type="text/plain")
        if request.method != "GET":
            ctx = self._context(request, site, prefix)
            return fhir_response(operation_outcome("Method not allowed", "not-supported"), 405, ctx)
        origin = f"{request.url.scheme}://{request.url.netloc}"
        base = f"{origin}{site.prefix}/{prefix}"
        urls = PayerUrls(
            base=base,
            authorize=site.oauth_url("authorize"),
            token=site.oauth_url("token"),
            revoke=site.oauth_url("revoke"),
            jwks=site.oauth_url("jwks"),
            name=site.config.display_name,
        )
        if sub == "/metadata":
            return self._metadata(request, site, urls)
        if sub == "/.well-known/smart-configuration":
            return self._smart(site, urls)
        cross = behaviour.paging_cross_origin
        paging_on_other_origin = (
            cross is not None
            and not cross.requires_auth
            and _server(request.scope)[0] == site.alt_host
            and bool({"ct", "_page_token", "_getpages", "cursor"} & request.query_params.keys())
        )
        if not paging_on_other_origin and not behaviour.open_data:
            try:
                self.tokens.check_bearer(site.slug, request.headers.get("authorization"))
            except OAuthError as exc:
                body = operation_outcome(exc.description, "login")
                return JSONResponse(body, 401, headers=dict(exc.headers), media_type=FHIR_JSON)
        ctx = self._context(request, site, prefix)
        params = parse_qsl(request.url.query, keep_blank_values=True)
        return handle_fhir(ctx, self.data(site.slug), sub.lstrip("/"), params, str(request.url))

    def _context(self, request: Request, site: PayerSite, prefix: str) -> FhirContext:
        origin = f"{request.url.scheme}://{request.url.netloc}"
        return FhirContext(
            base=f"{origin}{site.prefix}/{prefix}",
            other_base=f"{site.origin(site.alt_host)}{site.prefix}/{prefix}",
            behaviour=site.config.behaviour,
            style=self.paging_style(site.slug),
            secret=derive(self.config.seed, site.slug, "paging-secret"),
            page_size=site.config.page_size,
            max_count=site.config.max_count,
            content_type=PLAIN_JSON if site.config.behaviour.plain_json else FHIR_JSON,
        )

    def _metadata(self, request: Request, site: PayerSite, urls: PayerUrls) -> Response:
        behaviour = site.config.behaviour
        if behaviour.html_login is not None:
            page = login_page(site.config.display_name, site.oauth_url("authorize"), {})
            return HTMLResponse(page, 200)
        if behaviour.metadata_auth is not None:
            try:
                self.tokens.check_bearer(site.slug, request.headers.get("authorization"))
            except OAuthError as exc:
                status = behaviour.metadata_auth.status
                page = tomcat_page(status, "Access denied: full authentication is required")
                return HTMLResponse(page, status, headers=dict(exc.headers))
        body = capability_statement(urls, behaviour)
        media = PLAIN_JSON if behaviour.plain_json else FHIR_JSON
        return JSONResponse(body, 200, media_type=media)

    def _smart(self, site: PayerSite, urls: PayerUrls) -> Response:
        behaviour = site.config.behaviour
        if behaviour.html_login is not None and behaviour.html_login.smart_config_too:
            page = login_page(site.config.display_name, site.oauth_url("authorize"), {})
            return HTMLResponse(page, 200)
        if behaviour.no_smart_config is not None:
            status = behaviour.no_smart_config.status
            return HTMLResponse(
                tomcat_page(status, "The requested resource is not available"), status
            )
        return JSONResponse(smart_configuration(urls, behaviour))

    async def _oauth(self, request: Request, site: PayerSite, name: str) -> Response:
        auth = self._auth[site.slug]
        no_store = {"Cache-Control": "no-store", "Pragma": "no-cache"}
        try:
            if name == "token" and request.method == "POST":
                form = dict(parse_qsl((await request.body()).decode("utf-8", "replace")))
                body = self.tokens.token(auth, form, request.headers.get("authorization"))
                return JSONResponse(body, headers=no_store)
            if name == "authorize":
                return await self.journeys.authorize(request, site, auth)
            if name == "consent":
                return await self.journeys.consent(request, site, auth)
            if name == "revoke" and request.method == "POST":
                form = dict(parse_qsl((await request.body()).decode("utf-8", "replace")))
                self.tokens.revoke(form.get("token", ""))
                return Response(b"", 200)
            if name == "jwks" and request.method == "GET":
                return Response(_jwks_body(self.config.seed), media_type="application/json")
        except OAuthError as exc:
            return JSONResponse(exc.body(), exc.status, headers={**no_store, **exc.headers})
        return JSONResponse({"error": "invalid_request", "error_description": "not found"}, 404)


@functools.lru_cache(maxsize=8)
def _jwks_body(seed: int) -> bytes:
    """The JWKS document as served (the same for every payer of a fleet: encoded once)."""
    return bytes(JSONResponse(jwks(seed)).body)


def _server(scope: Scope) -> tuple[str, int]:
    server = scope.get("server")
    if server:
        return str(server[0]), int(server[1] or 0)
    for key, value in scope.get("headers", []):
        if key == b"host":
            host, _, port = value.decode("latin-1").partition(":")
            return host, int(port or 80)
    return "", 0


class _Accounting:
    """Outer ASGI layer: counts requests per host, logs headers, injects faults and resets."""

    def __init__(self, fleet: Fleet, inner: Starlette) -> None:
        self.fleet = fleet
        self.inner = inner

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith("/_fleet/"):
            await self.inner(scope, receive, send)
            return
        fleet = self.fleet
        address, port = _server(scope)
        path: str = scope["path"]
        segments = path.split("/", 3)
        site = (
            fleet.sites.get(segments[2]) if len(segments) > 2 and segments[1] == "payers" else None
        )
        slug = site.slug if site is not None else None
        started = fleet.stats.started(address, slug)
        status: int | None = None
        reset = False

        async def tracking_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            if site is None:
                await self.inner(scope, receive, tracking_send)
                return
            target = f"{scope['method']} {path}?{scope.get('query_string', b'').decode('latin-1')}"
            fault = fleet.faults.plan(site.slug, site.config.behaviour, target)
            if fault.delay_s:
                await anyio.sleep(fault.delay_s)
            if fault.action == "reset":
                reset = True
                if _abort_connection(send):
                    return
                raise FleetReset(f"fleet reset the connection to {target}")
            response: Response | None = None
            if fault.action == "error":
                page = tomcat_page(
                    fault.status, "The server is temporarily unable to service the request"
                )
                response = HTMLResponse(page, fault.status)
            elif fault.action == "throttle":
                body = operation_outcome("Too many requests: rate limit exceeded", "throttled")
                response = JSONResponse(
                    body, 429, headers=dict(fault.headers), media_type=FHIR_JSON
                )
            if response is not None:
                await response(scope, receive, tracking_send)
            else:
                await self.inner(scope, receive, tracking_send)
        finally:
            fleet.stats.finished(scope, address, port, slug, status, started, reset)


def _abort_connection(send: Send) -> bool:
    """Reset the client's TCP connection (RST) under uvicorn; False when not possible."""
    cycle = getattr(send, "__self__", None)
    transport = getattr(cycle, "transport", None)
    if cycle is None or transport is None:
        return False
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()
    cycle.disconnected = True
    return True
