"""Connections that go only to addresses the SSRF guard checked (no DNS rebinding).

httpx resolves a host name when it opens a connection, after probe has checked the URL; a server
whose DNS answers a public address to the check and an internal one to the connection would get
past the check. :class:`GuardedNetworkBackend` is an httpcore network backend that resolves the
name itself, asks :meth:`probe.http.guard.AddressGuard.connect_addresses` which of the addresses
may be used, and connects to those IP addresses only. TLS is unaffected: httpcore still sends
the host name for SNI and checks the certificate against it.

:func:`guarded_transport` builds the httpx transport that uses it (see ``fetch.new_client``): a
:class:`HostPools` transport, one httpcore connection pool per origin. One pool shared by every
host costs CPU that grows with the number of hosts: httpcore scans all of a pool's connections
(and polls each idle socket) for every request it queues or releases, so at hundreds of
connections the scan was half of a crawl's CPU. A pool per origin scans only that origin's few
connections. The TLS context (the CA bundle read from disk, tens of milliseconds) is built once,
when the first HTTPS origin is met: a crawl or sync over plain HTTP never loads it.

Connections are opened to the checked IP address directly (a non-blocking connect), not through
``anyio.connect_tcp``: for an address already resolved its happy-eyeballs task group only adds a
task, a cancel scope and, on success, a cancellation whose message formats the running task's
repr, once per new connection.
"""

from __future__ import annotations

import errno
import ipaddress
import os
import socket
import ssl
import typing
from collections.abc import Iterable

import anyio
import httpcore
import httpx
from httpcore._backends.anyio import AnyIOStream  # httpcore is pinned through httpx 0.28.*
from httpcore._utils import is_socket_readable
from httpx._transports.default import AsyncResponseStream, map_httpcore_exceptions

from probe.http.guard import AddressGuard, AddressRefused

SocketOption = (
    tuple[int, int, int] | tuple[int, int, bytes | bytearray] | tuple[int, int, None, int]
)


class ConnectRefused(httpcore.ConnectError):
    """A connection refused by the guard (httpx reports it as a ConnectError)."""


class GuardedNetworkBackend(httpcore.AsyncNetworkBackend):
    """Resolves each connection's host once and connects only to addresses the guard allows."""

    def __init__(
        self, guard: AddressGuard, inner: httpcore.AsyncNetworkBackend | None = None
    ) -> None:
        self.guard = guard
        # None: connect to the checked addresses directly (see _connect_address).
        self.inner = inner

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        local_address: str | None = None,
        socket_options: Iterable[SocketOption] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        """Connect to the first reachable address of `host` the guard allows."""
        try:
            addresses = await self.guard.connect_addresses(host)
        except AddressRefused as refused:
            raise ConnectRefused(str(refused)) from None
        if not addresses:
            raise httpcore.ConnectError(f"[Errno -2] Name or service not known: {host}")
        last: httpcore.ConnectError | None = None
        for address in addresses:
            try:
                if self.inner is None:
                    return await _connect_address(address, port, timeout, socket_options)
                return await self.inner.connect_tcp(
                    str(address),
                    port,
                    timeout=timeout,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except httpcore.ConnectTimeout:
                raise  # one connect timeout is the bound, not one per address
            except httpcore.ConnectError as exc:
                last = exc
        assert last is not None
        raise last

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        socket_options: Iterable[SocketOption] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        """Unix sockets are not network addresses: passed through."""
        inner = self.inner or httpcore.AnyIOBackend()
        return await inner.connect_unix_socket(path, timeout=timeout, socket_options=socket_options)

    async def sleep(self, seconds: float) -> None:
        """Sleep on the inner backend."""
        if self.inner is None:
            await anyio.sleep(seconds)
        else:
            await self.inner.sleep(seconds)


async def _connect_address(
    address: ipaddress.IPv4Address | ipaddress.IPv6Address,
    port: int,
    timeout: float | None,  # noqa: ASYNC109 - httpcore's interface
    socket_options: Iterable[SocketOption] | None,
) -> httpcore.AsyncNetworkStream:
    """A TCP connection to one IP address, as httpcore's AnyIO backend would return it."""
    family = socket.AF_INET6 if address.version == 6 else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setblocking(False)
        for option in socket_options or ():
            sock.setsockopt(*option)
        with anyio.fail_after(timeout):
            code = sock.connect_ex((str(address), port))
            if code == errno.EINPROGRESS:
                await anyio.wait_writable(sock)
                code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if code != 0:
                raise OSError(code, os.strerror(code))
        stream = await anyio.abc.SocketStream.from_socket(sock)
    except TimeoutError as exc:
        sock.close()
        raise httpcore.ConnectTimeout(str(exc)) from exc
    except OSError as exc:
        sock.close()
        raise httpcore.ConnectError(str(exc)) from exc
    except BaseException:
        sock.close()
        raise
    return _SocketStream(stream, sock)


class _SocketStream(AnyIOStream):
    """httpcore's AnyIO stream, with the socket kept: httpcore asks every idle connection of a
    pool whether its socket is readable for each request it queues or releases, and anyio
    answers each such question by building every attribute of the socket, a ``getpeername``
    system call included (a tenth of a crawl's CPU). The answers are the same."""

    def __init__(self, stream: anyio.abc.ByteStream, sock: socket.socket) -> None:
        super().__init__(stream)
        self._sock = sock

    def get_extra_info(self, info: str) -> typing.Any:
        """The socket and its readability from the socket kept; the rest from anyio."""
        if info == "is_readable":
            return is_socket_readable(self._sock)
        if info == "socket":
            return self._sock
        return super().get_extra_info(info)

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
    ) -> httpcore.AsyncNetworkStream:
        """TLS over this connection (the socket underneath is the same)."""
        tls = await super().start_tls(ssl_context, server_hostname, timeout)
        assert isinstance(tls, AnyIOStream)
        return _SocketStream(tls._stream, self._sock)


class HostPools(httpx.AsyncBaseTransport):
    """An httpx transport with one httpcore connection pool per origin (scheme, host, port).

    `limits` apply per origin. Connections go through `backend`; the TLS context is built from
    `verify` (True: certifi's bundle, a path: that CA file, or a context) on first HTTPS use.
    """

    def __init__(
        self,
        backend: httpcore.AsyncNetworkBackend,
        *,
        verify: ssl.SSLContext | bool | str,
        limits: httpx.Limits,
    ) -> None:
        self._backend = backend
        self._verify = verify
        self._context = verify if isinstance(verify, ssl.SSLContext) else None
        self._limits = limits
        self._pools: dict[tuple[bytes, bytes, int | None], httpcore.AsyncConnectionPool] = {}

    def ssl_context(self) -> ssl.SSLContext:
        """The TLS context every HTTPS origin shares (built on first use)."""
        if self._context is None:
            verify = self._verify
            self._context = (
                ssl.create_default_context(cafile=verify)
                if isinstance(verify, str)
                else httpx.create_ssl_context(verify=bool(verify))
            )
        return self._context

    def pool_for(self, url: httpx.URL) -> httpcore.AsyncConnectionPool:
        """The connection pool of `url`'s origin (made on first use)."""
        key = (url.raw_scheme, url.raw_host, url.port)
        pool = self._pools.get(key)
        if pool is None:
            pool = self._pools[key] = httpcore.AsyncConnectionPool(
                ssl_context=self.ssl_context() if url.raw_scheme == b"https" else None,
                max_connections=self._limits.max_connections,
                max_keepalive_connections=self._limits.max_keepalive_connections,
                keepalive_expiry=self._limits.keepalive_expiry,
                network_backend=self._backend,
            )
        return pool

    @property
    def origins(self) -> int:
        """How many origins have a pool."""
        return len(self._pools)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send `request` on its origin's pool (httpx's own mapping of requests and errors)."""
        assert isinstance(request.stream, httpx.AsyncByteStream)
        core_request = httpcore.Request(
            method=request.method,
            url=httpcore.URL(
                scheme=request.url.raw_scheme,
                host=request.url.raw_host,
                port=request.url.port,
                target=request.url.raw_path,
            ),
            headers=request.headers.raw,
            content=request.stream,
            extensions=request.extensions,
        )
        with map_httpcore_exceptions():
            response = await self.pool_for(request.url).handle_async_request(core_request)
        assert isinstance(response.stream, typing.AsyncIterable)
        return httpx.Response(
            status_code=response.status,
            headers=response.headers,
            stream=AsyncResponseStream(response.stream),
            extensions=response.extensions,
        )

    async def aclose(self) -> None:
        """Close every origin's pool."""
        pools, self._pools = list(self._pools.values()), {}
        for pool in pools:
            await pool.aclose()


def guarded_transport(
    guard: AddressGuard,
    *,
    verify: ssl.SSLContext | bool | str,
    limits: httpx.Limits,
    inner: httpcore.AsyncNetworkBackend | None = None,
) -> HostPools:
    """An httpx transport (a pool per origin, `limits` each) whose connections go through
    :class:`GuardedNetworkBackend`."""
    return HostPools(GuardedNetworkBackend(guard, inner), verify=verify, limits=limits)
