"""Entry point for one test-patient sync: find the token endpoint, authorize, sync."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from probe.directory.secrets import SecretError, SecretSource, TokenStore
from probe.http.fetch import Fetcher
from probe.http.redact import redact_text
from probe.models import Exchange
from probe.sync.auth import Authorizer, Credentials
from probe.sync.limits import SyncLimits
from probe.sync.result import SyncResult
from probe.sync.runner import PatientSync

_warm_up: threading.Thread | None = None


def warm_up_validation() -> None:
    """Build the R4 validator in the background, once per process, so that its one-time cost
    (loading the schema, compiling it: a few tenths of a second) overlaps the first requests'
    wait on the network instead of following it."""
    global _warm_up
    if _warm_up is None:
        _warm_up = threading.Thread(target=_warm, name="r4-validator-warm-up", daemon=True)
        _warm_up.start()


def _warm() -> None:
    # On failure the first validation builds it again and reports what went wrong.
    with contextlib.suppress(Exception):
        from probe.checks.fhir_schema import warm

        warm()


async def sync_patient(
    fetcher: Fetcher,
    base_url: str,
    patient_id: str,
    credentials: Credentials | None,
    secrets: SecretSource,
    *,
    patient_label: str | None = None,
    capability: dict[str, Any] | None = None,
    smart_configuration: dict[str, Any] | None = None,
    token_store: TokenStore | None = None,
    limits: SyncLimits | None = None,
    on_exchanges: Callable[[list[Exchange]], None] | None = None,
) -> SyncResult:
    """Sync one test patient; secrets problems become an `auth_failed` outcome, not a crash."""
    token_url = None
    if smart_configuration and isinstance(smart_configuration.get("token_endpoint"), str):
        token_url = smart_configuration["token_endpoint"]
    authorizer = Authorizer(
        fetcher,
        base_url.rstrip("/"),
        credentials,
        secrets,
        record=lambda _: None,
        discovered_token_url=token_url,
        token_store=token_store,
    )
    job = PatientSync(
        fetcher,
        base_url,
        patient_id,
        authorizer,
        patient_label=patient_label,
        capability=capability,
        limits=limits,
        on_exchanges=on_exchanges,
    )
    try:
        result = await job.run()
    except SecretError as exc:
        result = job.result
        result.add_finding("secret_missing", str(exc))
        result.outcome = "auth_failed"
        result.completed_at = datetime.now(UTC)
    # Last line of defence: no secret value survives into findings.
    scrub = authorizer.secret_values
    result.findings = [
        type(f)(f.code, redact_text(f.message, scrub), f.url) for f in result.findings
    ]
    return result
