"""The FHIR REST API of one simulated payer: reads, searches, `Patient/{id}/$everything`, paging.

Responses are assembled from pre-serialized resources. Bundles are `searchset`s with `total`,
`self` and `next` links, `fullUrl`s and `search.mode`. Errors are OperationOutcomes; a few omit
`issue.code` (as real servers do) and unknown ids of `dangling_references` payers may answer 500
with HAPI-2001. Observation and Condition searches filter by `category` and `code`;
`category_required` payers refuse Observation searches with neither (400), `extra_types` payers
serve five more compartment types, and `cursor_paging` payers page with opaque cursors after
leading empty pages.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from starlette.responses import Response

from probe.fleet.archetypes import Behaviour
from probe.fleet.documents import FLEET_DATE, hapi_not_known, operation_outcome
from probe.fleet.extras import EXTRA_TYPES, token_matches
from probe.fleet.paging import (
    PAGING_PARAMS,
    LinkStyle,
    Query,
    crosses_origin,
    decode_cursor,
    decode_token,
    next_offset,
    page_url,
)
from probe.fleet.patients import PATIENT_FIELD, SHARED_TYPES, TOKEN_SEARCH_TYPES, Key, PayerData

FHIR_JSON = "application/fhir+json; charset=utf-8"
PLAIN_JSON = "application/json; charset=utf-8"
KNOWN_TYPES = frozenset({*PATIENT_FIELD, *SHARED_TYPES}) - frozenset(EXTRA_TYPES)
_REF_PARAMS = ("patient", "beneficiary", "subject")
_TOKEN_PARAMS = ("category", "code")
CATEGORY_REQUIRED_MESSAGE = (
    "Observation search must have either code or category (a patient-only search is not allowed)"
)


def served_types(behaviour: Behaviour) -> frozenset[str]:
    """The resource types a payer serves (the extra types only with `extra_types`)."""
    if behaviour.extra_types is not None:
        return KNOWN_TYPES | frozenset(EXTRA_TYPES)
    return KNOWN_TYPES


@dataclass(frozen=True, slots=True)
class FhirContext:
    """Everything one FHIR request needs besides the payer's data."""

    base: str  # the base URL as the client reached it (scheme://host:port/prefix)
    other_base: str  # the same base on the payer's other origin
    behaviour: Behaviour
    style: LinkStyle
    secret: bytes
    page_size: int
    max_count: int
    content_type: str


def fhir_response(body: dict[str, Any] | bytes, status: int, ctx: FhirContext) -> Response:
    """A FHIR JSON response in the payer's content type."""
    raw = body if isinstance(body, bytes) else json.dumps(body, separators=(",", ":")).encode()
    return Response(raw, status_code=status, media_type=ctx.content_type)


def _error(
    status: int, message: str, ctx: FhirContext, code: str | None = "processing"
) -> Response:
    return fhir_response(operation_outcome(message, code), status, ctx)


def _strip_ref(value: str) -> str:
    return value.rsplit("/", 1)[-1]


def handle_fhir(
    ctx: FhirContext, data: PayerData, path: str, params: Sequence[tuple[str, str]], url: str
) -> Response:
    """Answer a GET below the base URL (path without leading slash, e.g. ``Coverage``)."""
    values = dict(params)
    cursor = values.get("cursor")
    if cursor is not None:
        return _continued(ctx, data, decode_cursor(ctx.secret, cursor), url)
    token = values.get("ct") or values.get("_page_token") or values.get("_getpages")
    if token is not None:
        return _continue(ctx, data, token, values, url)
    parts = [p for p in path.split("/") if p]
    if not parts:
        return _error(400, "Invalid request: no resource type in the URL", ctx, None)
    rtype = parts[0]
    if rtype not in served_types(ctx.behaviour):
        return _error(404, f"Unknown resource type '{rtype}'", ctx, "not-supported")
    if len(parts) == 2:
        return _read(ctx, data, rtype, parts[1])
    rest = [(k, v) for k, v in params if k not in PAGING_PARAMS]
    if len(parts) == 3 and rtype == "Patient" and parts[2] == "$everything":
        built = _everything_query(ctx, data, parts[1], rest)
    elif len(parts) == 1:
        built = _search_query(ctx, rtype, rest)
    else:
        return _error(400, f"Invalid request: unsupported path {path}", ctx, None)
    if isinstance(built, Response):
        return built
    try:
        offset = max(0, int(values.get("startIndex", "0")))
    except ValueError:
        return _error(400, "Invalid startIndex", ctx)
    cursor_paging = ctx.behaviour.cursor_paging
    if cursor_paging is not None:
        offset = -cursor_paging.leading_empty_pages  # negative offsets are the leading empty pages
    return _page(ctx, data, built, offset, url)


def _read(ctx: FhirContext, data: PayerData, rtype: str, rid: str) -> Response:
    key = (rtype, rid)
    body = data.resources.get(key)
    if body is not None:
        return fhir_response(body, 200, ctx)
    if key in data.missing_500:
        return fhir_response(hapi_not_known(rtype, rid), 500, ctx)
    if key in data.missing_404:
        return _error(404, f"Resource {rtype}/{rid} not found", ctx, None)
    return _error(404, f"Resource {rtype}/{rid} is not known", ctx, "not-found")


def _count(ctx: FhirContext, params: Sequence[tuple[str, str]]) -> int | None:
    for key, value in params:
        if key == "_count":
            try:
                return max(0, min(int(value), ctx.max_count))
            except ValueError:
                return None
    return ctx.page_size


def _search_query(
    ctx: FhirContext, rtype: str, params: Sequence[tuple[str, str]]
) -> Query | Response:
    count = _count(ctx, params)
    if count is None:
        return _error(400, "Invalid _count value", ctx)
    patient: str | None = None
    ids: tuple[str, ...] | None = None
    eob_type: str | None = None
    only = EXTRA_TYPES.get(rtype) if rtype == "ServiceRequest" else None
    for key, value in params:
        if key in _REF_PARAMS and only is not None and key != only:
            return _error(
                400,
                f'Unknown search parameter "{key}" for resource type "{rtype}". Valid '
                f"search parameters for this search are: [_id, {only}]",
                ctx,
                "not-supported",
            )
        if key in _REF_PARAMS:
            patient = _strip_ref(value)
        elif key == "_id":
            ids = tuple(v for v in value.split(",") if v)
        elif key == "type" and rtype == "ExplanationOfBenefit":
            eob_type = value.rsplit("|", 1)[-1]
    names = {k for k, _ in params}
    if (
        ctx.behaviour.category_required is not None
        and rtype == "Observation"
        and not names & {"category", "code", "_id"}
    ):
        return _error(400, CATEGORY_REQUIRED_MESSAGE, ctx, "required")
    return Query("search", rtype, patient, ids, eob_type, count, tuple(params))


def _everything_query(
    ctx: FhirContext, data: PayerData, patient: str, params: Sequence[tuple[str, str]]
) -> Query | Response:
    unsupported = ctx.behaviour.everything_unsupported
    if unsupported is not None:
        return _error(
            unsupported.status,
            "Invalid request: The FHIR endpoint on this server does not know how to handle GET "
            f"operation[Patient/{patient}/$everything] with parameters [[]]",
            ctx,
            "not-supported",
        )
    if patient not in data.everything:
        return _error(404, f"Resource Patient/{patient} is not known", ctx, "not-found")
    count = _count(ctx, params)
    if count is None:
        return _error(400, "Invalid _count value", ctx)
    return Query("everything", "Patient", patient, None, None, count, tuple(params))


def _continue(
    ctx: FhirContext, data: PayerData, token: str, values: dict[str, str], url: str
) -> Response:
    decoded = decode_token(ctx.secret, token)
    if decoded is None:
        return _error(410, "Invalid or expired paging token", ctx, None)
    query, offset = decoded
    if "_getpages" in values:
        try:
            offset = max(0, int(values.get("_getpagesoffset", "0")))
        except ValueError:
            return _error(400, "Invalid _getpagesoffset", ctx)
    return _page(ctx, data, query, offset, url)


def _continued(
    ctx: FhirContext, data: PayerData, decoded: tuple[Query, int] | None, url: str
) -> Response:
    if decoded is None:
        return _error(410, "Invalid or expired cursor", ctx, None)
    return _page(ctx, data, decoded[0], decoded[1], url)


def _keys(data: PayerData, query: Query) -> list[tuple[Key, str]]:
    if query.kind == "everything":
        patient = query.patient or ""
        keys = data.everything.get(patient, [])
        # Sets, not the compartment's id lists: membership per key must be O(1) (10,000+ keys).
        members = {
            rtype: frozenset(ids) for rtype, ids in data.compartments.get(patient, {}).items()
        }
        return [
            (k, "match" if k[0] == "Patient" or k[1] in members.get(k[0], ()) else "include")
            for k in keys
        ]
    found = data.search(query.rtype, query.patient, list(query.ids) if query.ids else None)
    if query.eob_type:
        found = [k for k in found if data.eob_types.get(k[1]) == query.eob_type]
    if query.rtype in TOKEN_SEARCH_TYPES:
        for name, value in query.params:
            if name in _TOKEN_PARAMS:  # repeated parameters AND, commas within one OR
                found = [k for k in found if token_matches(value, _token(data, k, name))]
    return [(k, "match") for k in found]


def _token(data: PayerData, key: Key, name: str) -> frozenset[tuple[str, str]]:
    return data.tokens.get(key, {}).get(name, frozenset())


def _page(ctx: FhirContext, data: PayerData, query: Query, offset: int, url: str) -> Response:
    matches = _keys(data, query)
    total = len(matches)
    count = query.count
    if offset < 0 and (not count or not total):
        offset = 0  # leading empty pages only before data
    page = matches[offset : offset + count] if count and offset >= 0 else []
    links = [{"relation": "self", "url": url}]
    if offset < 0:
        nxt: int | None = offset + 1
    else:
        nxt = next_offset(ctx.behaviour, offset, count, total) if count else None
    if nxt is not None:
        base = ctx.other_base if crosses_origin(ctx.behaviour, nxt, count) else _base_of(ctx, url)
        links.append({"relation": "next", "url": page_url(base, ctx.style, ctx.secret, query, nxt)})
    head: dict[str, Any] = {
        "resourceType": "Bundle",
        "id": hashlib.sha256(url.encode()).hexdigest()[:20],
        "meta": {"lastUpdated": FLEET_DATE},
        "type": "searchset",
        "total": total,
        "link": links,
    }
    base = _base_of(ctx, url)
    entries = [
        b'{"fullUrl":"'
        + f"{base}/{k[0]}/{k[1]}".encode()
        + b'","resource":'
        + data.resources[k]
        + b',"search":{"mode":"'
        + mode.encode()
        + b'"}}'
        for k, mode in page
    ]
    raw = json.dumps(head, separators=(",", ":")).encode()
    if entries:
        raw = raw[:-1] + b',"entry":[' + b",".join(entries) + b"]}"
    return fhir_response(raw, 200, ctx)


def _base_of(ctx: FhirContext, url: str) -> str:
    """The base URL on the origin this request reached (cross-origin pages stay there)."""
    origin = urlsplit(url)
    other = urlsplit(ctx.other_base)
    if origin.netloc == other.netloc:
        return ctx.other_base
    return ctx.base
