"""Hostile payer servers: the archetypes that attack the client instead of merely misbehaving.

A payer with a hostile archetype gets its own loopback address (127.0.1.1, 127.0.1.2, ...) served
by :class:`HostileServer`, a raw HTTP/1.1 server on plain sockets rather than uvicorn: it must be
able to lie about Content-Length, trickle bytes, never answer, or stream without end, none of
which a well-behaved ASGI server allows. Requests its archetype leaves alone (the token endpoint
during a data attack, for instance) are handed to the fleet's ordinary ASGI app, so the payer
still has real documents, OAuth and data. Every request, hostile or not, is logged in
``fleet.stats`` with its headers, like on the other hosts.

Archetypes (parameters in :mod:`probe.fleet.hostile_params`; docs/fleet.md and docs/hostile.md):
``trickle``, ``endless_body``, ``huge_body``, ``gzip_bomb``, ``deep_json``, ``redirect_loop``,
``redirect_cross_origin``, ``next_link_elsewhere``, ``invalid_utf8``, ``lying_length`` and
``never_answers``. `scope` says which requests misbehave: ``discovery`` (`/metadata` and the
SMART configuration), ``data`` (every other FHIR request), ``token`` (the token endpoint) or
``all`` (every request of the payer).
"""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import zlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit

import anyio
import anyio.abc
import anyio.lowlevel
from anyio.abc import SocketAttribute

from probe.fleet.app import Fleet
from probe.fleet.hostile_params import (
    DeepJsonParams,
    GzipBombParams,
    HostileSpec,
    HugeBodyParams,
    LyingLengthParams,
    NextLinkElsewhereParams,
    RedirectCrossOriginParams,
    RedirectLoopParams,
    Scope,
    TrickleParams,
)
from probe.fleet.sites import PayerSite

log = logging.getLogger(__name__)

#: Longest a hostile server keeps one connection (a client that never gives up cannot pin it).
HOLD_MAX_S = 300.0
MAX_HEAD_BYTES = 64 * 1024
MAX_REQUEST_BODY = 1024 * 1024
LINK_LOCAL_TARGET = "http://169.254.169.254/latest/meta-data/iam/security-credentials/"


def request_scope(rest: str) -> Scope | None:
    """The scope a payer-relative path belongs to (None for paths no archetype touches)."""
    if rest.startswith("oauth/"):
        return "token" if rest == "oauth/token" else None
    for prefix in ("fhir", "api/r4", "sandbox/fhir"):
        if rest == prefix or rest.startswith(prefix + "/"):
            sub = rest[len(prefix) :]
            if sub in ("/metadata", "/.well-known/smart-configuration"):
                return "discovery"
            return "data"
    return None


# -- the server -------------------------------------------------------------------------------


@dataclass(slots=True)
class _Request:
    method: str
    target: str
    headers: list[tuple[str, str]]
    body: bytes

    @property
    def path(self) -> str:
        return urlsplit(self.target).path

    @property
    def query(self) -> str:
        return urlsplit(self.target).query


@dataclass(slots=True)
class _Answer:
    status: int
    headers: list[tuple[str, str]]
    body: bytes = b""

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k.lower() == name), None)


@dataclass(slots=True)
class HostileServer:
    """Serves every hostile payer of a fleet on its own address (sockets bound by the caller)."""

    fleet: Fleet
    _scope: anyio.CancelScope = field(default_factory=anyio.CancelScope)
    started: bool = False

    async def serve(self, sockets: list[socket.socket]) -> None:
        """Accept connections on `sockets` until :meth:`stop` (each handled in its own task)."""
        if not sockets:
            return
        listeners = [await anyio.abc.SocketListener.from_socket(s) for s in sockets]
        with self._scope:
            async with anyio.create_task_group() as tg:
                for listener in listeners:
                    tg.start_soon(listener.serve, self._connection, tg)
                self.started = True
                await anyio.sleep_forever()

    def stop(self) -> None:
        """Stop accepting and drop every open connection."""
        self._scope.cancel()

    async def _connection(self, stream: anyio.abc.SocketStream) -> None:
        local = stream.extra(SocketAttribute.local_address)  # noqa: S610 (anyio, not Django)
        remote = stream.extra(SocketAttribute.remote_address)  # noqa: S610
        address, port = str(local[0]), int(local[1])
        try:
            with anyio.move_on_after(HOLD_MAX_S):
                request = await _read_request(stream)
                if request is not None:
                    await self._answer(stream, request, address, port, remote)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, anyio.EndOfStream, OSError):
            pass  # the client went away: that is how most of these end
        finally:
            with anyio.CancelScope(shield=True):
                await stream.aclose()

    async def _answer(
        self,
        stream: anyio.abc.SocketStream,
        request: _Request,
        address: str,
        port: int,
        remote: Any,
    ) -> None:
        fleet = self.fleet
        segments = request.path.split("/", 3)
        site = (
            fleet.sites.get(segments[2]) if len(segments) > 3 and segments[1] == "payers" else None
        )
        hostile = site.config.behaviour.hostile if site is not None else None
        scope = request_scope(segments[3]) if len(segments) > 3 else None
        applies = (
            site is not None
            and hostile is not None
            and scope is not None
            and site.host == address
            and hostile.params.scope in ("all", scope)
        )
        if not applies or site is None or hostile is None:
            answer = await self._asgi(request, address, port, remote)
            await _send_answer(stream, answer)
            return
        started = fleet.stats.started(address, site.slug)
        status: int | None = None
        try:
            status = await self._hostile(stream, request, site, hostile, address, port, remote)
        finally:
            fleet.stats.finished(
                _stats_scope(request), address, port, site.slug, status, started, False
            )

    async def _hostile(
        self,
        stream: anyio.abc.SocketStream,
        request: _Request,
        site: PayerSite,
        hostile: HostileSpec,
        address: str,
        port: int,
        remote: Any,
    ) -> int | None:
        """Misbehave as the archetype says; returns the status sent (None if none was)."""
        name, params = hostile.name, hostile.params
        kind = _document_kind(request.path)
        if name == "never_answers":
            await _hold(stream)
            return None
        if name == "redirect_loop":
            assert isinstance(params, RedirectLoopParams)
            pairs = parse_qsl(request.query, keep_blank_values=True)
            hop = next((int(v) for k, v in pairs if k == "loop" and v.isdigit()), 0)
            pairs = [(k, v) for k, v in pairs if k != "loop"] + [("loop", str(hop + 1))]
            location = f"{request.path}?{urlencode(pairs)}"
            await _send_answer(stream, _redirect(params.status, location))
            return params.status
        if name == "redirect_cross_origin":
            assert isinstance(params, RedirectCrossOriginParams)
            location = f"{site.origin(site.alt_host)}{request.target}"
            await _send_answer(stream, _redirect(params.status, location))
            return params.status
        if name == "endless_body":
            await _send_head(stream, 200, _json_headers(chunked=True))
            await _send_chunked(stream, _endless(kind))
            return 200
        if name == "huge_body":
            assert isinstance(params, HugeBodyParams)
            size = params.mb * 1024 * 1024
            headers = _json_headers(chunked=params.chunked, length=None if params.chunked else size)
            await _send_head(stream, 200, headers)
            padded = _padded(kind, size)
            if params.chunked:
                await _send_chunked(stream, padded)
            else:
                async for chunk in padded:
                    await stream.send(chunk)
            return 200
        if name == "gzip_bomb":
            assert isinstance(params, GzipBombParams)
            headers = [*_json_headers(chunked=True), ("Content-Encoding", "gzip")]
            await _send_head(stream, 200, headers)
            await _send_chunked(stream, _gzip_bomb(kind, params.decompressed_mb))
            return 200
        if name == "deep_json":
            assert isinstance(params, DeepJsonParams)
            body = _deep(kind, params.depth)
            await _send_answer(stream, _Answer(200, _json_headers(length=len(body)), body))
            return 200
        # The rest start from the real answer.
        real = await self._asgi(request, address, port, remote)
        if name == "trickle":
            assert isinstance(params, TrickleParams)
            await _send_head(stream, real.status, _replace_length(real.headers, len(real.body)))
            pause = 1.0 / params.bytes_per_s
            step = max(1, int(params.bytes_per_s * 0.1)) if params.bytes_per_s > 10 else 1
            for i in range(0, len(real.body), step):
                await stream.send(real.body[i : i + step])
                await anyio.sleep(pause * step)
            return real.status
        if name == "invalid_utf8":
            body = _with_invalid_utf8(real.body)
            await _send_answer(stream, _Answer(real.status, real.headers, body))
            return real.status
        if name == "next_link_elsewhere":
            assert isinstance(params, NextLinkElsewhereParams)
            body = _redirect_next_links(real, site, params.to)
            await _send_answer(stream, _Answer(real.status, real.headers, body))
            return real.status
        if name == "lying_length":
            assert isinstance(params, LyingLengthParams)
            if params.declared == "longer":
                declared = len(real.body) + params.by
                headers = [*_replace_length(real.headers, declared), ("Connection", "close")]
                await _send_head(stream, real.status, headers, close=False)
                await stream.send(real.body)
                return real.status
            declared = max(0, len(real.body) // 2)
            await _send_head(
                stream, real.status, _replace_length(real.headers, declared), close=False
            )
            await stream.send(real.body)
            await _hold(stream)  # keep the connection (and its extra bytes) open
            return real.status
        raise AssertionError(f"unknown hostile archetype {name}")  # pragma: no cover

    async def _asgi(self, request: _Request, address: str, port: int, remote: Any) -> _Answer:
        """The fleet app's ordinary answer to this request (it logs the request itself)."""
        scope: dict[str, Any] = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": "1.1",
            "method": request.method,
            "scheme": "http",
            "path": unquote(request.path),
            "raw_path": request.path.encode("latin-1"),
            "query_string": request.query.encode("latin-1"),
            "root_path": "",
            "headers": [
                (k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in request.headers
            ],
            "server": (address, port),
            "client": (str(remote[0]), int(remote[1])) if isinstance(remote, tuple) else None,
        }
        sent = False
        status = 500
        headers: list[tuple[str, str]] = []
        chunks: list[bytes] = []

        async def receive() -> dict[str, Any]:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": request.body, "more_body": False}
            await anyio.sleep_forever()
            raise AssertionError  # pragma: no cover

        async def send(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                headers.extend(
                    (k.decode("latin-1"), v.decode("latin-1"))
                    for k, v in message.get("headers", [])
                )
            elif message["type"] == "http.response.body":
                chunks.append(bytes(message.get("body", b"")))

        try:
            await self.fleet.app(scope, receive, send)  # type: ignore[arg-type]
        except ConnectionResetError:
            return _Answer(502, [("Content-Type", "text/plain")], b"reset")
        return _Answer(status, headers, b"".join(chunks))


# -- HTTP plumbing ------------------------------------------------------------------------------


async def _read_request(stream: anyio.abc.SocketStream) -> _Request | None:
    buffer = b""
    while b"\r\n\r\n" not in buffer:
        if len(buffer) > MAX_HEAD_BYTES:
            return None
        try:
            buffer += await stream.receive()
        except anyio.EndOfStream:
            return None
    head, _, rest = buffer.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3:
        return None
    method, target, _ = parts
    headers: list[tuple[str, str]] = []
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            headers.append((name.strip(), value.strip()))
    length = next((v for k, v in headers if k.lower() == "content-length"), "0")
    want = min(int(length) if length.isdigit() else 0, MAX_REQUEST_BODY)
    body = rest
    while len(body) < want:
        try:
            body += await stream.receive()
        except anyio.EndOfStream:
            break
    return _Request(method, target, headers, body[:want])


def _stats_scope(request: _Request) -> dict[str, Any]:
    return {
        "method": request.method,
        "path": unquote(request.path),
        "query_string": request.query.encode("latin-1"),
        "headers": [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in request.headers],
    }


def _reason(status: int) -> str:
    with contextlib.suppress(ValueError):
        return HTTPStatus(status).phrase
    return "Unknown"


async def _send_head(
    stream: anyio.abc.SocketStream,
    status: int,
    headers: list[tuple[str, str]],
    *,
    close: bool = True,
) -> None:
    lines = [f"HTTP/1.1 {status} {_reason(status)}"]
    skip = {"connection", "keep-alive"} if close else set()
    lines += [f"{k}: {v}" for k, v in headers if k.lower() not in skip]
    if close:
        lines.append("Connection: close")
    await stream.send(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))


async def _send_answer(stream: anyio.abc.SocketStream, answer: _Answer) -> None:
    await _send_head(stream, answer.status, _replace_length(answer.headers, len(answer.body)))
    if answer.body:
        await stream.send(answer.body)


async def _send_chunked(stream: anyio.abc.SocketStream, chunks: AsyncIterator[bytes]) -> None:
    async for chunk in chunks:
        if chunk:
            await stream.send(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
    await stream.send(b"0\r\n\r\n")


async def _hold(stream: anyio.abc.SocketStream) -> None:
    """Keep the connection open, reading and discarding, until the client closes it."""
    while True:
        try:
            await stream.receive()
        except (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError):
            return


def _replace_length(headers: list[tuple[str, str]], length: int) -> list[tuple[str, str]]:
    drop = {"content-length", "transfer-encoding", "connection"}
    return [(k, v) for k, v in headers if k.lower() not in drop] + [("Content-Length", str(length))]


def _json_headers(*, chunked: bool = False, length: int | None = None) -> list[tuple[str, str]]:
    headers = [("Content-Type", "application/fhir+json; charset=utf-8")]
    if chunked:
        headers.append(("Transfer-Encoding", "chunked"))
    elif length is not None:
        headers.append(("Content-Length", str(length)))
    return headers


def _redirect(status: int, location: str) -> _Answer:
    body = f"<html><body>Moved to <a href='{location}'>here</a></body></html>".encode()
    return _Answer(status, [("Location", location), ("Content-Type", "text/html")], body)


def _document_kind(path: str) -> str:
    if path.endswith("/metadata"):
        return "CapabilityStatement"
    if path.endswith("/.well-known/smart-configuration"):
        return "smart"
    if "/oauth/" in path:
        return "token"
    return "Bundle"


def _prefix(kind: str) -> bytes:
    if kind == "smart":
        return b'{"issuer":"'
    if kind == "token":
        return b'{"token_type":"Bearer","access_token":"'
    return b'{"resourceType":"' + kind.encode() + b'","text":"'


async def _endless(kind: str) -> AsyncIterator[bytes]:
    yield _prefix(kind)
    block = b"a" * 65536
    while True:
        yield block


async def _padded(kind: str, size: int) -> AsyncIterator[bytes]:
    head, tail = _prefix(kind), b'"}'
    remaining = size - len(head) - len(tail)
    yield head
    block = b"a" * 65536
    while remaining > 0:
        piece = block[: min(remaining, len(block))]
        remaining -= len(piece)
        yield piece
    yield tail


async def _gzip_bomb(kind: str, megabytes: int) -> AsyncIterator[bytes]:
    squeeze = zlib.compressobj(9, zlib.DEFLATED, 31)  # 31: a gzip wrapper
    yield squeeze.compress(_prefix(kind))
    block = b" " * (1024 * 1024)
    for _ in range(megabytes):
        out = squeeze.compress(block)
        if out:
            yield out
        await anyio.lowlevel.checkpoint()
    yield squeeze.compress(b'"}') + squeeze.flush()


def _deep(kind: str, depth: int) -> bytes:
    nested = b"[" * depth + b"]" * depth
    if kind == "smart":
        return b'{"issuer":"x","capabilities":' + nested + b"}"
    if kind == "token":
        return b'{"token_type":"Bearer","access_token":' + nested + b"}"
    return b'{"resourceType":"' + kind.encode() + b'","extension":' + nested + b"}"


def _with_invalid_utf8(body: bytes) -> bytes:
    stripped = body.rstrip()
    if stripped.endswith(b"}"):
        return stripped[:-1] + b',"note":"caf\xe9 \xff\xfe"}'
    return body + b"\xff\xfe"


def _redirect_next_links(real: _Answer, site: PayerSite, to: str) -> bytes:
    try:
        data = json.loads(real.body)
    except ValueError:
        return real.body
    if not isinstance(data, dict):
        return real.body
    for link in data.get("link") or []:
        if isinstance(link, dict) and link.get("relation") == "next" and link.get("url"):
            parts = urlsplit(str(link["url"]))
            if to == "link_local":
                link["url"] = f"{LINK_LOCAL_TARGET}?{parts.query}"
            elif to == "private":
                link["url"] = f"http://10.0.0.1{parts.path}?{parts.query}"
            else:
                link["url"] = f"{site.origin(site.alt_host)}{parts.path}?{parts.query}"
    return json.dumps(data, separators=(",", ":")).encode()
