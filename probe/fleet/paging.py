"""Search result paging: opaque continuation tokens in the styles real servers use.

Styles: ``ct`` (``?...&ct=TOKEN`` on the search URL), ``hapi`` (``{base}?_getpages=ID&
_getpagesoffset=N&_count=C`` on the base URL, as HAPI FHIR does), ``page_token``
(``?_page_token=TOKEN``), ``offset`` (``startIndex=N``, as Blue Button does) and, for
`cursor_paging` payers, ``cursor`` (``?cursor=TOKEN``, negative offsets being the leading empty
pages). Tokens are
stateless: a signed, base64url JSON of the query, so a tampered token is refused and nothing
grows in memory. The archetypes that break paging (loop, skip, cross-origin) act in
:func:`next_offset` and in the host the link names.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from dataclasses import asdict, dataclass
from typing import Literal
from urllib.parse import urlencode

from probe.fleet.archetypes import Behaviour

PAGING_PARAMS = frozenset(
    {"ct", "_getpages", "_getpagesoffset", "_page_token", "startIndex", "cursor"}
)
#: The link styles: the configurable ones, and `cursor` (the `cursor_paging` archetype).
LinkStyle = Literal["ct", "hapi", "page_token", "offset", "cursor"]


@dataclass(frozen=True, slots=True)
class Query:
    """A search or $everything request, as a page token carries it."""

    kind: str  # "search" or "everything"
    rtype: str
    patient: str | None
    ids: tuple[str, ...] | None
    eob_type: str | None
    count: int
    params: tuple[tuple[str, str], ...]  # the original non-paging query parameters

    def path(self) -> str:
        """The request path below the base URL."""
        if self.kind == "everything":
            return f"Patient/{self.patient}/$everything"
        return self.rtype


def encode_token(secret: bytes, query: Query, offset: int) -> str:
    """A signed opaque token for this query at this offset."""
    payload = json.dumps([asdict(query), offset], separators=(",", ":")).encode()
    mac = hmac.new(secret, payload, hashlib.sha256).digest()[:12]
    return base64.urlsafe_b64encode(mac + payload).decode().rstrip("=")


def decode_token(secret: bytes, token: str) -> tuple[Query, int] | None:
    """The query and offset in a token, or None when it is malformed or was tampered with."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except (binascii.Error, ValueError):
        return None
    mac, payload = raw[:12], raw[12:]
    if not hmac.compare_digest(mac, hmac.new(secret, payload, hashlib.sha256).digest()[:12]):
        return None
    try:
        fields, offset = json.loads(payload)
        query = Query(
            kind=fields["kind"],
            rtype=fields["rtype"],
            patient=fields["patient"],
            ids=tuple(fields["ids"]) if fields["ids"] is not None else None,
            eob_type=fields["eob_type"],
            count=int(fields["count"]),
            params=tuple((str(k), str(v)) for k, v in fields["params"]),
        )
    except (ValueError, KeyError, TypeError):
        return None
    return query, int(offset)


def _keystream(secret: bytes, nonce: bytes, length: int) -> bytes:
    out = b""
    block = 0
    while len(out) < length:
        out += hmac.new(secret, nonce + block.to_bytes(4, "big"), hashlib.sha256).digest()
        block += 1
    return out[:length]


def encode_cursor(secret: bytes, query: Query, offset: int) -> str:
    """An opaque cursor (a signed token, enciphered so it reads as random) for `cursor_paging`."""
    token = base64.urlsafe_b64decode(_pad(encode_token(secret, query, offset)))
    nonce = hmac.new(secret, b"cursor" + token, hashlib.sha256).digest()[:8]
    mixed = bytes(a ^ b for a, b in zip(token, _keystream(secret, nonce, len(token)), strict=True))
    return base64.urlsafe_b64encode(nonce + mixed).decode().rstrip("=")


def decode_cursor(secret: bytes, cursor: str) -> tuple[Query, int] | None:
    """The query and offset in a cursor, or None when it is malformed or was tampered with."""
    try:
        raw = base64.urlsafe_b64decode(_pad(cursor))
    except (binascii.Error, ValueError):
        return None
    nonce, mixed = raw[:8], raw[8:]
    token = bytes(a ^ b for a, b in zip(mixed, _keystream(secret, nonce, len(mixed)), strict=True))
    return decode_token(secret, base64.urlsafe_b64encode(token).decode().rstrip("="))


def _pad(text: str) -> str:
    return text + "=" * (-len(text) % 4)


def page_url(base: str, style: LinkStyle, secret: bytes, query: Query, offset: int) -> str:
    """The URL of the page of `query` starting at `offset`, in the payer's paging style."""
    if style == "cursor":
        cursor = encode_cursor(secret, query, offset)
        return f"{base}/{query.path()}?{urlencode({'cursor': cursor})}"
    if style == "hapi":
        token = encode_token(secret, query, 0)
        params = {
            "_getpages": token,
            "_getpagesoffset": str(offset),
            "_count": str(query.count),
            "_pretty": "true",
            "_bundletype": "searchset",
        }
        return f"{base}?{urlencode(params)}"
    original = list(query.params)
    if style == "offset":
        params_list = [*original, ("startIndex", str(offset))]
        if not any(k == "_count" for k, _ in original):
            params_list.append(("_count", str(query.count)))
        return f"{base}/{query.path()}?{urlencode(params_list)}"
    token = encode_token(secret, query, offset)
    if style == "page_token":
        return f"{base}/{query.path()}?{urlencode({'_page_token': token})}"
    return f"{base}/{query.path()}?{urlencode([*original, ('ct', token)])}"


def next_offset(behaviour: Behaviour, offset: int, count: int, total: int) -> int | None:
    """Where the next page starts (None: this is the last page), with the paging quirks."""
    page = offset // count if count else 0
    loop = behaviour.paging_loop
    if loop is not None and page == loop.after_page and total > count * (loop.after_page + 1):
        return loop.back_to * count
    skip = behaviour.paging_skip
    nxt = offset + count
    if skip is not None and page == skip.at_page:
        nxt = offset + count * (1 + skip.skip_pages)
    return nxt if nxt < total else None


def crosses_origin(behaviour: Behaviour, next_start: int, count: int) -> bool:
    """True when the link to the page at `next_start` should name the other origin."""
    cross = behaviour.paging_cross_origin
    return cross is not None and count > 0 and next_start // count > cross.at_page
