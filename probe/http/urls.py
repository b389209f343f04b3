"""FHIR base URL arithmetic: origins, joining paths under a base, same-origin tests."""

from __future__ import annotations

from urllib.parse import urlsplit

_DEFAULT_PORTS = {"http": 80, "https": 443}


def origin_of(url: str) -> str:
    """The origin (scheme://host:port) of an absolute URL, with the default port made explicit."""
    parts = urlsplit(url)
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
