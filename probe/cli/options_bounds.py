"""Command-line options for probe's bounds, shared by `probe check`, `probe sync` and `probe run`.

Every bound has a safe default (docs/hostile.md lists them with the finding each produces).
"""

from __future__ import annotations

from typing import Annotated

import typer

from probe.http.breaker import DEFAULT_THRESHOLD, CircuitBreaker
from probe.http.limits import Limits

_DEFAULTS = Limits()

MaxBodyMb = Annotated[
    float,
    typer.Option(
        "--max-body-mb",
        min=0.001,
        help="cap on one response body in MiB, after decompression (finding: body_too_large)",
    ),
]
MaxRedirects = Annotated[
    int,
    typer.Option(
        "--max-redirects", min=0, help="redirects followed per request (too_many_redirects)"
    ),
]
MaxRetries = Annotated[
    int, typer.Option("--max-retries", min=0, help="retries on 408/429/5xx and timeouts")
]
MaxJsonDepth = Annotated[
    int,
    typer.Option("--max-json-depth", min=1, help="nesting allowed in discovery JSON (too_deep)"),
]
BreakerThreshold = Annotated[
    int,
    typer.Option(
        "--breaker-threshold",
        min=0,
        help="consecutive connection failures or 5xx before a host's circuit opens "
        "(circuit_open); 0 disables the breaker",
    ),
]
CrossOriginRedirects = Annotated[
    bool,
    typer.Option(
        "--cross-origin-redirects/--same-origin-redirects",
        help="let discovery follow (without credentials) a base URL that redirects to another "
        "origin (default: report the redirect, do not follow it); credentialed requests never "
        "follow one",
    ),
]

DEFAULT_MAX_BODY_MB = _DEFAULTS.max_body_bytes / (1024 * 1024)
DEFAULT_MAX_REDIRECTS = _DEFAULTS.max_redirects
DEFAULT_MAX_RETRIES = _DEFAULTS.max_retries
DEFAULT_MAX_JSON_DEPTH = _DEFAULTS.max_json_depth
DEFAULT_BREAKER_THRESHOLD = DEFAULT_THRESHOLD


def fetch_limits(
    timeout: float,
    *,
    total: float | None = None,
    max_body_mb: float = DEFAULT_MAX_BODY_MB,
    max_redirects: int = DEFAULT_MAX_REDIRECTS,
    max_retries: int = DEFAULT_MAX_RETRIES,
    max_json_depth: int = DEFAULT_MAX_JSON_DEPTH,
    cross_origin_redirects: bool = False,
) -> Limits:
    """Per-request limits from the options: `timeout` is the read timeout, `total` the deadline."""
    from probe.http.limits import Limits

    return Limits(
        connect_timeout=min(timeout, _DEFAULTS.connect_timeout),
        read_timeout=timeout,
        total_timeout=total if total is not None else timeout,
        max_body_bytes=max(1, int(max_body_mb * 1024 * 1024)),
        max_redirects=max_redirects,
        max_retries=max_retries,
        max_json_depth=max_json_depth,
        cross_origin_redirects=cross_origin_redirects,
    )


def breaker_for(threshold: int) -> CircuitBreaker | None:
    """A circuit breaker with this threshold, or None when 0 disables it."""
    return CircuitBreaker(threshold) if threshold > 0 else None
