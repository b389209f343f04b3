"""Connections that go only to addresses the SSRF guard checked (no DNS rebinding).

httpx resolves a host name when it opens a connection, after probe has checked the URL; a server
whose DNS answers a public address to the check and an internal one to the connection would get
past the check. :class:`GuardedNetworkBackend` is an httpcore network backend that resolves the
name itself, asks :meth:`probe.http.guard.AddressGuard.connect_addresses` which of the addresses
may be used, and connects to those IP addresses only. TLS is unaffected: httpcore still sends
the host name for SNI and checks the certificate against it.

:func:`guarded_transport` builds the httpx transport that uses it (see ``fetch.new_client``).
"""

from __future__ import annotations

import ssl
from collections.abc import Iterable

import httpcore
import httpx

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
        self.inner = inner or httpcore.AnyIOBackend()

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
        return await self.inner.connect_unix_socket(
            path, timeout=timeout, socket_options=socket_options
        )

    async def sleep(self, seconds: float) -> None:
        """Sleep on the inner backend."""
        await self.inner.sleep(seconds)


def guarded_transport(
    guard: AddressGuard,
    *,
    verify: ssl.SSLContext | bool,
    limits: httpx.Limits,
    inner: httpcore.AsyncNetworkBackend | None = None,
) -> httpx.AsyncHTTPTransport:
    """An httpx transport whose connections go through :class:`GuardedNetworkBackend`."""
    transport = httpx.AsyncHTTPTransport(verify=verify, limits=limits)
    context = verify if isinstance(verify, ssl.SSLContext) else httpx.create_ssl_context(verify)
    # httpx has no parameter for the network backend: the pool it built is replaced by the same
    # pool with ours (the attribute is private; httpx is pinned to 0.28.*).
    transport._pool = httpcore.AsyncConnectionPool(
        ssl_context=context,
        max_connections=limits.max_connections,
        max_keepalive_connections=limits.max_keepalive_connections,
        keepalive_expiry=limits.keepalive_expiry,
        network_backend=GuardedNetworkBackend(guard, inner),
    )
    return transport
