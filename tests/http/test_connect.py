"""Connections go only to addresses the guard checked: pinning, and DNS rebinding refused.

The guard's DNS is a script (a name answers differently on each lookup, as a rebinding server
does); the network below the guard either records where a connection would go, or is the real
one, reaching a server this test runs on 127.0.0.1 under a name that no real DNS knows.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable

import anyio
import httpcore
import httpx
import pytest

from probe.http.connect import (
    ConnectRefused,
    GuardedNetworkBackend,
    SocketOption,
    guarded_transport,
)
from probe.http.fetch import Fetcher, new_client
from probe.http.guard import AddressGuard, AddressRefused, HostAddresses
from probe.http.limits import Limits
from probe.models import Exchange, ExtractStep
from tests.servers import Route, serve

PUBLIC_A, PUBLIC_B = "8.8.8.8", "8.8.4.4"
METADATA = "169.254.169.254"


class ScriptedDns:
    """Each name answers the next entry of its script on each lookup (the last one repeats)."""

    def __init__(self, script: dict[str, list[list[str]]]) -> None:
        self.script = script
        self.lookups: list[str] = []

    async def __call__(self, host: str, within: float) -> HostAddresses:
        self.lookups.append(host)
        answers = self.script.get(host, [[]])
        answer = answers.pop(0) if len(answers) > 1 else answers[0]
        return HostAddresses(host, tuple(ipaddress.ip_address(a) for a in answer))


class RecordingNetwork(httpcore.AsyncNetworkBackend):
    """Records each address a connection is opened to; fails every one (nothing is real)."""

    def __init__(self, error: type[httpcore.ConnectError | httpcore.ConnectTimeout] | None = None):
        self.connected: list[str] = []
        self.error = error or httpcore.ConnectError

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[SocketOption] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        self.connected.append(host)
        raise self.error("[Errno 111] Connection refused")


def fetch_through(guard: AddressGuard, network: RecordingNetwork, url: str) -> Exchange:
    async def go() -> Exchange:
        limits = httpx.Limits(max_connections=10, max_keepalive_connections=0)
        transport = guarded_transport(guard, verify=True, limits=limits, inner=network)
        async with httpx.AsyncClient(transport=transport) as client:
            fetcher = Fetcher(client, Limits(max_retries=0), guard=guard)
            return (await fetcher.get(url, step=ExtractStep.DISCOVERY))[-1]

    return anyio.run(go)


def test_a_name_that_rebinds_to_the_metadata_service_is_refused_at_connect() -> None:
    dns = ScriptedDns({"next.evil.example": [[PUBLIC_A], [METADATA]]})
    guard = AddressGuard(resolver=dns)
    guard.admit("https://fhir.payer.example/r4")
    network = RecordingNetwork()
    # The URL check sees the public answer ...
    base, supplied = "https://fhir.payer.example/r4", "https://next.evil.example/"
    assert anyio.run(guard.refusal, base, supplied) is None
    # ... the connection's own lookup gets the metadata service, and is refused.
    exchange = fetch_through(guard, network, "https://next.evil.example/Patient?page=2")
    assert exchange.error_class == "ssrf_refused", exchange
    assert METADATA in (exchange.error_detail or "") and "next.evil.example" in (
        exchange.error_detail or ""
    )
    assert network.connected == []  # nothing was sent anywhere
    assert dns.lookups.count("next.evil.example") == 2  # the check's lookup, the connection's


def test_the_connection_goes_to_the_addresses_that_were_checked() -> None:
    dns = ScriptedDns({"fhir.payer.example": [[PUBLIC_A, PUBLIC_B]]})
    guard = AddressGuard(resolver=dns)
    guard.admit("https://fhir.payer.example/r4")
    network = RecordingNetwork()
    exchange = fetch_through(guard, network, "https://fhir.payer.example/r4/metadata")
    # Both checked addresses were tried, in order, as IP addresses: nothing resolved the name
    # again below the guard.
    assert network.connected == [PUBLIC_A, PUBLIC_B]
    assert exchange.error_class == "connection_refused"


def test_an_operator_host_may_not_move_into_a_network_it_was_not_on() -> None:
    dns = ScriptedDns({"fhir.payer.example": [[PUBLIC_A], [METADATA]]})
    guard = AddressGuard(resolver=dns)
    guard.admit("https://fhir.payer.example/r4")
    network = RecordingNetwork()
    first = fetch_through(guard, network, "https://fhir.payer.example/r4/metadata")
    assert first.error_class == "connection_refused" and network.connected == [PUBLIC_A]
    second = fetch_through(guard, network, "https://fhir.payer.example/r4/metadata")
    assert second.error_class == "ssrf_refused", second
    assert network.connected == [PUBLIC_A]


def test_an_operator_host_on_a_private_network_is_reachable_and_leads_there() -> None:
    dns = ScriptedDns({"fhir.internal.example": [["10.1.2.3"]], "cdn.example": [["10.1.2.4"]]})
    guard = AddressGuard(resolver=dns)
    guard.admit("https://fhir.internal.example/r4")

    async def go() -> None:
        assert await guard.connect_addresses("fhir.internal.example") == (
            ipaddress.ip_address("10.1.2.3"),
        )
        # Once the operator's host is known to be private, other hosts may be private too
        # (the per-URL rule, AddressGuard.refusal, still decides each server-supplied URL).
        assert await guard.connect_addresses("cdn.example") == (ipaddress.ip_address("10.1.2.4"),)

    anyio.run(go)


def test_hosts_that_are_not_the_operators_use_public_addresses_only() -> None:
    dns = ScriptedDns({"mixed.example": [["10.0.0.5", PUBLIC_A]], "inside.example": [["10.0.0.6"]]})
    guard = AddressGuard(resolver=dns)
    guard.admit("https://fhir.payer.example/r4")

    async def go() -> None:
        # A split answer: the private address is dropped, the public one used.
        assert await guard.connect_addresses("mixed.example") == (ipaddress.ip_address(PUBLIC_A),)
        with pytest.raises(AddressRefused, match=re.escape("private address 10.0.0.6")):
            await guard.connect_addresses("inside.example")
        with pytest.raises(AddressRefused, match=re.escape("link-local address 169.254.169.254")):
            await guard.connect_addresses(METADATA)  # an IP literal is checked the same way

    anyio.run(go)


def test_a_name_that_does_not_resolve_is_a_dns_failure() -> None:
    guard = AddressGuard(resolver=ScriptedDns({}))
    guard.admit("https://gone.payer.example/r4")
    network = RecordingNetwork()
    exchange = fetch_through(guard, network, "https://gone.payer.example/r4/metadata")
    assert exchange.error_class == "dns" and network.connected == []


def test_a_connect_timeout_is_not_multiplied_by_the_number_of_addresses() -> None:
    guard = AddressGuard(resolver=ScriptedDns({"slow.example": [[PUBLIC_A, PUBLIC_B]]}))
    guard.admit("https://slow.example/")
    network = RecordingNetwork(httpcore.ConnectTimeout)
    backend = GuardedNetworkBackend(guard, network)
    with pytest.raises(httpcore.ConnectTimeout):
        anyio.run(lambda: backend.connect_tcp("slow.example", 443, timeout=1))
    assert network.connected == [PUBLIC_A]


def test_a_refusal_is_a_connect_error_to_httpx() -> None:
    assert issubclass(ConnectRefused, httpcore.ConnectError)


def test_new_client_reaches_a_loopback_server_by_a_name_only_the_guard_knows() -> None:
    """The real network below the guard: the name is never looked up by the operating system."""
    body = b'{"resourceType": "CapabilityStatement"}'
    routes = {"/r4/metadata": Route(200, body, {"Content-Type": "application/fhir+json"})}
    with serve(routes) as (base, seen):
        port = httpx.URL(base).port
        dns = ScriptedDns({"payer.test": [["127.0.0.1"]]})
        guard = AddressGuard(resolver=dns)
        guard.admit(f"http://payer.test:{port}/r4")

        async def go() -> list[Exchange]:
            async with new_client(guard=guard) as client:
                fetcher = Fetcher(client, Limits(), guard=guard)
                return await fetcher.get(
                    f"http://payer.test:{port}/r4/metadata", step=ExtractStep.DISCOVERY
                )

        exchange = anyio.run(go)[-1]
    assert exchange.status == 200, exchange
    assert dns.lookups == ["payer.test"]
    assert seen[-1][1]["Host"] == f"payer.test:{port}"  # the name, not the address, is the Host


def test_a_pooled_connection_reports_readable_once_its_server_closed_it() -> None:
    """httpcore's idle-connection check (is the socket readable?) from the socket kept on the
    stream: False while idle, True once the server has closed it; other attributes as anyio's."""
    import socket

    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    guard = AddressGuard(resolver=ScriptedDns({"payer.test": [["127.0.0.1"]]}))
    guard.admit(f"http://payer.test:{port}/")

    async def go() -> tuple[bool, bool, object, object]:
        stream = await GuardedNetworkBackend(guard).connect_tcp("payer.test", port, timeout=5)
        accepted, _ = listener.accept()
        idle = stream.get_extra_info("is_readable")
        server = stream.get_extra_info("server_addr")
        raw = stream.get_extra_info("socket")
        accepted.close()
        with anyio.fail_after(5):
            while not stream.get_extra_info("is_readable"):
                await anyio.sleep(0.01)
        closed = stream.get_extra_info("is_readable")
        await stream.aclose()
        return idle, closed, server, raw

    try:
        idle, closed, server, raw = anyio.run(go)
    finally:
        listener.close()
    assert idle is False and closed is True
    assert server == ("127.0.0.1", port)
    assert isinstance(raw, socket.socket)
