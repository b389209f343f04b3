"""The loopback redirect listener (RFC 8252 §7.3): one callback on 127.0.0.1, checked state.

It binds 127.0.0.1 only (never 0.0.0.0 or ::), takes the first ``GET /callback``, answers the
browser with a small page that echoes nothing, and tolerates browsers that drop the connection.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, urlsplit

import anyio
from anyio.abc import SocketAttribute, SocketStream

LOOPBACK = "127.0.0.1"
CALLBACK_PATH = "/callback"
MAX_REQUEST_BYTES = 16_384
READ_TIMEOUT_S = 10.0

_PAGE = (
    "<!DOCTYPE html><html><head><meta charset='utf-8'><title>{title}</title></head>"
    "<body><h1>{title}</h1><p>{text}</p></body></html>"
)


@dataclass(frozen=True, slots=True)
class Callback:
    """The callback's query parameters (a code is secret: kept out of reprs) and the verdict."""

    params: dict[str, str] = field(repr=False)
    state_ok: bool

    @property
    def code(self) -> str | None:
        """The authorization code, when the server granted one."""
        return self.params.get("code") or None

    @property
    def error(self) -> str | None:
        """The OAuth error code (RFC 6749 §4.1.2.1), when the server refused."""
        return self.params.get("error") or None

    @property
    def error_description(self) -> str | None:
        """The server's human-readable error description, if any."""
        return self.params.get("error_description") or None


def parse_callback(target: str, expected_state: str) -> Callback:
    """The callback in a request target (``/callback?...``); state compared in constant time."""
    params = dict(parse_qsl(urlsplit(target).query, keep_blank_values=True))
    received = params.get("state")
    ok = received is not None and hmac.compare_digest(received.encode(), expected_state.encode())
    return Callback(params, ok)


def _response(status: str, title: str, text: str) -> bytes:
    body = _PAGE.format(title=title, text=text).encode("utf-8")
    head = (
        f"HTTP/1.1 {status}\r\nContent-Type: text/html; charset=utf-8\r\n"
        f"Content-Length: {len(body)}\r\nCache-Control: no-store\r\n"
        "Referrer-Policy: no-referrer\r\nConnection: close\r\n\r\n"
    )
    return head.encode("ascii") + body


class CallbackListener:
    """Receives the one authorization callback on 127.0.0.1:`port`."""

    def __init__(self, expected_state: str) -> None:
        self._state = expected_state
        self._received = anyio.Event()
        self.callback: Callback | None = None
        self.received_at: float | None = None  # time.monotonic() when the callback came
        self.port = 0

    async def wait(self, seconds: float) -> Callback | None:
        """The callback, or None when none arrived within `seconds`."""
        with anyio.move_on_after(max(seconds, 0.0)):
            await self._received.wait()
        return self.callback

    async def handle(self, stream: SocketStream) -> None:
        """Serve one connection: read a request, record a callback, answer with a page."""
        async with stream:
            data = b""
            try:
                with anyio.fail_after(READ_TIMEOUT_S):
                    while b"\r\n\r\n" not in data and len(data) < MAX_REQUEST_BYTES:
                        data += await stream.receive(4096)
            except (anyio.EndOfStream, anyio.BrokenResourceError, TimeoutError, OSError):
                if b"\r\n" not in data:
                    return
            answer = self._answer(data.split(b"\r\n", 1)[0].decode("latin-1"))
            try:
                await stream.send(answer)
            except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
                return  # the browser went away; the callback (if any) is already recorded

    def _answer(self, request_line: str) -> bytes:
        parts = request_line.split(" ")
        if len(parts) != 3 or parts[0] != "GET":
            return _response("405 Method Not Allowed", "Not allowed", "Only GET is served.")
        if urlsplit(parts[1]).path != CALLBACK_PATH:
            return _response("404 Not Found", "Not found", "This is probe's callback listener.")
        if self.callback is not None:
            return _response("409 Conflict", "Already received", "You can close this window.")
        callback = parse_callback(parts[1], self._state)
        self.callback = callback
        self.received_at = time.monotonic()
        self._received.set()
        if not callback.state_ok:
            return _response("400 Bad Request", "State mismatch", "probe refused this callback.")
        if callback.error is not None:
            return _response("200 OK", "Authorization refused", "You can close this window.")
        return _response("200 OK", "Authorization received", "You can close this window.")


@asynccontextmanager
async def listen_for_callback(port: int, expected_state: str) -> AsyncIterator[CallbackListener]:
    """Listen on 127.0.0.1:`port` (0 picks a free port) until the block ends."""
    listener = await anyio.create_tcp_listener(local_host=LOOPBACK, local_port=port)
    receiver = CallbackListener(expected_state)
    receiver.port = int(listener.extra(SocketAttribute.local_port))  # noqa: S610
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(listener.serve, receiver.handle)
            try:
                yield receiver
            finally:
                tg.cancel_scope.cancel()
    finally:
        await listener.aclose()
