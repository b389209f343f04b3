"""What the nightly crawl does after a completed run: detect drift, then notify a webhook.

Neither step may fail the crawl: a detection error is logged and reported in the outcome; a
webhook failure is logged and reported (see :mod:`probe.drift.notify`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import anyio

from probe.drift.events import DriftDetection, detect_drift
from probe.drift.notify import NotifyResult, notify_webhook
from probe.drift.settings import DriftSettings
from probe.store.handle import Store

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class NightlyDrift:
    """What drift detection and notification did after one run."""

    detection: DriftDetection | None
    notification: NotifyResult | None = None
    error: str | None = None

    def lines(self) -> list[str]:
        """Lines for the crawl's output."""
        out: list[str] = []
        if self.error:
            out.append(f"drift detection failed: {self.error}")
        if self.detection is not None:
            out.append(self.detection.summary())
        if self.notification is not None:
            out.append(self.notification.summary())
        return out


async def after_run(store: Store, run_id: int, settings: DriftSettings) -> NightlyDrift:
    """Detect the run's drift (in a worker thread) and post its new events; never raises."""
    try:
        detection = await anyio.to_thread.run_sync(
            lambda: detect_drift(store, run_id, settings.thresholds)
        )
    except Exception as exc:  # drift must never end the night: log and report it
        log.exception("drift detection for run %d failed", run_id)
        return NightlyDrift(None, error=f"{type(exc).__name__}: {exc}")
    notification = None
    if settings.webhook_url and detection.new_events:
        notification = await notify_webhook(
            settings.webhook_url,
            detection.new_events,
            timeout_s=settings.webhook_timeout,
            transport=settings.webhook_transport,
        )
    return NightlyDrift(detection, notification)
