"""The discovery documents a sync reads, and a discovery still in flight."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import anyio


@dataclass(frozen=True, slots=True)
class ServerDocuments:
    """The discovery documents a sync reads: the CapabilityStatement and SMART configuration."""

    base_url: str
    capability: dict[str, Any] | None
    smart_configuration: dict[str, Any] | None


class PendingDocuments:
    """The server documents of a discovery still in flight: :meth:`get` waits for them."""

    def __init__(self) -> None:
        self._arrived = anyio.Event()
        self._documents: ServerDocuments | None = None

    def set(self, documents: ServerDocuments) -> None:
        """The documents have arrived: wake every waiter."""
        self._documents = documents
        self._arrived.set()

    async def get(self) -> ServerDocuments:
        """The documents, once they have arrived."""
        await self._arrived.wait()
        assert self._documents is not None
        return self._documents
