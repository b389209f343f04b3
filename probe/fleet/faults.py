"""Transport-level misbehaviour decided before a payer's request is handled: latency, 429s,
5xx errors and connection resets. Every decision is seeded: latency and rate limits follow the
payer's request counter (a `rate_limited` payer with a `limit` follows the clock instead: a
sliding window of the requests it answered); flaky outcomes follow the (URL, attempt) so a
retry of the same URL can succeed regardless of what other requests interleave.
"""

from __future__ import annotations

import math
import random
import time
from collections import Counter, deque
from dataclasses import dataclass
from email.utils import formatdate
from typing import Literal

from probe.fleet.archetypes import Behaviour
from probe.fleet.config import derive_int, derive_unit


@dataclass(frozen=True, slots=True)
class Fault:
    """What to do with a request before (or instead of) handling it."""

    delay_s: float = 0.0
    action: Literal["none", "reset", "error", "throttle"] = "none"
    status: int = 200
    headers: tuple[tuple[str, str], ...] = ()


NO_FAULT = Fault()


class FaultPlanner:
    """Decides each request's fault from the payer's behaviour and seeded counters."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self._requests: Counter[str] = Counter()
        self._attempts: Counter[tuple[str, str]] = Counter()
        self._windows: dict[str, deque[float]] = {}

    def plan(self, slug: str, behaviour: Behaviour, target: str) -> Fault:
        """The fault for the next request of payer `slug` to `target` (method, path and query)."""
        if behaviour.slow is None and behaviour.flaky is None and behaviour.rate_limited is None:
            return NO_FAULT
        self._requests[slug] += 1
        n = self._requests[slug]
        delay = 0.0
        if behaviour.slow is not None:
            slow = behaviour.slow
            z = random.Random(derive_int(self.seed, slug, "slow", n)).gauss(0.0, 1.0)
            delay = min(slow.median_ms * math.exp(slow.sigma * z), slow.max_ms) / 1000
        limited = behaviour.rate_limited
        if limited is not None and limited.limit is not None:
            wait = self._window_wait(limited.bucket or slug, limited.limit, limited.window_s)
            if wait is not None:
                told = max(1, math.ceil(wait))
                return Fault(delay, "throttle", 429, _throttle_headers(limited.style, told))
        elif limited is not None and n % limited.every == 0:
            return Fault(
                delay, "throttle", 429, _throttle_headers(limited.style, limited.retry_after)
            )
        flaky = behaviour.flaky
        if flaky is not None:
            self._attempts[(slug, target)] += 1
            attempt = self._attempts[(slug, target)]
            roll = derive_unit(self.seed, slug, "flaky", target, attempt)
            if roll < flaky.reset_rate:
                return Fault(delay, "reset")
            if roll < flaky.reset_rate + flaky.error_rate:
                return Fault(delay, "error", flaky.error_status)
        return Fault(delay) if delay else NO_FAULT

    def _window_wait(self, key: str, limit: int, window_s: float) -> float | None:
        """None when a request fits in `key`'s sliding window (it is counted); else the
        seconds until the window has room again (the request is refused, not counted)."""
        now = time.monotonic()
        answered = self._windows.setdefault(key, deque())
        while answered and answered[0] <= now - window_s:
            answered.popleft()
        if len(answered) < limit:
            answered.append(now)
            return None
        return answered[0] + window_s - now


def _throttle_headers(style: str, seconds: int) -> tuple[tuple[str, str], ...]:
    if style == "seconds":
        return (("Retry-After", str(seconds)),)
    if style == "http_date":
        return (("Retry-After", formatdate(time.time() + seconds, usegmt=True)),)
    if style == "none":
        return ()
    return (("RateLimit", f"limit=100, remaining=0, reset={seconds}"),)
