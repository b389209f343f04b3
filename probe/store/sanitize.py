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

from probe.http.redact import KNOWN_SECRETS, SECRET_QUERY_PARAMS, scrub_secrets
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
_SURROGATE = re.compile("[\ud800-\udfff]")


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


# Text that strip_text_secrets may change even with no secret registered: a NUL or lone
# surrogate, a URL, or (in any case) the tail of a "Bearer"/"Basic" credential scheme. A
# string without any of these, while the registry is empty, is stored as it is.
_MAY_CHANGE = re.compile(r"[\x00\ud800-\udfff]|://|(?i:earer|asic)")
# What makes a canonical JSON text of a document need a look string by string: a NUL (written
# as an escape), a lone surrogate, or a "Bearer"/"Basic" that an escaped whitespace may hide.
_JSON_MAY_CHANGE = re.compile(r"\\u0000|[\ud800-\udfff]|(?i:earer|asic)")


class Scrubber:
    """:func:`scrub` and :func:`strip_text_secrets` for one batch of observations (the checks
    of one probed endpoint), each distinct string cleaned once.

    The registry of live secrets is consulted as it is when the scrubber is made: use one per
    batch, not for longer.
    """

    __slots__ = ("_keys", "_no_secrets", "_texts")

    def __init__(self) -> None:
        self._no_secrets = len(KNOWN_SECRETS) == 0
        self._texts: dict[str, str] = {}
        self._keys: dict[str, tuple[str, bool]] = {}

    def text(self, value: str) -> str:
        """`value` as :func:`strip_text_secrets` returns it (not truncated)."""
        out = self._texts.get(value)
        if out is None:
            if self._no_secrets and _MAY_CHANGE.search(value) is None:
                out = value
            else:
                out = strip_text_secrets(value)
            self._texts[value] = out
        return out

    def _string(self, value: str) -> str:
        value = self.text(value)
        if len(value) > MAX_STRING:
            value = value[:MAX_STRING] + "...[truncated]"
        return value

    def _key(self, key: Any) -> tuple[str, bool]:
        """A mapping key's stored name and whether it names a secret."""
        text = key if type(key) is str else str(key.value if isinstance(key, enum.Enum) else key)
        known = self._keys.get(text)
        if known is None:
            name = self._string(text)
            known = self._keys[text] = (name, name.lower() in SECRET_KEYS)
        return known

    def scrub(self, value: Any, depth: int = 0) -> Any:
        """What :func:`scrub` returns for `value`."""
        if depth > MAX_DEPTH:
            return "[nested too deep]"
        kind = type(value)  # the common exact types first, then the general order
        if kind is str:
            return self._string(value)
        if kind is int or kind is bool or value is None:
            return value
        if kind is dict:
            return self._mapping(value, depth)
        if kind is list:
            return [self.scrub(item, depth + 1) for item in value]
        if isinstance(value, enum.Enum):
            return self.scrub(value.value, depth)
        if isinstance(value, bool | int):
            return value
        if isinstance(value, float):
            return value if math.isfinite(value) else str(value)
        if isinstance(value, str):
            return self._string(value)
        if isinstance(value, bytes | bytearray | memoryview):
            return f"[{len(value)} bytes not stored]"
        if isinstance(value, datetime | date | time):
            return value.isoformat()
        if isinstance(value, timedelta):
            return value.total_seconds()
        if isinstance(value, Mapping):
            return self._mapping(value, depth)
        if isinstance(value, list | tuple | set | frozenset):
            return [self.scrub(item, depth + 1) for item in value]
        return self._string(str(value))

    def _mapping(self, value: Mapping[Any, Any], depth: int) -> Any:
        if "resourceType" in value and value["resourceType"] not in PUBLIC_RESOURCE_TYPES:
            return _resource_stub(value)
        out: dict[str, Any] = {}
        keys = self._keys
        inline = depth + 1 <= MAX_DEPTH  # below the limit every value is "[nested too deep]"
        for key, item in value.items():
            known = keys.get(key) if type(key) is str else None
            name, secret = known if known is not None else self._key(key)
            kind = type(item)
            if secret and isinstance(item, str | int | float):
                out[name] = REDACTED
            elif inline and kind is str:
                out[name] = self._string(item)
            elif inline and (item is None or kind is int or kind is bool):
                out[name] = item
            else:
                out[name] = self.scrub(item, depth + 1)
        return out


def scrub(value: Any, depth: int = 0) -> Any:
    """A JSON-storable copy of `value`: secrets redacted, FHIR resources reduced to type and id.

    Enums become their values, datetimes ISO strings, bytes a size note, tuples/sets lists,
    non-finite floats strings; long strings are truncated; anything else becomes ``str()``.
    """
    return Scrubber().scrub(value, depth)


def _json_key(key: Any) -> str:
    """A mapping key as JSON writes it (``json.dumps``): a string as it is, ``true``/``false``
    /``null``, a number's repr; anything else as ``str()``."""
    if isinstance(key, str):
        return key
    if key is None or isinstance(key, bool):
        return json.dumps(key)
    if isinstance(key, int):
        return int.__repr__(key)
    if isinstance(key, float):
        return float.__repr__(key)
    return str(key)


def _storable(value: Any) -> Any:
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, Mapping):
        return {clean_text(_json_key(k)): _storable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_storable(v) for v in value]
    return value


def storable_document(value: Any) -> tuple[Any, str]:
    """:func:`storable_json` of a server document and its :func:`content_hash`.

    Most documents need nothing removed: their canonical JSON text is written and checked once
    instead of cleaning string by string, and the document itself is returned (it stores as
    that text).
    """
    try:
        text = canonical_json(value, allow_nan=False)
    except (TypeError, ValueError, RecursionError):  # not plain JSON: clean it value by value
        text = None
    if text is not None and _unchanged_as_json(text):
        return value, _sha256(text)
    clean = _storable(value)
    return clean, content_hash(clean)


def _unchanged_as_json(text: str) -> bool:
    """True when no string (or key) of the document whose canonical JSON is `text` would be
    changed by :func:`clean_text`.

    Without a backslash in `text` no string was escaped, so every string and key is in the
    text as it is and one scrub of the whole text finds whatever a scrub of each would (a
    secret spanning two strings only sends the document the slow way). With escapes, the
    text is trusted only while no secret is registered (a secret's forms may hold characters
    JSON escapes) and nothing a credential scheme or a NUL could hide behind is present.
    """
    if "\\" in text:
        if len(KNOWN_SECRETS) or _JSON_MAY_CHANGE.search(text) is not None:
            return False
    elif _SURROGATE.search(text) is not None:
        return False
    return scrub_secrets(text) == text


def storable_json(value: Any) -> Any:
    """A server document that every backend can store (no NULs, lone surrogates or NaN) and
    that holds no known secret: a cleaned copy, or `value` itself when nothing in it needs
    changing. Keys that are not strings are stored as JSON writes them."""
    return storable_document(value)[0]


def canonical_json(value: Any, *, allow_nan: bool = True) -> str:
    """JSON with sorted keys and no whitespace: equal content gives equal text."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=allow_nan
    )


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def content_hash(value: Any) -> str:
    """The sha256 hex digest of the canonical JSON of `value`."""
    return _sha256(canonical_json(value))
