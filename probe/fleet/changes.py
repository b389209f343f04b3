"""Changing a served payer between two runs, the way real releases drift (drift tests, demos).

Archetypes cover behaviour (a payer that starts to break paging is the same config with
`paging_loop` added: patient ids and credentials depend only on the seed and the slug). What no
archetype expresses is done here, as an ASGI layer around the fleet's app:

* ``drop_resource_types``: the CapabilityStatement stops declaring them and their searches
  answer 404;
* ``jwks_key_id``: the payer's jwks_uri publishes a new key under this kid (the old key is
  retired), as after a key rotation;
* ``token_path``: the token endpoint moves to ``/payers/{slug}/{token_path}`` (the documents
  name the new URL, which answers like the old one; the old URL answers 404).

Use it before taking a transport (``FleetTransport`` reads ``fleet.app`` once)::

    fleet = Fleet(config)
    change_fleet(fleet, {"acme": PayerChange(drop_resource_types=("Immunization",))})
    transport = fleet.transport()

Moving the token endpoint suits clients that authenticate with a secret (a private_key_jwt
assertion's audience stays the original token URL).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from probe.fleet.app import Fleet
from probe.fleet.documents import operation_outcome

_JSON_PATHS = ("/metadata", "/.well-known/smart-configuration")


@dataclass(frozen=True, slots=True)
class PayerChange:
    """What to change about one payer (empty: nothing)."""

    drop_resource_types: tuple[str, ...] = ()
    jwks_key_id: str | None = None
    token_path: str | None = None


@cache
def _rotated_key(kid: str) -> dict[str, Any]:
    """A public JWK for a freshly generated ES384 key published under `kid`."""
    public = ec.generate_private_key(ec.SECP384R1()).public_key()
    jwk: dict[str, Any] = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(public))
    jwk.update({"kid": kid, "alg": "ES384", "use": "sig"})
    return jwk


class ChangedFleetApp:
    """ASGI layer applying :class:`PayerChange` values to the payers' responses."""

    def __init__(self, inner: ASGIApp, changes: Mapping[str, PayerChange]) -> None:
        self.inner = inner
        self.changes = dict(changes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Rewrite the changed payers' documents and routes; pass everything else through."""
        if scope["type"] != "http":
            await self.inner(scope, receive, send)
            return
        path: str = scope["path"]
        parts = path.split("/", 3)
        change = self.changes.get(parts[2]) if len(parts) > 3 and parts[1] == "payers" else None
        if change is None:
            await self.inner(scope, receive, send)
            return
        slug, rest = parts[2], parts[3]
        if change.token_path:
            new = change.token_path.strip("/")
            if rest == new:
                scope = {**scope, "path": f"/payers/{slug}/oauth/token"}
            elif rest == "oauth/token":
                await _not_found(scope, receive, send, "the token endpoint has moved")
                return
        if change.jwks_key_id and rest == "oauth/jwks" and scope["method"] == "GET":
            await JSONResponse({"keys": [_rotated_key(change.jwks_key_id)]})(scope, receive, send)
            return
        if change.drop_resource_types and _searches_dropped(rest, change.drop_resource_types):
            await _not_found(scope, receive, send, "resource type not supported")
            return
        if scope["method"] == "GET" and rest.endswith(_JSON_PATHS):
            await self._rewritten(scope, receive, send, slug, change)
            return
        await self.inner(scope, receive, send)

    async def _rewritten(
        self, scope: Scope, receive: Receive, send: Send, slug: str, change: PayerChange
    ) -> None:
        messages: list[Message] = []

        async def capture(message: Message) -> None:
            messages.append(message)

        await self.inner(scope, receive, capture)
        start = next((m for m in messages if m["type"] == "http.response.start"), None)
        body = b"".join(m.get("body", b"") for m in messages if m["type"] == "http.response.body")
        try:
            document = json.loads(body) if start is not None and start["status"] == 200 else None
        except ValueError:
            document = None
        if start is None or not isinstance(document, dict):
            for message in messages:
                await send(message)
            return
        changed = _apply(document, slug, change)
        new_body = json.dumps(changed, separators=(",", ":")).encode()
        headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
        headers.append((b"content-length", str(len(new_body)).encode()))
        await send({**start, "headers": headers})
        await send({"type": "http.response.body", "body": new_body, "more_body": False})


def _searches_dropped(rest: str, dropped: tuple[str, ...]) -> bool:
    segments = rest.split("/")
    # fhir/{Type}..., api/r4/{Type}..., sandbox/fhir/{Type}...
    return any(len(segments) > depth and segments[depth] in dropped for depth in (1, 2))


def _apply(document: dict[str, Any], slug: str, change: PayerChange) -> dict[str, Any]:
    text = json.dumps(document)
    if change.token_path:
        text = text.replace(f"/payers/{slug}/oauth/token", f"/payers/{slug}/{change.token_path}")
    out: dict[str, Any] = json.loads(text)
    if change.drop_resource_types and out.get("resourceType") == "CapabilityStatement":
        for rest in out.get("rest") or []:
            if isinstance(rest, dict) and isinstance(rest.get("resource"), list):
                rest["resource"] = [
                    r
                    for r in rest["resource"]
                    if not (isinstance(r, dict) and r.get("type") in change.drop_resource_types)
                ]
    return out


async def _not_found(scope: Scope, receive: Receive, send: Send, why: str) -> None:
    body = operation_outcome(why, "not-supported")
    response: Response = JSONResponse(body, 404, media_type="application/fhir+json")
    await response(scope, receive, send)


def change_fleet(fleet: Fleet, changes: Mapping[str, PayerChange]) -> None:
    """Apply `changes` (by payer slug) to the fleet's app; unknown slugs are a KeyError."""
    for slug in changes:
        fleet.site(slug)
    fleet.app = ChangedFleetApp(fleet.app, changes)  # type: ignore[assignment]
