"""How hard and how widely a crawl probes: concurrency, politeness, bounds, syncs, drift."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from probe.drift.settings import DriftSettings
from probe.http.breaker import DEFAULT_THRESHOLD as DEFAULT_BREAKER_THRESHOLD
from probe.http.limits import Limits
from probe.sync.limits import SyncLimits

#: Endpoints probed at once (`--concurrency`). Probing is latency-bound: an endpoint's discovery
#: is about three round trips (the three documents at once, then the JWKS, then the portal), so
#: at a payer's 150 ms latency 64 endpoints in flight finish about 140 a second: what the
#: politeness of 70 hosts allows (70 x 10 requests/s over ~5 requests an endpoint); at 1 s
#: latency still about 20 a second.
DEFAULT_CONCURRENCY = 64
#: The most endpoints in flight the directory-sized default goes to (`sized_concurrency`).
MAX_SIZED_CONCURRENCY = 1024
#: Requests in flight in the whole process (`--total-requests`). Politeness allows at most
#: min(H x per_host / L, H x rate) requests a second over H hosts at latency L; the process-wide
#: cap must not bind first, so it is sized for H x per_host in flight: 256 keeps 128 hosts at
#: the default 2 each busy (politeness alone then allows 640 requests/s at 150 ms). It bounds
#: sockets and memory, not politeness.
DEFAULT_TOTAL_REQUESTS = 256
#: Per host (`--per-host`, `--rate`): what one payer's server sees, whatever the totals. Both
#: are ceilings: the pace adapts below them to what each host says (429/503, Retry-After,
#: RateLimit headers; probe/http/politeness.py). 10 starts/s with 2 in flight is 6 % of the
#: 500 requests per 3 s the State of the Payer report's throttling payer moved to; a payer still
#: at its old 10 per 3 s answers 429 and is paced at half, then a quarter (docs/crawl.md).
DEFAULT_PER_HOST = 2
DEFAULT_RATE = 10.0


def sized_concurrency(floor: int, hosts: int, per_host: int) -> int:
    """Endpoints in flight that give each of `hosts` its `per_host` lanes (a worker probes a
    host through that many), at least `floor` and at most :data:`MAX_SIZED_CONCURRENCY`."""
    return max(floor, min(hosts * per_host, MAX_SIZED_CONCURRENCY))


@dataclass(frozen=True, slots=True)
class CrawlOptions:
    """How hard and how widely to crawl (see docs/crawl.md for how the defaults are sized)."""

    concurrency: int = DEFAULT_CONCURRENCY
    #: Raise `concurrency` to give every host of the run its `per_host` lanes (`--concurrency`
    #: not given): a directory of many hosts is not probed 32 hosts at a time.
    size_to_hosts: bool = False
    per_host: int = DEFAULT_PER_HOST
    rate: float = DEFAULT_RATE
    total_requests: int = DEFAULT_TOTAL_REQUESTS
    limits: Limits = field(default_factory=Limits)
    sync_limits: SyncLimits = field(default_factory=SyncLimits)
    sync: bool = True
    portal: bool = True
    token_store: Path | None = None
    verify: bool | str = True
    drift: DriftSettings = field(default_factory=DriftSettings)
    endpoint_deadline: float = 900.0
    breaker_threshold: int = DEFAULT_BREAKER_THRESHOLD
    store_down_limit: float = 300.0
    browsers: int = 2  # browser authorizations at once across the crawl
    directory_dir: Path | None = None  # where relative login recipe paths start
    lease: float = 60.0  # seconds a worker's claim on a host lasts without renewal
    #: Outcomes held for the end-of-run table, the most notable first (all are stored).
    keep_outcomes: int = 250

    def to_config(self) -> dict[str, Any]:
        """The options as stored with the run (no secrets here)."""
        return {
            "concurrency": self.concurrency,
            "concurrency_sized_to_hosts": self.size_to_hosts,
            "per_host": self.per_host,
            "rate": self.rate,
            "total_requests": self.total_requests,
            "sync": self.sync,
            "portal": self.portal,
            "browsers": self.browsers,
            "timeouts": {
                "connect": self.limits.connect_timeout,
                "read": self.limits.read_timeout,
                "total": self.limits.total_timeout,
            },
            "bounds": {
                "endpoint_deadline": self.endpoint_deadline,
                "max_body_bytes": self.limits.max_body_bytes,
                "max_redirects": self.limits.max_redirects,
                "max_pages": self.sync_limits.max_pages,
                "max_references": self.sync_limits.max_references,
                "breaker_threshold": self.breaker_threshold,
                "store_down_limit": self.store_down_limit,
            },
        }
