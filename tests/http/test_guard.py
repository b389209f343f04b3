"""Address classification and the SSRF rule: which server-supplied URLs probe refuses."""

from __future__ import annotations

import ipaddress

import anyio
import pytest

from probe.http.guard import AddressGuard, AddressKind, HostAddresses, classify_ip, resolve_host


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("8.8.8.8", AddressKind.PUBLIC),
        ("2606:4700:4700::1111", AddressKind.PUBLIC),
        ("127.0.0.1", AddressKind.LOOPBACK),
        ("127.0.1.7", AddressKind.LOOPBACK),
        ("::1", AddressKind.LOOPBACK),
        ("169.254.169.254", AddressKind.LINK_LOCAL),
        ("fe80::1", AddressKind.LINK_LOCAL),
        ("10.1.2.3", AddressKind.PRIVATE),
        ("172.16.0.1", AddressKind.PRIVATE),
        ("192.168.1.1", AddressKind.PRIVATE),
        ("100.64.0.1", AddressKind.PRIVATE),
        ("fd00::1", AddressKind.PRIVATE),
        ("0.0.0.0", AddressKind.UNSPECIFIED),
        ("::", AddressKind.UNSPECIFIED),
        ("224.0.0.1", AddressKind.MULTICAST),
        ("ff02::1", AddressKind.MULTICAST),
        ("::ffff:169.254.169.254", AddressKind.LINK_LOCAL),
        ("::ffff:10.0.0.1", AddressKind.PRIVATE),
    ],
)
def test_classify(address: str, kind: AddressKind) -> None:
    assert classify_ip(ipaddress.ip_address(address)) is kind


def guard_with(table: dict[str, list[str]]) -> AddressGuard:
    """A guard whose DNS is a table (names not in it do not resolve)."""
    guard = AddressGuard()
    for host, addresses in table.items():
        guard._cache[host] = HostAddresses(host, tuple(ipaddress.ip_address(a) for a in addresses))
    return guard


def refusal(guard: AddressGuard, base: str, url: str) -> str | None:
    return anyio.run(guard.refusal, base, url)


def test_public_base_may_not_lead_inside() -> None:
    guard = guard_with(
        {
            "fhir.payer.com": ["8.8.4.4", "10.9.9.9"],  # split horizon: public wins
            "cdn.payer.com": ["8.8.8.8"],
            "sneaky.payer.com": ["8.8.8.8", "10.0.0.5"],  # every address counts
            "metadata.internal": ["169.254.169.254"],
        }
    )
    base = "https://fhir.payer.com/r4"
    assert refusal(guard, base, "https://cdn.payer.com/x") is None
    for url in (
        "http://169.254.169.254/latest/meta-data/",
        "http://127.0.0.1:8080/admin",
        "http://[::1]/",
        "http://10.0.0.8/db",
        "http://[fe80::1]/",
        "http://0.0.0.0:5432/",
        "https://sneaky.payer.com/Patient/1",
        "http://metadata.internal/",
        "http://localhost:6379/",
    ):
        reason = refusal(guard, base, url)
        assert reason is not None and "server-side request forgery" in reason, url
    assert "resolves to it" in (refusal(guard, base, "http://metadata.internal/") or "")


def test_loopback_base_may_reach_loopback_but_not_link_local_or_private() -> None:
    guard = AddressGuard()
    base = "http://127.0.0.2:8600/payers/acme/fhir"
    assert refusal(guard, base, "http://127.0.0.3:8600/other") is None  # cross-origin rule's job
    assert refusal(guard, base, "http://169.254.169.254/latest/meta-data/") is not None
    assert refusal(guard, base, "http://192.168.0.1/") is not None


def test_same_host_and_unresolvable_hosts_are_not_refused() -> None:
    guard = AddressGuard()
    assert refusal(guard, "https://payer.example/r4", "https://payer.example/r4/Patient/1") is None
    # An unresolvable target cannot be reached at all; an unresolvable base counts as public.
    assert refusal(guard, "https://payer.example/r4", "https://other.example/x") is None
    assert refusal(guard, "https://payer.example/r4", "http://127.0.0.1/x") is not None


def test_special_use_names_are_never_looked_up() -> None:
    async def go() -> None:
        assert (await resolve_host("fhir.payer.example")).addresses == ()
        assert (await resolve_host("x.test")).addresses == ()
        assert (await resolve_host("localhost")).kinds == {AddressKind.LOOPBACK}
        assert (await resolve_host("[::1]")).kinds == {AddressKind.LOOPBACK}

    anyio.run(go)
