"""Posting drift events to a webhook: one JSON array per run, bounded, never fatal.

The body is the JSON array of :meth:`DriftEvent.to_json` objects (public document values and
observed facts, scrubbed of URL secrets when they were stored; no credentials exist in them).
A failure (refused connection, timeout, non-2xx answer) is logged and returned, never raised:
a webhook that is down must not fail the nightly crawl. The webhook URL itself may carry a
secret (many chat webhooks do), so logs and messages name only its origin.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx

from probe import __version__
from probe.drift.events import DriftEvent
from probe.drift.settings import DEFAULT_TIMEOUT_S
from probe.models import finite_json

log = logging.getLogger(__name__)

MAX_EVENTS_PER_POST = 1000


@dataclass(frozen=True, slots=True)
class NotifyResult:
    """What happened to one notification: delivered or not, and why not."""

    target: str
    events: int
    delivered: bool
    status: int | None = None
    error: str | None = None

    def summary(self) -> str:
        """One line for people (the webhook named by its origin only)."""
        if self.delivered:
            return f"webhook {self.target}: {self.events} drift event(s) delivered"
        return f"webhook {self.target}: not delivered ({self.error})"


def webhook_target(url: str) -> str:
    """The webhook's origin, for logs (its path and query may hold a secret)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "(invalid URL)"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "(invalid URL)"
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{parts.hostname}{port}/…"


def validate_webhook_url(url: str) -> str:
    """`url` when it is an absolute http(s) URL; ValueError with a usage message otherwise."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"--notify-webhook must be an absolute http(s) URL, not {url!r}")
    try:
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        raise ValueError(f"--notify-webhook has an invalid port: {url!r}") from None
    return url.strip()


def payload(events: Sequence[DriftEvent]) -> list[dict[str, Any]]:
    """The JSON array posted for `events` (at most MAX_EVENTS_PER_POST, most severe first)."""
    ordered = sorted(events, key=lambda e: (e.kind.rank, e.payer, e.change_id))
    return [e.to_json() for e in ordered[:MAX_EVENTS_PER_POST]]


async def notify_webhook(
    url: str,
    events: Sequence[DriftEvent],
    *,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    transport: httpx.AsyncBaseTransport | None = None,
) -> NotifyResult:
    """POST `events` as a JSON array to `url`; failures are logged and returned, never raised."""
    target = webhook_target(url)
    body = json.dumps(
        finite_json(payload(events)), separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode()
    headers = {
        "Content-Type": "application/json",
        "User-Agent": f"probe/{__version__} drift-notify",
    }
    try:
        async with httpx.AsyncClient(
            timeout=httpx.Timeout(timeout_s), follow_redirects=False, transport=transport
        ) as client:
            response = await client.post(url, content=body, headers=headers)
    except (httpx.HTTPError, OSError, ValueError) as exc:
        error = f"{type(exc).__name__}: {_first_line(exc, url, target) or 'no detail'}"
        log.warning("drift webhook %s failed: %s", target, error)
        return NotifyResult(target, len(events), False, None, error)
    if not 200 <= response.status_code < 300:
        error = f"HTTP {response.status_code}"
        log.warning("drift webhook %s answered %s", target, error)
        return NotifyResult(target, len(events), False, response.status_code, error)
    log.info("drift webhook %s: %d event(s) delivered", target, len(events))
    return NotifyResult(target, len(events), True, response.status_code)


def _first_line(exc: BaseException, url: str, target: str) -> str:
    text = str(exc).strip()
    line = text.splitlines()[0] if text else ""
    # Error messages may quote the URL: show only its origin.
    return line.replace(url, target)[:300]
