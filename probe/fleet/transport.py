"""An httpx transport into a fleet's app, for tests that do not want real sockets.

It behaves like the loopback network would: requests to an address or port the fleet does not
serve fail with ``httpx.ConnectError`` (connection refused), and the `flaky` archetype's resets
(:class:`probe.fleet.errors.FleetReset`) surface as ``httpx.ReadError`` instead of the app's
exception. It takes the app, its addresses and its port rather than the fleet itself
(``Fleet.transport()`` passes them).
"""

from __future__ import annotations

from collections.abc import Collection

import httpx
from starlette.types import ASGIApp

from probe.fleet.errors import FleetReset


class FleetTransport(httpx.AsyncBaseTransport):
    """Route httpx requests into a fleet's ASGI `app` in-process, as if served on `addresses`."""

    def __init__(self, app: ASGIApp, addresses: Collection[str], port: int) -> None:
        self.addresses = addresses
        self.port = port
        self._inner = httpx.ASGITransport(app=app, client=("127.0.0.1", 40000))

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Refuse unserved origins; map the app's resets to ``httpx.ReadError``."""
        url = request.url
        port = url.port or (443 if url.scheme == "https" else 80)
        if url.host not in self.addresses or port != self.port:
            raise httpx.ConnectError(
                f"[Errno 111] Connection refused: {url.host}:{port}", request=request
            )
        try:
            return await self._inner.handle_async_request(request)
        except FleetReset as exc:
            raise httpx.ReadError(
                f"[Errno 104] Connection reset by peer ({exc})", request=request
            ) from None

    async def aclose(self) -> None:
        """Nothing to release."""
        await self._inner.aclose()
