"""What kind of network a URL's host is on, and whether a server may send probe there (SSRF).

Next links, references, redirect targets and URLs read from documents are untrusted input: a
public payer server must not be able to make probe request its cloud metadata service
(169.254.169.254), a database on the operator's private network or a port on loopback. An
address is classified as ``public``, ``loopback``, ``private`` (RFC 1918, fc00::/7, CGNAT),
``link_local`` (169.254.0.0/16, fe80::/10), ``unspecified``, ``multicast`` or ``reserved``;
a host name is resolved with ``anyio.getaddrinfo`` and every address it resolves to counts.

The rule (:meth:`AddressGuard.refusal`): a URL is refused when one of its addresses is not
public and is of a kind the base URL's own host is not. A public base may only lead to public
addresses; a loopback base (the fleet, tests) may lead to loopback but not to link-local or
private addresses. Whether two loopback origins may share credentials is not this module's
business: the same-origin rule decides that, and refuses it.

The same guard also decides, at connect time, which addresses a connection may use
(:meth:`AddressGuard.connect_addresses`, used by :mod:`probe.http.connect`): the name is
resolved once for the connection and the connection goes to exactly the addresses that were
checked, so a server whose DNS answers a public address to the URL check and 169.254.169.254 to
the connection (DNS rebinding) is refused. The operator's own hosts (:meth:`AddressGuard.admit`:
configured base, sandbox and portal URLs) may be on any network, but may not later move to a
non-public kind of network they were not on; every other host may only use public addresses and
the kinds of network the operator's hosts are on.
"""

from __future__ import annotations

import enum
import ipaddress
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import anyio

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
_CGNAT = ipaddress.ip_network("100.64.0.0/10")
_THIS_NETWORK = ipaddress.ip_network("0.0.0.0/8")
_NEVER_RESOLVED = frozenset({"example", "test", "invalid"})


class AddressKind(enum.StrEnum):
    """The kind of network an IP address belongs to."""

    PUBLIC = "public"
    LOOPBACK = "loopback"
    PRIVATE = "private"
    LINK_LOCAL = "link_local"
    UNSPECIFIED = "unspecified"
    MULTICAST = "multicast"
    RESERVED = "reserved"


def classify_ip(address: IPAddress) -> AddressKind:
    """The kind of one IP address (IPv4-mapped IPv6 addresses count as their IPv4 address)."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if address.is_unspecified or (
        isinstance(address, ipaddress.IPv4Address) and address in _THIS_NETWORK
    ):
        return AddressKind.UNSPECIFIED
    if address.is_loopback:
        return AddressKind.LOOPBACK
    if address.is_link_local:
        return AddressKind.LINK_LOCAL
    if address.is_multicast:
        return AddressKind.MULTICAST
    if isinstance(address, ipaddress.IPv4Address) and address in _CGNAT:
        return AddressKind.PRIVATE
    if address.is_private:
        return AddressKind.PRIVATE
    if address.is_reserved or not address.is_global:
        return AddressKind.RESERVED
    return AddressKind.PUBLIC


def parse_ip(host: str) -> IPAddress | None:
    """The IP address a URL host names literally (brackets and zone ids allowed), else None."""
    text = host.strip("[]").split("%", 1)[0]
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def url_host(url: str) -> str:
    """The lower-cased host of an absolute URL ('' when it has none)."""
    try:
        return (urlsplit(url).hostname or "").lower()
    except ValueError:
        return ""


@dataclass(frozen=True, slots=True)
class HostAddresses:
    """A host and what it resolved to; `addresses` is empty when it did not resolve."""

    host: str
    addresses: tuple[IPAddress, ...]

    @property
    def kinds(self) -> frozenset[AddressKind]:
        """The kinds of all its addresses."""
        return frozenset(classify_ip(a) for a in self.addresses)


async def resolve_host(host: str, *, within: float = 5.0) -> HostAddresses:
    """Every address `host` resolves to (an IP literal is itself); empty when it does not.

    Names under the special-use domains that never resolve publicly (``.example``, ``.test``,
    ``.invalid``; RFC 6761) are not looked up; ``localhost`` is loopback without a lookup.
    """
    literal = parse_ip(host)
    if literal is not None:
        return HostAddresses(host, (literal,))
    name = host.rstrip(".")
    if name in ("localhost", "localhost.localdomain") or name.endswith(".localhost"):
        return HostAddresses(host, (ipaddress.ip_address("127.0.0.1"),))
    if name.rsplit(".", 1)[-1] in _NEVER_RESOLVED:
        return HostAddresses(host, ())
    found: list[IPAddress] = []
    with anyio.move_on_after(within):
        try:
            infos = await anyio.getaddrinfo(host, None, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError):
            infos = []
        for info in infos:
            ip = parse_ip(str(info[4][0]))
            if ip is not None and ip not in found:
                found.append(ip)
    return HostAddresses(host, tuple(found))


class AddressRefused(Exception):
    """A connection would go to an address of a network this run may not reach (SSRF)."""


@dataclass(slots=True)
class AddressGuard:
    """Refuses server-supplied URLs and connections that lead into internal networks.

    URL checks cache resolutions for the guard's lifetime (one sync, one crawl); connections
    resolve afresh each time and are checked against the operator's admitted hosts. `resolver`
    is the seam for tests.
    """

    dns_timeout: float = 5.0
    resolver: Callable[[str, float], Awaitable[HostAddresses]] | None = None
    _cache: dict[str, HostAddresses] = field(default_factory=dict)
    _operator_kinds: dict[str, frozenset[AddressKind] | None] = field(default_factory=dict)
    _connectable: set[AddressKind] = field(default_factory=lambda: {AddressKind.PUBLIC})

    async def _resolve(self, host: str) -> HostAddresses:
        literal = parse_ip(host)
        if literal is not None:
            return HostAddresses(host, (literal,))
        if self.resolver is not None:
            return await self.resolver(host, self.dns_timeout)
        return await resolve_host(host, within=self.dns_timeout)

    def admit(self, *urls: str | None) -> None:
        """Declare the operator's own URLs (configured base, sandbox, portal, token URLs).

        Their hosts may be on any kind of network, and connections to other hosts may use the
        kinds of network they are on.
        """
        for url in urls:
            host = url_host(url or "")
            if not host or host in self._operator_kinds:
                continue
            literal = parse_ip(host)
            kinds = None if literal is None else frozenset({classify_ip(literal)})
            self._operator_kinds[host] = kinds
            if kinds is not None:
                self._connectable |= kinds

    async def connect_addresses(self, host: str) -> tuple[IPAddress, ...]:
        """The addresses a new connection to `host` may use, resolved now for that connection.

        Empty when the name does not resolve. Raises `AddressRefused` when it resolves only to
        addresses of networks this run may not reach.
        """
        host = host.lower()
        found = await self._resolve(host)
        if not found.addresses:
            return ()
        kinds = found.kinds
        if host in self._operator_kinds:
            first = self._operator_kinds[host]
            if first is None:  # the first connection to an operator host fixes its networks
                self._operator_kinds[host] = kinds
                self._connectable |= kinds
                return found.addresses
            allowed: set[AddressKind] | frozenset[AddressKind] = first | {AddressKind.PUBLIC}
        else:
            allowed = self._connectable
        usable = tuple(a for a in found.addresses if classify_ip(a) in allowed)
        if usable:
            return usable
        named = "" if parse_ip(host) is not None else f"{host} resolves to "
        raise AddressRefused(
            f"{named}{_kind_of(found.addresses[0])}, a network this run may not connect to: "
            "refused (server-side request forgery)"
        )

    async def addresses(self, host: str) -> HostAddresses:
        """The host's addresses (cached)."""
        known = self._cache.get(host)
        if known is None:
            known = await self._resolve(host)
            self._cache[host] = known
        return known

    async def refusal(self, base_url: str, url: str) -> str | None:
        """Why `url` must not be fetched on behalf of `base_url` (SSRF), or None if it may.

        A URL on the base URL's own host is never refused here (the operator chose that host).
        A base host with any public address, or that does not resolve, counts as public (the
        strictest case).
        """
        host = url_host(url)
        base_host = url_host(base_url)
        if not host or host == base_host:
            return None
        target = await self.addresses(host)
        if not target.addresses:
            return None  # it cannot be reached at all; the request fails on its own
        base = await self.addresses(base_host)
        base_kinds = base.kinds
        if not base_kinds or AddressKind.PUBLIC in base_kinds:
            base_kinds = frozenset({AddressKind.PUBLIC})  # a public server leads only to public
        for address in target.addresses:
            kind = classify_ip(address)
            if kind is AddressKind.PUBLIC or kind in base_kinds:
                continue
            named = "" if parse_ip(host) is not None else f" ({host} resolves to it)"
            origin = "a public" if AddressKind.PUBLIC in base_kinds else f"a {_describe(base)}"
            return (
                f"{_kind_of(address)}{named}, "
                f"named by {origin} server: refused (server-side request forgery)"
            )
        return None


def _describe(base: HostAddresses) -> str:
    kinds = sorted(k.replace("_", "-") for k in base.kinds) or ["public"]
    return "/".join(kinds)


def _kind_of(address: IPAddress) -> str:
    """'a link-local address 169.254.169.254'."""
    kind = classify_ip(address)
    return f"{_article(kind)} {kind.replace('_', '-')} address {address}"


def _article(kind: AddressKind) -> str:
    return "an" if kind in (AddressKind.UNSPECIFIED,) else "a"
