"""Drift options: when a slower sync is drift, and the nightly detection settings."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import httpx

#: Seconds a drift webhook may take.
DEFAULT_TIMEOUT_S = 10.0


@dataclass(frozen=True, slots=True)
class DriftThresholds:
    """When a slower sync is drift: its median grew by more than both (default +50% and +2 s)."""

    slower_percent: float = 50.0
    slower_seconds: float = 2.0

    def __post_init__(self) -> None:
        if self.slower_percent < 0 or self.slower_seconds < 0:
            raise ValueError("sync slowdown thresholds must not be negative")


@dataclass(frozen=True, slots=True)
class DriftSettings:
    """Nightly drift options: detection on or off, key observation, thresholds, a webhook.

    `observe_keys` fetches each endpoint's jwks_uri during the crawl (the `smart.jwks` check),
    so rotated keys show up as drift; ``probe run`` turns it on. It is off by default for
    library callers, whose crawls then make exactly the two discovery requests per endpoint.
    """

    enabled: bool = True
    observe_keys: bool = False
    thresholds: DriftThresholds = field(default_factory=DriftThresholds)
    webhook_url: str | None = None
    webhook_timeout: float = DEFAULT_TIMEOUT_S
    webhook_transport: httpx.AsyncBaseTransport | None = None
