"""An httpx transport into a fleet's app, for tests that do not want real sockets.

It behaves like the loopback network would: requests to an address or port the fleet does not
serve fail with ``httpx.ConnectError`` (connection refused), and the `flaky` archetype's resets
surface as ``httpx.ReadError`` instead of the app's exception.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import httpx

if TYPE_CHECKING:
    from probe.fleet.app import Fleet


class FleetTransport(httpx.AsyncBaseTransport):
    """Route httpx requests into ``fleet.app`` in-process."""

    def __init__(self, fleet: Fleet) -> None:
        self.fleet = fleet
        self._inner = httpx.ASGITransport(app=fleet.app, client=("127.0.0.1", 40000))

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Refuse unserved origins; map the app's resets to ``httpx.ReadError``."""
        from probe.fleet.app import FleetReset

        url = request.url
        port = url.port or (443 if url.scheme == "https" else 80)
        if url.host not in self.fleet.addresses or port != self.fleet.port:
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
