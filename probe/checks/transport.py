"""Wording for requests that got no usable HTTP response (the fetch layer's error classes)."""

from __future__ import annotations

from probe.models import Exchange

_NAMES = {
    "dns": "DNS failure",
    "connection_refused": "connection refused",
    "tls": "TLS failure",
    "timeout": "timeout",
    "connection_reset": "connection reset",
    "protocol_error": "HTTP protocol error",
    "read_error": "read error",
    "connect_error": "connection failure",
    "no_response": "no response",
    "content_length_mismatch": "Content-Length mismatch",
    "circuit_open": "circuit open",
    "ssrf_refused": "refused (server-side request forgery)",
    "redirect_cross_origin": "redirect to another origin",
    "too_many_redirects": "redirect loop",
    "body_too_large": "response too large",
}


def transport_failure(exchange: Exchange) -> str:
    """A one-line description of why no response arrived: 'DNS failure: ...'."""
    name = _NAMES.get(exchange.error_class or "", exchange.error_class or "transport failure")
    detail = exchange.error_detail or ""
    if detail.lower().startswith(name.lower()):
        return detail
    return f"{name}: {detail}" if detail else name


#: Answers that arrived but hit one of probe's bounds (or a refused redirect): not usable.
BOUND_ERRORS = frozenset(
    {"body_too_large", "too_many_redirects", "redirect_cross_origin", "ssrf_refused"}
)


def bound_failure(exchange: Exchange) -> str | None:
    """For an answer that hit a bound ('response too large: ...'), its description; else None."""
    if exchange.status is None or exchange.error_class not in BOUND_ERRORS:
        return None
    return transport_failure(exchange)
