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

from probe.http.redact import SECRET_QUERY_PARAMS

#: Query/fragment parameters whose values are secrets; their values are replaced on storage.
SECRET_PARAMS = SECRET_QUERY_PARAMS
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
#: Cheap pre-check: a secret parameter name, or a percent-encoded name that might hide one.
_MAYBE_SECRET_RE = re.compile(
    r"[?&#](?:" + "|".join(sorted(SECRET_PARAMS)) + r")=|[?&#][^=&#]*%", re.IGNORECASE
)


def _strip_pairs(text: str) -> str:
    parts = text.split("&")
    out = []
    for part in parts:
        name, sep, _value = part.partition("=")
        plain = unquote_plus(name) if "%" in name or "+" in name else name
        if sep and plain.strip().lower() in SECRET_PARAMS:
            out.append(f"{name}={REDACTED}")
        else:
            out.append(part)
    return "&".join(out)


def strip_url_secrets(url: str) -> str:
    """`url` with user info and the values of secret query/fragment parameters replaced."""
    if "@" not in url and _MAYBE_SECRET_RE.search(url) is None:
        return url  # the common case, decided without parsing
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    netloc = parts.netloc
    if "@" in netloc:
        netloc = f"{REDACTED}@{netloc.rsplit('@', 1)[1]}"
    query = _strip_pairs(parts.query) if parts.query else parts.query
    fragment = _strip_pairs(parts.fragment) if "=" in parts.fragment else parts.fragment
    if (netloc, query, fragment) == (parts.netloc, parts.query, parts.fragment):
        return url
    return urlunsplit((parts.scheme, netloc, parts.path, query, fragment))


def strip_text_secrets(text: str) -> str:
    """`text` with every http(s) URL in it passed through :func:`strip_url_secrets`."""
    if "://" not in text:
        return text
    return _URL_RE.sub(lambda m: strip_url_secrets(m.group(0)), text)


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
    value = value.replace("\x00", "")
    if len(value) > MAX_STRING:
        value = value[:MAX_STRING] + "...[truncated]"
    return strip_text_secrets(value)


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
    """A copy of a server document that every backend can store (no NULs, no NaN)."""
    if isinstance(value, str):
        return value.replace("\x00", "")
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, Mapping):
        return {str(k).replace("\x00", ""): storable_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [storable_json(v) for v in value]
    return value


def canonical_json(value: Any) -> str:
    """JSON with sorted keys and no whitespace: equal content gives equal text."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def content_hash(value: Any) -> str:
    """The sha256 hex digest of the canonical JSON of `value`."""
    return hashlib.sha256(canonical_json(value).encode("utf-8")).hexdigest()
