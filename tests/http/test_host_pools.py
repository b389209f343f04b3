"""One connection pool per origin (probe.http.connect.HostPools) and direct connects.

Real loopback servers: two origins get two pools, a plain-HTTP crawl never builds a TLS context, and a refused connection is still named
``connection_refused``.
"""

from __future__ import annotations

import socket

import anyio
import httpx

from probe.http.connect import HostPools, guarded_transport
from probe.http.fetch import Fetcher, new_client
from probe.http.guard import AddressGuard
from probe.http.limits import Limits
from probe.models import Exchange, ExtractStep
from tests.servers import Route, serve

BODY = b'{"resourceType": "CapabilityStatement"}'
ROUTES = {"/r4/metadata": Route(200, BODY, {"Content-Type": "application/fhir+json"})}


def _fetch_all(urls: list[str], guard: AddressGuard) -> tuple[list[Exchange], HostPools]:
    async def go() -> tuple[list[Exchange], HostPools]:
        async with new_client(guard=guard) as client:
            transport = client._transport
            assert isinstance(transport, HostPools)
            fetcher = Fetcher(client, Limits(max_retries=0), guard=guard)
            out = [(await fetcher.get(u, step=ExtractStep.DISCOVERY))[-1] for u in urls]
            # One pool per origin: (scheme, host, port) of each test server.
            assert sorted(port for _, _, port in transport._pools) == sorted(
                {httpx.URL(u).port for u in urls}
            )
            assert transport._context is None  # plain HTTP only: no TLS context was built
            return out, transport

    return anyio.run(go)


def test_each_origin_gets_its_own_pool() -> None:
    with serve(ROUTES) as (first, seen_first), serve(ROUTES) as (second, seen_second):
        guard = AddressGuard()
        guard.admit(first + "/r4", second + "/r4")
        urls = [f"{base}/r4/metadata" for base in (first, second, first, second, first)]
        exchanges, transport = _fetch_all(urls, guard)
    assert [e.status for e in exchanges] == [200] * 5
    assert transport.origins == 0  # closed with the client
    assert len(seen_first) == 3 and len(seen_second) == 2


def test_the_tls_context_is_built_once_on_first_https_use() -> None:
    guard = AddressGuard()
    limits = httpx.Limits(max_connections=4, max_keepalive_connections=2)
    transport = guarded_transport(guard, verify=True, limits=limits)
    assert transport._context is None
    plain = transport.pool_for(httpx.URL("http://127.0.0.1:1/"))
    assert transport._context is None and plain is transport.pool_for(
        httpx.URL("http://127.0.0.1:1/x")
    )
    secure = transport.pool_for(httpx.URL("https://127.0.0.1:2/"))
    context = transport._context
    assert context is not None and secure is not plain
    transport.pool_for(httpx.URL("https://127.0.0.2:2/"))
    assert transport._context is context and transport.origins == 3


def test_a_closed_port_is_connection_refused_through_the_direct_connect() -> None:
    with socket.socket() as sock:  # a port nothing listens on (bound, never listening)
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        guard = AddressGuard()
        url = f"http://127.0.0.1:{port}/r4/metadata"
        guard.admit(url)

        async def go() -> Exchange:
            async with new_client(guard=guard) as client:
                fetcher = Fetcher(client, Limits(max_retries=0), guard=guard)
                return (await fetcher.get(url, step=ExtractStep.DISCOVERY))[-1]

        exchange = anyio.run(go)
    assert exchange.status is None
    assert exchange.error_class == "connection_refused", exchange
