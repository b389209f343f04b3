"""FHIR base URL arithmetic: origins, joining paths under a base, same-origin tests, and what
makes a URL a server sent unusable."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

_DEFAULT_PORTS = {"http": 80, "https": 443}
#: Longest URL probe will request (browsers and servers commonly stop near 8 KiB).
MAX_URL_LENGTH = 8192
_CONTROL = re.compile(r"[\x00-\x20\x7f-\x9f]")
#: The origin of a URL that cannot be parsed: equal to no real origin.
INVALID_ORIGIN = "invalid://"


def url_problem(url: str) -> str | None:
    """Why `url` (absolute, often server-supplied) cannot be requested, or None when it can.

    Too long, control characters or spaces, not http(s), no host, an unparsable host or IPv6
    literal, a port out of range.
    """
    if len(url) > MAX_URL_LENGTH:
        return f"a URL of {len(url)} characters (at most {MAX_URL_LENGTH})"
    bad = _CONTROL.search(url)
    if bad is not None:
        return f"a URL with a control character or space (U+{ord(bad.group()):04X})"
    try:
        parts = urlsplit(url)
        host = parts.hostname
        port = parts.port
    except ValueError as exc:
        return f"an unparsable URL ({exc})"
    if parts.scheme.lower() not in ("http", "https"):
        return f"not an http(s) URL (scheme {parts.scheme[:20]!r})"
    if not host:
        return "a URL without a host"
    if port == 0:
        return "a URL with port 0"
    try:
        host.encode("idna") if not host.isascii() else None
    except UnicodeError:
        return "a URL whose host name is not a valid internationalised name"
    return None


def printable_url(url: str, limit: int = 2048) -> str:
    """`url` cut to `limit` characters with control characters and spaces shown as '?' (for
    evidence about a URL that could not be used)."""
    cut = url[:limit] + ("…" if len(url) > limit else "")
    return _CONTROL.sub("?", cut)


def origin_of(url: str) -> str:
    """The origin (scheme://host:port) of an absolute URL, with the default port made explicit;
    INVALID_ORIGIN when the URL cannot be parsed."""
    try:
        parts = urlsplit(url)
        parts.hostname  # noqa: B018 (parses the host: an unclosed IPv6 literal raises here)
    except ValueError:
        return INVALID_ORIGIN
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    try:
        port = parts.port or _DEFAULT_PORTS.get(scheme, 0)
    except ValueError:
        port = 0
    if ":" in host:
        host = f"[{host}]"
    return f"{scheme}://{host}:{port}"


def same_origin(a: str, b: str) -> bool:
    """True when both absolute URLs share scheme, host and port."""
    return origin_of(a) == origin_of(b)


def normalize_base(url: str) -> str:
    """A FHIR base URL without trailing slashes, surrounding space or a trailing `/metadata`."""
    url = url.strip().rstrip("/")
    if url.lower().endswith("/metadata"):
        url = url[: -len("/metadata")]
    return url


def join(base: str, path: str) -> str:
    """`base` + '/' + `path`, keeping the base's own path (unlike urljoin)."""
    return f"{base.rstrip('/')}/{path.lstrip('/')}"
