"""Per-host politeness and a total concurrency cap, applied around every request.

A host gets at most `per_host` requests in flight and request starts at least `1/rate`
seconds apart; the whole process has at most `total` requests in flight. A request waiting for
its host's interval does not hold one of the `total` slots: those go to requests ready to send.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import anyio


@dataclass(slots=True)
class _Host:
    slots: anyio.Semaphore
    lock: anyio.Lock = field(default_factory=anyio.Lock)
    next_start: float = 0.0
    in_flight: int = 0
    max_in_flight: int = 0
    requests: int = 0


class Politeness:
    """A HostGate: per-host concurrency and rate limits plus a global concurrency cap."""

    def __init__(self, *, per_host: int = 2, rate: float = 5.0, total: int = 32) -> None:
        if per_host < 1 or total < 1 or rate <= 0:
            raise ValueError("per_host and total must be >= 1 and rate > 0")
        self.per_host = per_host
        self.interval = 1.0 / rate
        self._total = anyio.CapacityLimiter(total)
        self._hosts: dict[str, _Host] = {}

    def _host(self, host: str) -> _Host:
        state = self._hosts.get(host)
        if state is None:
            state = self._hosts[host] = _Host(anyio.Semaphore(self.per_host))
        return state

    @asynccontextmanager
    async def slot(self, host: str) -> AsyncIterator[None]:
        """Hold one request slot for `host`, waiting for concurrency and the minimum interval."""
        state = self._host(host)
        async with state.slots:
            async with state.lock:
                now = anyio.current_time()
                start = max(now, state.next_start)
                state.next_start = start + self.interval
            if start > now:
                await anyio.sleep(start - now)
            async with self._total:
                state.in_flight += 1
                state.requests += 1
                state.max_in_flight = max(state.max_in_flight, state.in_flight)
                try:
                    yield
                finally:
                    state.in_flight -= 1

    def stats(self) -> dict[str, dict[str, int]]:
        """Per host: requests made and the most ever in flight at once."""
        return {
            host: {"requests": s.requests, "max_in_flight": s.max_in_flight}
            for host, s in sorted(self._hosts.items())
        }
