"""Payers and endpoints in the database: mirrored from the directory, or created ad hoc.

Rows are never deleted here: a payer or endpoint dropped from `endpoints.yaml` keeps its
history. Functions take a Session and flush but never commit; the caller owns the transaction.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from typing import Any, TypeVar
from urllib.parse import urlsplit

from sqlalchemy import ColumnElement, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from probe.directory.schema import Environment, Payer, payer_targets
from probe.store.tables import EndpointRow, PayerRow


def _payer_fields(payer: Payer) -> dict[str, Any]:
    return {
        "lives": payer.lives,
        "vendor": payer.vendor,
        "organization_status": str(payer.organization_status),
        "lines_of_business": payer.lines_of_business.model_dump(mode="json"),
        "source": payer.source,
    }


#: Payers mirrored per round trip: the rows of one chunk are all the session holds at once.
UPSERT_CHUNK = 500

_T = TypeVar("_T")


def _in_chunks(items: Iterable[_T]) -> Iterator[list[_T]]:
    """The items (payers, targets) `UPSERT_CHUNK` at a time (a generator keeps the directory
    out of memory)."""
    chunk: list[_T] = []
    for item in items:
        chunk.append(item)
        if len(chunk) >= UPSERT_CHUNK:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def upsert_directory(session: Session, payers: Iterable[Payer]) -> dict[str, int]:
    """Insert or update every payer and endpoint of the directory; idempotent.

    Returns the endpoint id of each crawl target keyed by ``Target.key``
    (``"environment:base_url"``). An endpoint that moved to another payer is reassigned.
    Payers are taken `UPSERT_CHUNK` at a time, with one query for a chunk's payers and one for
    its endpoints.
    """
    ids: dict[str, int] = {}
    seen: set[str] = set()
    for chunk in _in_chunks(payers):
        _upsert_chunk(session, chunk, seen, ids)
    return ids


def endpoint_ids(session: Session, pairs: Iterable[tuple[str, str]]) -> dict[str, int] | None:
    """The endpoint id of each crawl target, given as (environment, base URL), keyed by
    ``Target.key``, read without writing; None when one of them is not in the store yet (the
    caller upserts instead)."""
    ids: dict[str, int] = {}
    for chunk in _in_chunks(pairs):
        found = {
            (env, url): eid
            for eid, env, url in session.execute(
                select(EndpointRow.id, EndpointRow.environment, EndpointRow.base_url).where(
                    *_by_target(chunk)
                )
            )
        }
        for env, url in chunk:
            if (env, url) not in found:
                return None
            ids[f"{env}:{url}"] = found[(env, url)]
    return ids


def _by_target(pairs: list[tuple[str, str]]) -> tuple[ColumnElement[bool], ...]:
    """A filter on endpoints for these (environment, base URL) pairs (a superset of them) that
    the (environment, base_url) unique index answers: on the URLs alone every lookup read the
    whole index, so a chunk's cost grew with the catalog."""
    return (
        EndpointRow.environment.in_(sorted({env for env, _ in pairs})),
        EndpointRow.base_url.in_(sorted({url for _, url in pairs})),
    )


def _upsert_chunk(
    session: Session, chunk: list[Payer], seen: set[str], ids: dict[str, int]
) -> None:
    """One chunk: rows already stored are updated where they differ, new rows are inserted in
    one multi-row INSERT ... RETURNING per table (no ORM object per new row)."""
    names = [p.name for p in chunk]
    by_name = {
        row.name: row for row in session.scalars(select(PayerRow).where(PayerRow.name.in_(names)))
    }
    payer_ids: dict[str, int] = {}
    new_payers: list[dict[str, Any]] = []
    for payer in chunk:
        row = by_name.get(payer.name)
        if row is None:
            new_payers.append({"name": payer.name, **_payer_fields(payer)})
            continue
        for field, value in _payer_fields(payer).items():
            if getattr(row, field) != value:
                setattr(row, field, value)
        payer_ids[payer.name] = row.id
    session.flush()
    if new_payers:
        inserted = session.execute(
            insert(PayerRow).returning(PayerRow.id, PayerRow.name), new_payers
        )
        payer_ids.update((name, pid) for pid, name in inserted)

    wanted = [
        (payer, payer.endpoints[index], str(env), url)
        for payer in chunk
        for index, env, url in payer_targets(payer, seen)
    ]
    existing = {
        (row.environment, row.base_url): row
        for row in session.scalars(
            select(EndpointRow).where(*_by_target([(env, url) for *_, env, url in wanted]))
        )
    }
    endpoint_ids: dict[tuple[str, str], int] = {}
    new_endpoints: list[dict[str, Any]] = []
    for payer, endpoint, env, url in wanted:
        facts = _storable_facts(endpoint.facts.model_dump(exclude_none=True)) or None
        payer_id = payer_ids[payer.name]
        found = existing.get((env, url))
        if found is None:
            new_endpoints.append(
                {
                    "payer_id": payer_id,
                    "environment": env,
                    "base_url": url,
                    "portal_url": endpoint.portal_url,
                    "facts": facts,
                }
            )
            continue
        if found.payer_id != payer_id:
            found.payer_id = payer_id
        if found.portal_url != endpoint.portal_url:
            found.portal_url = endpoint.portal_url
        if found.facts != facts:
            found.facts = facts
        endpoint_ids[(env, url)] = found.id
    session.flush()
    if new_endpoints:
        rows = session.execute(
            insert(EndpointRow).returning(
                EndpointRow.id, EndpointRow.environment, EndpointRow.base_url
            ),
            new_endpoints,
        )
        endpoint_ids.update(((env, url), eid) for eid, env, url in rows)
    for *_, env, url in wanted:
        ids[f"{env}:{url}"] = endpoint_ids[(env, url)]


def _storable_facts(facts: dict[str, Any]) -> dict[str, Any]:
    """Facts as JSON every backend stores: infinity ("indefinitely") as the string "inf".

    PostgreSQL's JSONB refuses `Infinity`; `EndpointFacts` reads "inf" back as a float.
    """
    return {
        key: "inf" if isinstance(value, float) and math.isinf(value) else value
        for key, value in facts.items()
    }


def normalize_base_url(base_url: str) -> str:
    """A base URL as the store keys it: surrounding space and trailing slashes removed."""
    return base_url.strip().rstrip("/")


def find_endpoint(
    session: Session, base_url: str, environment: Environment | str | None = None
) -> EndpointRow | None:
    """The endpoint with this base URL (in `environment`, production first when not given)."""
    query = select(EndpointRow).where(EndpointRow.base_url == normalize_base_url(base_url))
    if environment is not None:
        query = query.where(EndpointRow.environment == str(environment))
    rows = sorted(session.scalars(query), key=lambda r: r.environment != "production")
    return rows[0] if rows else None


def ensure_endpoint(
    session: Session,
    base_url: str,
    environment: Environment | str = Environment.PRODUCTION,
    payer_name: str | None = None,
) -> int:
    """The id of the endpoint for this URL, creating it (and its payer) when unknown.

    For ad-hoc ``probe check URL --save``: an unknown payer is named after the URL's host.
    Safe against a concurrent creator (the loser re-reads the winner's row).
    """
    url = normalize_base_url(base_url)
    env = str(Environment(environment))
    existing = find_endpoint(session, url, env)
    if existing is not None:
        return existing.id
    name = payer_name or (urlsplit(url).hostname or url)
    for _attempt in range(3):
        try:
            with session.begin_nested():
                payer = session.scalars(select(PayerRow).where(PayerRow.name == name)).first()
                if payer is None:
                    payer = PayerRow(name=name, organization_status="none", source="ad-hoc")
                    session.add(payer)
                    session.flush()
                endpoint = EndpointRow(payer_id=payer.id, environment=env, base_url=url)
                session.add(endpoint)
                session.flush()
                return endpoint.id
        except IntegrityError:
            # Someone else created the payer or the endpoint meanwhile: use theirs.
            existing = find_endpoint(session, url, env)
            if existing is not None:
                return existing.id
    raise RuntimeError(f"could not create endpoint {url} after concurrent conflicts")
