"""How hard and how widely a crawl probes: concurrency, politeness, bounds, syncs, drift."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from probe.drift.settings import DriftSettings
from probe.http.breaker import DEFAULT_THRESHOLD as DEFAULT_BREAKER_THRESHOLD
from probe.http.limits import Limits
from probe.sync.limits import SyncLimits


@dataclass(frozen=True, slots=True)
class CrawlOptions:
    """How hard and how widely to crawl."""

    concurrency: int = 8
    per_host: int = 2
    rate: float = 5.0
    total_requests: int = 32
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

    def to_config(self) -> dict[str, Any]:
        """The options as stored with the run (no secrets here)."""
        return {
            "concurrency": self.concurrency,
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
