"""What may be stored: URLs without secrets, JSON-safe evidence, no resource bodies, stable hashes.

Everything the writer persists passes through here. Patient data must never reach the database,
so any FHIR resource found inside evidence or sync details is reduced to its type and id.
"""

from __future__ import annotations

import enum
import hashlib
import json
import math
import re
from collections.abc import Mapping
from datetime import date, datetime, time, timedelta
from typing import Any
from urllib.parse import unquote_plus, urlsplit, urlunsplit

from probe.http.redact import SECRET_QUERY_PARAMS, scrub_secrets
from probe.http.text import without_nul

#: Query/fragment parameters whose values are secrets; their values are replaced on storage.
SECRET_PARAMS = SECRET_QUERY_PARAMS
#: Query parameters whose values are kept in stored URLs: FHIR search and paging parameters
#: that probe sends or that real servers' paging links carry. Every other parameter's value
#: is replaced on storage (a server may put anything, a token included, under any name).
HARMLESS_QUERY_PARAMS = frozenset(
    {
        "_count",
        "_id",
        "_type",
        "_since",
        "_format",
        "_summary",
        "_elements",
        "_sort",
        "_include",
        "_revinclude",
        "_lastupdated",
        "_getpages",
        "_getpagesoffset",
        "_offset",
        "_page",
        "page",
        "startindex",
        "cursor",  # cursor paging (Athena, many gateways): a position, not a credential
        "ct",  # continuation tokens (Azure API for FHIR, HAPI)
        "patient",
        "subject",
        "beneficiary",
        "category",
        "type",
        "status",
        "date",
        "service-date",
        "_profile",
        "_tag",
        "resourcetype",
    }
)
#: Mapping keys whose scalar values are secrets wherever they appear in stored JSON (e.g. run
#: config). Generic words that are secrets only as query parameters ("code", "state", "key",
#: "token", "sig") are left out: in JSON they name findings, steps and fields, not secrets.
SECRET_KEYS = (SECRET_PARAMS - {"code", "state", "key", "token", "sig"}) | {
    "private_key",
    "authorization",
    "secret",
    "cookie",
}
REDACTED = "REDACTED"
#: Resource types that are public server metadata, not patient data, and may be kept whole.
PUBLIC_RESOURCE_TYPES = frozenset({"CapabilityStatement"})
MAX_STRING = 4096
MAX_DEPTH = 16

_URL_RE = re.compile(r"https?://[^\s\"'<>]+", re.IGNORECASE)


def _harmless(name: str) -> bool:
    plain = unquote_plus(name) if "%" in name or "+" in name else name
    key = plain.strip().lower()
    return key in HARMLESS_QUERY_PARAMS and key not in SECRET_PARAMS


def _strip_pairs(text: str) -> str:
    out = []
    for part in text.split("&"):
        name, sep, value = part.partition("=")
        if not sep:
            out.append(part if not part or _harmless(part) else REDACTED)
        elif _harmless(name) or not value:
            out.append(part)
        else:
            out.append(f"{name if _harmless(name) or len(name) <= 64 else REDACTED}={REDACTED}")
    return "&".join(out)


def strip_url_secrets(url: str) -> str:
    """`url` safe to store: no user info, no known secret, and no query or fragment parameter
    value except those of known-harmless parameters (FHIR search and paging)."""
    url = scrub_secrets(without_nul(url))
    if "@" not in url and "?" not in url and "#" not in url:
        return url  # the common case, decided without parsing
    try:
        parts = urlsplit(url)
    except ValueError:
        return url.split("?", 1)[0].split("#", 1)[0]
    netloc = parts.netloc
    if "@" in netloc:
        netloc = f"{REDACTED}@{netloc.rsplit('@', 1)[1]}"
    query = _strip_pairs(parts.query) if parts.query else parts.query
    fragment = _strip_pairs(parts.fragment) if parts.fragment else parts.fragment
    if (netloc, query, fragment) == (parts.netloc, parts.query, parts.fragment):
        return url
    return urlunsplit((parts.scheme, netloc, parts.path, query, fragment))


def strip_text_secrets(text: str) -> str:
    """`text` safe to store: no NUL or lone surrogate, no known secret, no ``Bearer``/``Basic``
    credential, and every http(s) URL in it passed through :func:`strip_url_secrets`."""
    text = scrub_secrets(without_nul(text))
    if "://" not in text:
        return text
    return _URL_RE.sub(lambda m: strip_url_secrets(m.group(0)), text)


def clean_text(text: str) -> str:
    """`text` as every backend stores it: no NUL, no lone surrogate, no known secret."""
    return scrub_secrets(without_nul(text))


def _resource_stub(value: Mapping[str, Any]) -> dict[str, Any]:
    stub: dict[str, Any] = {"resourceType": str(value.get("resourceType"))}
    if isinstance(value.get("id"), str):
        stub["id"] = value["id"]
    if value.get("resourceType") == "OperationOutcome" and isinstance(value.get("issue"), list):
        stub["issue"] = [
            {k: str(i[k]) for k in ("severity", "code") if k in i}
            for i in value["issue"]
            if isinstance(i, Mapping)
        ]
    stub["omitted"] = "resource body not stored"
    return stub


def _clean_str(value: str) -> str:
    value = strip_text_secrets(value)
    if len(value) > MAX_STRING:
        value = value[:MAX_STRING] + "...[truncated]"
    return value


def scrub(value: Any, depth: int = 0) -> Any:
    """A JSON-storable copy of `value`: secrets redacted, FHIR resources reduced to type and id.

    Enums become their values, datetimes ISO strings, bytes a size note, tuples/sets lists,
    non-finite floats strings; long strings are truncated; anything else becomes ``str()``.
    """
    if depth > MAX_DEPTH:
        return "[nested too deep]"
    if isinstance(value, enum.Enum):
        return scrub(value.value, depth)
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, str):
        return _clean_str(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return f"[{len(value)} bytes not stored]"
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, Mapping):
        if "resourceType" in value and value["resourceType"] not in PUBLIC_RESOURCE_TYPES:
            return _resource_stub(value)
        out: dict[str, Any] = {}
        for key, item in value.items():
            name = _clean_str(str(key.value if isinstance(key, enum.Enum) else key))
            if name.lower() in SECRET_KEYS and isinstance(item, str | int | float):
                out[name] = REDACTED
            else:
                out[name] = scrub(item, depth + 1)
        return out
    if isinstance(value, list | tuple | set | frozenset):
        return [scrub(item, depth + 1) for item in value]
    return _clean_str(str(value))


def storable_json(value: Any) -> Any:
    """A copy of a server document that every backend can store (no NULs, lone surrogates or
    NaN) and that holds no known secret."""
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, Mapping):
        return {clean_text(str(k)): storable_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [storable_json(v) for v in value]
    return value


def canonical_json(value: Any) -> str:
    """JSON with sorted keys and no whitespace: equal content gives equal text."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def content_hash(value: Any) -> str:
    """The sha256 hex digest of the canonical JSON of `value`."""
    return hashlib.sha256(canonical_json(value).encode("utf-8")).hexdigest()
