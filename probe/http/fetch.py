"""HTTP fetching that turns every outcome into an Exchange, never an exception.

One :class:`Fetcher` wraps an ``httpx.AsyncClient`` (the transport is the seam for tests) and
bounds every request: a total deadline on top of httpx's connect/read timeouts (a server that
trickles bytes cannot hold a request open), a cap on body bytes enforced while streaming (after
decompression, so a gzip bomb stops at the cap; a declared length over the cap is refused before
reading), and a cap on redirects. Redirects are followed by hand so that each hop is visible,
credentials (and request bodies) never leave the origin they were meant for, and a hop to
another origin is refused when it leads into an internal network (:mod:`probe.http.guard`).
A per-host circuit breaker (:mod:`probe.http.breaker`) can stop requests to a host that keeps
failing. Every outcome has a stable ``error_class`` (see docs/hostile.md): transport failures
(``dns``, ``connection_refused``, ``tls``, ``timeout``, ``no_response``, ``connection_reset``,
``content_length_mismatch``, ``protocol_error``, ...) and bounds (``body_too_large``,
``too_many_redirects``, ``redirect_cross_origin``, ``ssrf_refused``, ``circuit_open``).
"""

from __future__ import annotations

import logging
import random
import socket
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol
from urllib.parse import urljoin

import anyio
import httpx

from probe import __version__
from probe.http.breaker import CircuitBreaker, OpenCircuit
from probe.http.connect import ConnectRefused, guarded_transport
from probe.http.decode import (
    ACCEPT_ENCODING,
    STEP,
    BoundedDecoder,
    CorruptEncoding,
    UnsupportedEncoding,
)
from probe.http.guard import AddressGuard
from probe.http.limits import Limits
from probe.http.politeness import rate_limit_info, retry_after_seconds
from probe.http.redact import redact_url
from probe.http.urls import origin_of, printable_url, url_problem
from probe.models import Exchange, ExtractStep

log = logging.getLogger(__name__)

USER_AGENT = f"probe/{__version__} (+https://github.com/probe-fhir/probe)"
FHIR_JSON = "application/fhir+json"
RETRYABLE_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
#: Of a body cut at the cap, only this much is kept (it cannot be parsed; it is evidence).
KEPT_OF_TRUNCATED = 64 * 1024
_SENSITIVE_HEADERS = frozenset({"authorization", "cookie", "proxy-authorization"})
#: One hop's response: status, headers, body (decoded), truncated at the cap, declared length,
#: decoded size, and a named problem with the body (error class, detail) or None.
_Streamed = tuple[int, list[tuple[str, str]], bytes, bool, int | None, int, tuple[str, str] | None]


class GateSlot(Protocol):
    """One request's hold on its host's slot: the host's answer goes back to the gate."""

    def answered(self, status: int, headers: Sequence[tuple[str, str]]) -> None:  # pragma: no cover
        """Tell the gate how the host answered (a 429, Retry-After, rate-limit headers)."""
        ...


class HostGate(Protocol):
    """Per-host politeness: concurrency and pace, applied around each request, adapted to
    each host's answers (see :mod:`probe.http.politeness`)."""

    def slot(self, host: str) -> AbstractAsyncContextManager[GateSlot]:  # pragma: no cover
        """An async context that holds one request slot for `host`."""
        ...


@dataclass(slots=True)
class Fetcher:
    """Makes bounded HTTP requests and reports each as an Exchange (plus each retry).

    `gate` applies per-host politeness, `breaker` stops requests to hosts that keep failing,
    `guard` refuses redirect hops into internal networks (SSRF).
    """

    client: httpx.AsyncClient
    limits: Limits = field(default_factory=Limits)
    gate: HostGate | None = None
    sleep: Callable[[float], Awaitable[None]] | None = None
    breaker: CircuitBreaker | None = None
    guard: AddressGuard = field(default_factory=AddressGuard)

    async def get(
        self,
        url: str,
        *,
        step: ExtractStep,
        accept: str = FHIR_JSON,
        headers: Mapping[str, str] | None = None,
        follow_cross_origin: bool = False,
        retries: int | None = None,
        supplied_by: str | None = None,
    ) -> list[Exchange]:
        """GET `url` with retries on 408/429/5xx; returns every attempt, the last one final.

        Attempts after the first carry step ``retry``. Credentials in `headers` are sent only to
        the origin of `url`; a redirect elsewhere is followed without them when
        `follow_cross_origin` is set, and not followed otherwise. `supplied_by` names the base
        URL of the server a URL came from (a document's jwks_uri, a next link): such a URL is
        refused (``ssrf_refused``) when it leads into an internal network.
        """
        return await self.request(
            "GET",
            url,
            step=step,
            accept=accept,
            headers=headers,
            follow_cross_origin=follow_cross_origin,
            retries=retries,
            supplied_by=supplied_by,
        )

    async def request(
        self,
        method: str,
        url: str,
        *,
        step: ExtractStep,
        accept: str = FHIR_JSON,
        headers: Mapping[str, str] | None = None,
        content: bytes | None = None,
        follow_cross_origin: bool = False,
        retries: int | None = None,
        retry_step: ExtractStep = ExtractStep.RETRY,
        supplied_by: str | None = None,
    ) -> list[Exchange]:
        """Send one request with retries on 408/429/5xx; returns every attempt, the last final.

        Attempts after the first carry `retry_step` (``retry`` unless the caller keeps them in
        their own step, as reference reads do). With `supplied_by` (see :meth:`get`) the URL
        is first checked against internal networks.
        """
        problem = url_problem(url)
        if problem is not None:
            return [
                Exchange(
                    method=method,
                    url=_shown(url),
                    step=step,
                    error_class="invalid_url",
                    error_detail=f"not sent: {problem}",
                    started_at=datetime.now(UTC),
                )
            ]
        if supplied_by is not None:
            refused = await self.ssrf_refusal(supplied_by, url, step=step, method=method)
            if refused is not None:
                return [refused]
        max_retries = self.limits.max_retries if retries is None else retries
        attempts: list[Exchange] = []
        for attempt in range(max_retries + 1):
            exchange = await self._once(
                method,
                url,
                step=step if attempt == 0 else retry_step,
                accept=accept,
                headers=headers,
                content=content,
                follow_cross_origin=follow_cross_origin,
            )
            attempts.append(exchange)
            if attempt == max_retries or not _retryable(exchange):
                break
            await self._sleep(self.retry_delay(exchange, attempt))
        return attempts

    async def ssrf_refusal(
        self, supplied_by: str, url: str, *, step: ExtractStep, method: str = "GET"
    ) -> Exchange | None:
        """An ``ssrf_refused`` Exchange (nothing sent) when a server-supplied `url` leads from
        `supplied_by`'s network into an internal one; None when it may be fetched."""
        started = datetime.now(UTC)
        reason = await self.guard.refusal(supplied_by, url)
        if reason is None:
            return None
        return Exchange(
            method=method,
            url=redact_url(url),
            step=step,
            error_class="ssrf_refused",
            error_detail=f"{redact_url(url)}: {reason}",
            started_at=started,
        )

    def retry_delay(self, exchange: Exchange, attempt: int) -> float:
        """Seconds to wait before the next attempt: Retry-After when given, else the reset of
        an exhausted rate-limit quota (RateLimit, X-RateLimit-*), else backoff+jitter."""
        told = retry_after_seconds(exchange.header("retry-after"))
        if told is None and exchange.status in (429, 503):
            quota = rate_limit_info(exchange.headers)
            if quota.remaining == 0 and quota.reset_s is not None:
                told = quota.reset_s
        if told is not None:
            return float(min(told, self.limits.max_retry_after))
        backoff = min(self.limits.backoff_max, self.limits.backoff_base * (2.0**attempt))
        # "Equal jitter": half the backoff is guaranteed, the other half random.
        return backoff / 2 + random.uniform(0, backoff / 2)

    async def _sleep(self, seconds: float) -> None:
        if self.sleep is not None:
            await self.sleep(seconds)
        else:
            await anyio.sleep(seconds)

    async def _once(
        self,
        method: str,
        url: str,
        *,
        step: ExtractStep,
        accept: str,
        headers: Mapping[str, str] | None,
        content: bytes | None,
        follow_cross_origin: bool,
    ) -> Exchange:
        started = datetime.now(UTC)
        t0 = time.perf_counter()
        origin = origin_of(url)
        hops: list[str] = []
        current = url
        current_method = method
        current_content = content
        cap = self.limits.max_body_bytes
        progress = _Progress(remaining=self.limits.total_timeout)

        def failure(error_class: str, detail: str) -> Exchange:
            return self._failure(
                method, url, step, t0, started, hops, error_class, detail, progress.waited
            )

        def answered(error_class: str | None = None, detail: str | None = None) -> Exchange:
            """The exchange for the response just received (the loop's current variables)."""
            return self._exchange(
                method, url, step, t0, started, status, resp_headers, body, truncated, hops,
                current, size=size, error_class=error_class, error_detail=detail,
                waited=progress.waited,
            )  # fmt: skip

        try:
            # The deadline counts time on the wire only: waiting for a slot is not the server's.
            for _ in range(self.limits.max_redirects + 1):
                send_headers = _headers_for(current, origin, accept, headers)
                progress.head = False
                streamed = await self._send(
                    current_method, current, send_headers, current_content, progress
                )
                status, resp_headers, body, truncated, declared, size, problem = streamed
                self._record(current, status, resp_headers, body, None)
                location = _header(resp_headers, "location")
                if status in _REDIRECT_STATUSES and location:
                    try:
                        target = urljoin(current, location)
                    except ValueError:
                        target = location
                    bad_target = url_problem(target)
                    if bad_target is not None:
                        return answered("redirect_invalid", f"redirect not followed: {bad_target}")
                    same_origin = origin_of(target) == origin
                    keeps_body = current_content is not None and status in (307, 308)
                    refusal: tuple[str, str] | None = None
                    if not same_origin and (not follow_cross_origin or keeps_body):
                        why = " with the request body" if keeps_body else ""
                        refusal = (
                            "redirect_cross_origin",
                            f"redirect to another origin{why}: {redact_url(target)}",
                        )
                    elif not same_origin:
                        ssrf = await self.guard.refusal(url, target)
                        if ssrf is not None:
                            refusal = (
                                "ssrf_refused",
                                f"redirect to {redact_url(target)}: {ssrf}",
                            )
                    if refusal is not None:
                        return answered(*refusal)
                    hops.append(redact_url(target))
                    if status == 303 or (status in (301, 302) and current_method == "POST"):
                        current_method, current_content = "GET", None
                    current = target
                    continue
                too_large = None
                if truncated:
                    too_large = (
                        f"declared {declared} bytes, over the {cap}-byte cap (not read)"
                        if declared is not None and declared > cap
                        else f"body exceeded {cap} bytes"
                    )
                if problem is not None:
                    return answered(*problem)
                return answered("body_too_large" if truncated else None, too_large)
            return answered(
                "too_many_redirects", f"more than {self.limits.max_redirects} redirects"
            )
        except _CircuitOpen as exc:
            circuit = exc.circuit
            return failure(
                "circuit_open",
                f"not sent: the circuit for {circuit.host} opened at "
                f"{circuit.opened_at:%H:%M:%S} UTC after {circuit.reason}",
            )
        except TimeoutError:
            limit = self.limits.total_timeout
            if progress.head:
                result = failure("timeout", f"no complete response within {limit:g} s")
            else:
                result = failure("no_response", f"no response began within {limit:g} s")
        except _NoResponse:
            result = failure(
                "no_response",
                f"the request was sent but no response began within {self.limits.read_timeout:g} s",
            )
        except httpx.HTTPError as exc:
            result = failure(*classify_transport_error(exc))
        except (OSError, ssl.SSLError) as exc:
            result = failure("transport", str(exc))
        self._record(current, None, [], b"", result.error_class)
        return result

    def _record(
        self,
        url: str,
        status: int | None,
        headers: list[tuple[str, str]],
        body: bytes,
        error_class: str | None,
    ) -> None:
        """Count one hop's outcome against its host's circuit."""
        if self.breaker is None:
            return
        opened = self.breaker.record(
            httpx.URL(url).host, status, error_class, _header(headers, "content-type"), body
        )
        if opened is not None:
            log.warning("circuit opened for %s: %s", opened.host, opened.reason)

    async def _send(
        self,
        method: str,
        url: str,
        headers: dict[str, str],
        content: bytes | None,
        progress: _Progress,
    ) -> _Streamed:
        host = httpx.URL(url).host
        self._check_circuit(host)
        if self.gate is None:
            return await self._on_the_wire(method, url, headers, content, progress)
        queued = time.perf_counter()
        async with self.gate.slot(host) as held:
            progress.waited += time.perf_counter() - queued
            self._check_circuit(host)  # it may have opened while this request waited
            streamed = await self._on_the_wire(method, url, headers, content, progress)
            held.answered(streamed[0], streamed[1])  # a 429 or rate-limit headers pace the host
            return streamed

    async def _on_the_wire(
        self,
        method: str,
        url: str,
        headers: dict[str, str],
        content: bytes | None,
        progress: _Progress,
    ) -> _Streamed:
        """One hop under what is left of the total deadline (probe's own waiting excluded)."""
        started = time.perf_counter()
        try:
            with anyio.fail_after(max(progress.remaining, 0.0)):
                return await self._stream(method, url, headers, content, progress)
        finally:
            progress.remaining -= time.perf_counter() - started

    def _check_circuit(self, host: str) -> None:
        if self.breaker is not None:
            circuit = self.breaker.refusal(host)
            if circuit is not None:
                raise _CircuitOpen(circuit)

    async def _stream(
        self,
        method: str,
        url: str,
        headers: dict[str, str],
        content: bytes | None,
        progress: _Progress,
    ) -> _Streamed:
        cap = self.limits.max_body_bytes
        timeout = httpx.Timeout(
            connect=self.limits.connect_timeout,
            read=self.limits.read_timeout,
            write=self.limits.read_timeout,
            pool=self.limits.connect_timeout,
        )
        request = self.client.build_request(
            method, url, headers=headers, content=content, timeout=timeout
        )
        try:
            response = await self.client.send(request, stream=True, follow_redirects=False)
        except httpx.ReadTimeout as exc:
            raise _NoResponse from exc
        progress.head = True
        try:
            received = list(response.headers.multi_items())
            declared = _declared_length(response.headers)
            if declared is not None and declared > cap:
                # Over the cap before a byte is read (decoded, it can only be larger).
                return response.status_code, received, b"", True, declared, 0, None
            try:
                # A response built in memory (a mock transport) was read, and decoded, already.
                coding = (
                    None
                    if response.is_stream_consumed
                    else response.headers.get("content-encoding")
                )
                decoder = BoundedDecoder(coding)
            except UnsupportedEncoding as exc:
                problem = ("unsupported_content_encoding", str(exc))
                return response.status_code, received, b"", False, declared, 0, problem
            chunks: list[bytes] = []
            size = 0
            raw_size = 0
            try:
                async for raw in _raw_chunks(response):
                    raw_size += len(raw)
                    for piece in decoder.feed(raw):
                        size += len(piece)
                        if size > cap or raw_size > cap:
                            return self._cut(response, received, chunks, declared, cap)
                        chunks.append(piece)
                for piece in decoder.finish():
                    size += len(piece)
                    if size > cap:
                        return self._cut(response, received, chunks, declared, cap)
                    chunks.append(piece)
            except CorruptEncoding as exc:
                body = _head(chunks, KEPT_OF_TRUNCATED)
                return (
                    response.status_code,
                    received,
                    body,
                    False,
                    declared,
                    size,
                    ("decoding_error", str(exc)),
                )
            return response.status_code, received, b"".join(chunks), False, declared, size, None
        finally:
            await response.aclose()

    @staticmethod
    def _cut(
        response: httpx.Response,
        received: list[tuple[str, str]],
        chunks: list[bytes],
        declared: int | None,
        cap: int,
    ) -> _Streamed:
        """A body over the cap: unusable anyway, so only its start is kept (as evidence)."""
        head = _head(chunks, KEPT_OF_TRUNCATED)
        chunks.clear()
        return response.status_code, received, head, True, declared, cap, None

    def _exchange(
        self,
        method: str,
        url: str,
        step: ExtractStep,
        t0: float,
        started: datetime,
        status: int,
        headers: list[tuple[str, str]],
        body: bytes,
        truncated: bool,
        hops: list[str],
        final_url: str,
        *,
        size: int,
        error_class: str | None = None,
        error_detail: str | None = None,
        waited: float = 0.0,
    ) -> Exchange:
        return Exchange(
            method=method,
            url=redact_url(url),
            step=step,
            status=status,
            latency_ms=(time.perf_counter() - t0 - waited) * 1000,
            wait_ms=waited * 1000,
            size_bytes=size,
            content_type=_header(headers, "content-type"),
            error_class=error_class,
            error_detail=error_detail,
            final_url=redact_url(final_url),
            redirects=tuple(hops),
            headers=tuple((k, v) for k, v in headers if k.lower() not in _SENSITIVE_HEADERS),
            body=body,
            truncated=truncated,
            started_at=started,
        )

    def _failure(
        self,
        method: str,
        url: str,
        step: ExtractStep,
        t0: float,
        started: datetime,
        hops: list[str],
        error_class: str,
        detail: str,
        waited: float = 0.0,
    ) -> Exchange:
        return Exchange(
            method=method,
            url=redact_url(url),
            step=step,
            latency_ms=(time.perf_counter() - t0 - waited) * 1000,
            wait_ms=waited * 1000,
            error_class=error_class,
            error_detail=detail,
            redirects=tuple(hops),
            started_at=started,
        )


class _CircuitOpen(Exception):
    """Raised inside the fetcher when a host's circuit is open (never escapes it)."""

    def __init__(self, circuit: OpenCircuit) -> None:
        super().__init__(circuit.host)
        self.circuit = circuit


class _NoResponse(Exception):
    """The request went out but the response head did not come within the read timeout."""


@dataclass(slots=True)
class _Progress:
    """One request's progress: whether the current hop's response head has arrived (a timeout
    is named by it), seconds left of its deadline on the wire, seconds waited for slots."""

    remaining: float
    head: bool = False
    waited: float = 0.0


async def _raw_chunks(response: httpx.Response) -> AsyncIterator[bytes]:
    """The body as received (content codings not undone); an in-memory body in STEP pieces."""
    if response.is_stream_consumed:
        content = response.content
        for start in range(0, len(content), STEP):
            yield content[start : start + STEP]
        return
    async for raw in response.aiter_raw():
        yield raw


def _head(chunks: list[bytes], limit: int) -> bytes:
    """The first `limit` bytes of a list of chunks, without joining them all."""
    kept = bytearray()
    for chunk in chunks:
        kept += chunk[: limit - len(kept)]
        if len(kept) >= limit:
            break
    return bytes(kept)


def _declared_length(headers: httpx.Headers) -> int | None:
    value = headers.get("content-length")
    if value is None or not value.strip().isdigit():
        return None
    return int(value.strip())


def _retryable(exchange: Exchange) -> bool:
    if exchange.status is not None:
        return exchange.status in RETRYABLE_STATUSES
    return exchange.error_class in {
        "timeout",
        "no_response",
        "connection_reset",
        "protocol_error",
        "read_error",
    }


def _shown(url: str) -> str:
    """A URL that could not be used, as evidence: printable, cut, secrets stripped if it parses."""
    text = printable_url(url)
    try:
        return redact_url(text)
    except ValueError:
        return text.split("?", 1)[0]


def _header(headers: list[tuple[str, str]], name: str) -> str | None:
    for key, value in headers:
        if key.lower() == name:
            return value
    return None


def _headers_for(
    url: str, origin: str, accept: str, extra: Mapping[str, str] | None
) -> dict[str, str]:
    """Request headers for `url`: credentials only when it is on the intended origin."""
    headers = {"Accept": accept, "Accept-Encoding": ACCEPT_ENCODING, "User-Agent": USER_AGENT}
    same_origin = origin_of(url) == origin
    for key, value in (extra or {}).items():
        if key.lower() in _SENSITIVE_HEADERS and not same_origin:
            continue
        headers[key] = value
    return headers


def classify_transport_error(exc: BaseException) -> tuple[str, str]:
    """Name a transport failure: dns, connection_refused, tls, timeout, connection_reset, ..."""
    chain: list[BaseException] = []
    cursor: BaseException | None = exc
    while cursor is not None and len(chain) < 10:
        chain.append(cursor)
        cursor = cursor.__cause__ or cursor.__context__
    text = " | ".join(f"{type(e).__name__}: {e}" for e in chain)
    lowered = text.lower()
    if any(isinstance(e, ConnectRefused) for e in chain):
        return "ssrf_refused", f"connection refused by probe: {_first_line(chain[-1])}"
    if isinstance(exc, httpx.TimeoutException):
        kind = {
            httpx.ConnectTimeout: "connect",
            httpx.ReadTimeout: "read",
            httpx.WriteTimeout: "write",
            httpx.PoolTimeout: "pool",
        }.get(type(exc), "")
        return "timeout", f"{kind} timeout".strip()
    if any(isinstance(e, socket.gaierror) for e in chain) or any(
        marker in lowered
        for marker in (
            "name or service not known",
            "nodename nor servname",
            "getaddrinfo failed",
            "temporary failure in name resolution",
            "no address associated",
            "name resolution",
        )
    ):
        return "dns", "DNS lookup failed: the host name does not resolve"
    if any(isinstance(e, ssl.SSLError | ssl.CertificateError) for e in chain) or any(
        marker in lowered for marker in ("certificate", "ssl", "tls", "handshake")
    ):
        return "tls", f"TLS failure: {_first_line(chain[-1])}"
    if any(isinstance(e, ConnectionRefusedError) for e in chain) or (
        "connection refused" in lowered or "errno 111" in lowered
    ):
        return "connection_refused", "connection refused: nothing listens at that address"
    if isinstance(exc, httpx.RemoteProtocolError):
        if "received" in lowered and "expected" in lowered:
            return (
                "content_length_mismatch",
                f"the body ended before its declared Content-Length: {_first_line(exc)}",
            )
        return "protocol_error", f"server broke the HTTP protocol: {_first_line(exc)}"
    if any(isinstance(e, ConnectionResetError) for e in chain) or "reset" in lowered:
        return "connection_reset", "connection reset by the server"
    if isinstance(exc, httpx.ReadError):
        return "read_error", f"read failed: {_first_line(exc)}"
    if isinstance(exc, httpx.ConnectError):
        return "connect_error", f"could not connect: {_first_line(exc)}"
    return "transport", f"{type(exc).__name__}: {_first_line(exc)}"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:200]


def new_client(
    *, verify: bool | str = True, guard: AddressGuard | None = None
) -> httpx.AsyncClient:
    """An AsyncClient configured for probing; `verify` may name a CA bundle file.

    With `guard`, every connection goes only to addresses the guard allows (resolved once per
    connection: no DNS rebinding past the SSRF checks); share the guard with the Fetcher, and
    `guard.admit` the operator's own URLs first.
    """
    limits = httpx.Limits(max_connections=100, max_keepalive_connections=20)  # per origin
    if guard is not None:  # one connection pool per origin; TLS context built on first use
        transport = guarded_transport(guard, verify=verify, limits=limits)
        return httpx.AsyncClient(
            follow_redirects=False, headers={"User-Agent": USER_AGENT}, transport=transport
        )
    ctx = ssl.create_default_context(cafile=verify) if isinstance(verify, str) else verify
    return httpx.AsyncClient(
        verify=ctx, follow_redirects=False, limits=limits, headers={"User-Agent": USER_AGENT}
    )
