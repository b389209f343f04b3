"""The bounds applied to every request (timeouts, body cap, redirects, retries, JSON depth)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Limits:
    """Bounds applied to every request; all have safe defaults for a nightly crawl."""

    connect_timeout: float = 10.0
    read_timeout: float = 20.0
    total_timeout: float = 30.0
    max_body_bytes: int = 20 * 1024 * 1024
    max_redirects: int = 5
    max_retries: int = 2
    backoff_base: float = 0.5
    backoff_max: float = 30.0
    max_retry_after: float = 60.0
    max_json_depth: int = 200
    cross_origin_redirects: bool = False
