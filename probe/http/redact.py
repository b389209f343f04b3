"""Keeping secrets out of URLs, messages and stored observations."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

SECRET_QUERY_PARAMS = frozenset(
    {
        "access_token",
        "token",
        "id_token",
        "refresh_token",
        "code",
        "client_secret",
        "client_assertion",
        "password",
        "api_key",
        "apikey",
        "key",
        "sig",
        "signature",
        "state",
    }
)
REDACTED = "REDACTED"


def redact_url(url: str) -> str:
    """The URL with user info and the values of secret-bearing query parameters replaced."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    netloc = parts.netloc
    if "@" in netloc:
        netloc = f"{REDACTED}@{netloc.rsplit('@', 1)[1]}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(k.lower() in SECRET_QUERY_PARAMS for k, _ in pairs):
            query = urlencode(
                [(k, REDACTED if k.lower() in SECRET_QUERY_PARAMS else v) for k, v in pairs],
                safe="*:/",
            )
    if netloc == parts.netloc and query == parts.query:
        return url
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def redact_text(text: str, secrets: list[str]) -> str:
    """`text` with every occurrence of each (non-trivial) secret replaced by REDACTED."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, REDACTED)
    return text
