"""Checks on a payer's developer portal, fetched the way a person's browser would."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from probe.checks.observation import verdict
from probe.checks.transport import transport_failure
from probe.http.body import html_title, looks_like_html
from probe.models import CheckResult, CheckSpec, Exchange, Severity, Status

_DOCS = "CMS-9115-F 42 CFR 422.119(d): API documentation publicly accessible on the payer's website"

REACHABLE = CheckSpec("portal.reachable", "Developer portal answers", Severity.RECOMMENDED, _DOCS)
TLS_VALID = CheckSpec(
    "portal.tls_valid",
    "Developer portal served over valid HTTPS",
    Severity.RECOMMENDED,
    f"{_DOCS}; 45 CFR 170.215 / ONC: TLS for health data APIs",
)
NOT_PARKED = CheckSpec(
    "portal.not_parked",
    "Developer portal is a real page (not parked or an error page)",
    Severity.RECOMMENDED,
    _DOCS,
)
MENTIONS_API = CheckSpec(
    "portal.mentions_api",
    "Developer portal mentions FHIR, Patient Access or registration",
    Severity.INFORMATIONAL,
    f"{_DOCS}; the State of the Payer rubric's developer portal metric",
)
SPECS = (REACHABLE, TLS_VALID, NOT_PARKED, MENTIONS_API)

_PARKED = (
    "domain is for sale",
    "this domain may be for sale",
    "buy this domain",
    "domain parking",
    "parked free",
    "sedoparking",
    "parkingcrew",
    "hugedomains",
    "is parked",
)
_ERROR_TITLES = ("404", "not found", "page not found", "error", "unavailable")
_TERMS = {
    "FHIR": re.compile(rb"\bfhir\b", re.I),
    "Patient Access": re.compile(rb"patient[\s-]+access", re.I),
    "registration": re.compile(
        rb"\b(register|registration|sign[\s-]?up|create an account)\b", re.I
    ),
    "API": re.compile(rb"\bapis?\b", re.I),
    "SMART": re.compile(rb"\bsmart on fhir\b|\bsmart app\b", re.I),
    "interoperability": re.compile(rb"interoperab", re.I),
}


@dataclass(frozen=True, slots=True)
class PortalObservation:
    """The final attempt at the portal URL (after redirects)."""

    url: str
    exchange: Exchange


def check_reachable(obs: PortalObservation) -> CheckResult:
    """portal.reachable: a 2xx page at the end of the redirect chain."""
    ex = obs.exchange
    if ex.status is None:
        return verdict(REACHABLE, Status.FAIL, transport_failure(ex), obs)
    if ex.error_class == "too_many_redirects":
        return verdict(REACHABLE, Status.FAIL, f"redirect loop: {ex.error_detail}", obs)
    if not ex.ok:
        return verdict(REACHABLE, Status.FAIL, f"HTTP {ex.status} at {ex.final_url or ex.url}", obs)
    return verdict(REACHABLE, Status.PASS, f"HTTP {ex.status} at {ex.final_url or ex.url}", obs)


def loopback_host(url: str) -> str | None:
    """The host of `url` when it is a loopback address (127.0.0.0/8, ::1, localhost), else None."""
    try:
        host = urlsplit(url).hostname or ""
    except ValueError:
        return None
    if host == "localhost" or host.endswith(".localhost"):
        return host
    try:
        return host if ipaddress.ip_address(host).is_loopback else None
    except ValueError:
        return None


def check_tls_valid(obs: PortalObservation) -> CheckResult:
    """portal.tls_valid: the final URL is https and the TLS handshake verified; not applicable
    (skip) to a plain-HTTP portal on a loopback address, such as the simulated fleet's."""
    ex = obs.exchange
    if ex.error_class == "tls":
        return verdict(TLS_VALID, Status.FAIL, transport_failure(ex), obs)
    if ex.status is None:
        return verdict(TLS_VALID, Status.SKIP, "skipped: no response", obs)
    final = ex.final_url or ex.url
    loopback = loopback_host(final)
    if not final.startswith("https://") and loopback is not None:
        return verdict(
            TLS_VALID,
            Status.SKIP,
            f"not applicable: the portal is on a loopback address ({loopback}), where TLS says "
            "nothing about a payer's public site",
            obs,
            not_applicable="loopback",
        )
    if not final.startswith("https://"):
        return verdict(TLS_VALID, Status.FAIL, f"served over plain HTTP ({final})", obs)
    return verdict(TLS_VALID, Status.PASS, "HTTPS with a verified certificate", obs)


def check_not_parked(obs: PortalObservation) -> CheckResult:
    """portal.not_parked: an HTML page that is not a parked domain or an error page."""
    ex = obs.exchange
    if not ex.ok:
        return verdict(NOT_PARKED, Status.SKIP, "skipped: no 2xx page", obs)
    lowered = ex.body[:200_000].lower()
    title = html_title(ex.body)
    marker = next((m for m in _PARKED if m.encode() in lowered), None)
    if marker:
        return verdict(
            NOT_PARKED, Status.FAIL, f"parked domain page ({marker!r})", obs, title=title
        )
    if title and any(t in title.lower() for t in _ERROR_TITLES) and len(title) < 60:
        return verdict(
            NOT_PARKED,
            Status.FAIL,
            f"error page served with {ex.status}: {title!r}",
            obs,
            title=title,
        )
    if not looks_like_html(ex.body, ex.content_type):
        return verdict(NOT_PARKED, Status.WARN, f"not an HTML page ({ex.content_type})", obs)
    if len(ex.body) < 512:
        return verdict(
            NOT_PARKED,
            Status.WARN,
            f"an almost empty page ({len(ex.body)} bytes)",
            obs,
            title=title,
        )
    return verdict(
        NOT_PARKED, Status.PASS, f"HTML page{f' {title!r}' if title else ''}", obs, title=title
    )


def check_mentions_api(obs: PortalObservation) -> CheckResult:
    """portal.mentions_api: which of FHIR, Patient Access, registration, API the page mentions."""
    ex = obs.exchange
    if not ex.ok:
        return verdict(MENTIONS_API, Status.SKIP, "skipped: no 2xx page", obs)
    found = [name for name, pattern in _TERMS.items() if pattern.search(ex.body)]
    core = {"FHIR", "Patient Access", "registration"} & set(found)
    if core:
        return verdict(MENTIONS_API, Status.PASS, f"mentions {', '.join(found)}", obs, terms=found)
    return verdict(
        MENTIONS_API,
        Status.WARN,
        "mentions none of FHIR, Patient Access or registration"
        + (f" (only {', '.join(found)})" if found else ""),
        obs,
        terms=found,
    )


def run_portal_checks(obs: PortalObservation) -> list[CheckResult]:
    """Every portal check over one fetch."""
    return [
        check_reachable(obs),
        check_tls_valid(obs),
        check_not_parked(obs),
        check_mentions_api(obs),
    ]
