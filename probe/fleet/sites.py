"""Where each simulated payer lives: its loopback address, base URLs and OAuth endpoint URLs.

Payers are spread over ``hosts`` addresses from 127.0.0.2 (payer i on host i mod hosts unless the
config pins it); a hostile payer has an address of its own from 127.0.1.1. Each payer also has an
*other origin* (the next host, or a spare address when the
fleet has one host) used by `paging_cross_origin`, `moved` and the `identity_verification` login
journey's interstitial. A `sandbox_only` payer whose
production is ``refused`` names an address nothing listens on.
"""

from __future__ import annotations

from dataclasses import dataclass

from probe.fleet.config import FleetConfig, PayerConfig

FIRST_HOST = 2
REFUSED_ADDRESS = "127.0.0.254"


def host_address(index: int) -> str:
    """The loopback address of host number `index` (0-based): 127.0.0.2, 127.0.0.3, ..."""
    return f"127.0.0.{FIRST_HOST + index}"


def hostile_address(index: int) -> str:
    """The loopback address of hostile payer number `index`: 127.0.1.1, 127.0.1.2, ..."""
    return f"127.0.{1 + index // 250}.{1 + index % 250}"


@dataclass(frozen=True, slots=True)
class PayerSite:
    """One payer's addresses and URLs."""

    config: PayerConfig
    host: str
    alt_host: str
    port: int
    scheme: str = "http"

    @property
    def slug(self) -> str:
        """The payer's slug (its path segment)."""
        return self.config.slug

    def origin(self, host: str) -> str:
        """scheme://host:port for one of the fleet's addresses."""
        return f"{self.scheme}://{host}:{self.port}"

    @property
    def prefix(self) -> str:
        """The path under which everything of this payer lives."""
        return f"/payers/{self.slug}"

    @property
    def home_host(self) -> str:
        """The address that serves the payer's data and OAuth (the new host when moved)."""
        moved = self.config.behaviour.moved
        return self.alt_host if moved is not None and moved.new_host else self.host

    @property
    def base_url(self) -> str:
        """The production base URL the directory lists."""
        sandbox = self.config.behaviour.sandbox_only
        host = REFUSED_ADDRESS if sandbox and sandbox.production == "refused" else self.host
        return f"{self.origin(host)}{self.prefix}/fhir"

    @property
    def served_base_url(self) -> str:
        """The base URL that answers FHIR requests (after a `moved` redirect)."""
        if self.config.behaviour.moved is not None:
            return f"{self.origin(self.home_host)}{self.prefix}/api/r4"
        if self.config.behaviour.sandbox_only is not None:
            return self.sandbox_url or self.base_url
        return self.base_url

    @property
    def has_sandbox(self) -> bool:
        """True when the payer serves a sandbox (`sandbox: true`, or `sandbox_only`)."""
        return self.config.sandbox or self.config.behaviour.sandbox_only is not None

    @property
    def sandbox_url(self) -> str | None:
        """The sandbox base URL (payers with `sandbox: true` and `sandbox_only` ones declare
        one)."""
        if not self.has_sandbox:
            return None
        return f"{self.origin(self.host)}{self.prefix}/sandbox/fhir"

    def oauth_url(self, name: str) -> str:
        """An OAuth endpoint URL: `authorize`, `token`, `revoke` or `jwks`."""
        return f"{self.origin(self.home_host)}{self.prefix}/oauth/{name}"

    @property
    def token_url(self) -> str:
        """The token endpoint URL (what a private_key_jwt assertion's `aud` must be)."""
        return self.oauth_url("token")

    @property
    def idv_host(self) -> str:
        """The address serving the `identity_verification` journey's interstitial (not home)."""
        return self.host if self.home_host == self.alt_host else self.alt_host

    def idv_url(self, session: str) -> str:
        """The identity-verification interstitial's URL for one sign-in `session`."""
        return f"{self.origin(self.idv_host)}/_idv/idme/{self.slug}/verify?session={session}"

    @property
    def hosts(self) -> frozenset[str]:
        """Addresses this payer answers on."""
        return frozenset({self.host, self.alt_host, REFUSED_ADDRESS})


def layout(
    config: FleetConfig, port: int, scheme: str = "http"
) -> tuple[list[str], dict[str, PayerSite]]:
    """The addresses the ASGI app serves and each payer's site.

    A hostile payer (probe/fleet/hostile.py) gets an address of its own (127.0.1.1, ...), not in
    the returned list: :func:`hostile_addresses` lists those. Its other origin is an ordinary
    host. Ordinary payers are placed as if the hostile ones were not there.
    """
    count = config.hosts
    addresses = [host_address(i) for i in range(count)]
    spare = host_address(count)
    sites: dict[str, PayerSite] = {}
    needs_spare = False
    hostile = 0
    ordinary = 0
    for payer in config.all_payers:
        if payer.behaviour.hostile is not None:
            alt = addresses[hostile % count]
            sites[payer.slug] = PayerSite(payer, hostile_address(hostile), alt, port, scheme)
            hostile += 1
            continue
        i = ordinary
        ordinary += 1
        h = payer.host if payer.host is not None else i % count
        alt = addresses[(h + 1) % count] if count > 1 else spare
        needs_spare |= count == 1 and _uses_alt(payer)
        sites[payer.slug] = PayerSite(payer, addresses[h], alt, port, scheme)
    if needs_spare:
        addresses.append(spare)
    return addresses, sites


def hostile_addresses(sites: dict[str, PayerSite]) -> list[str]:
    """The addresses of the hostile payers (served by the hostile server), in payer order."""
    return [s.host for s in sites.values() if s.config.behaviour.hostile is not None]


def _uses_alt(payer: PayerConfig) -> bool:
    b = payer.behaviour
    return (
        b.paging_cross_origin is not None
        or (b.moved is not None and b.moved.new_host)
        or payer.oauth.journey == "identity_verification"
    )
