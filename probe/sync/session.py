"""Entry point for one test-patient sync: find the token endpoint, authorize, sync.

`probe sync` reads two discovery documents (the CapabilityStatement and the SMART
configuration) while `$everything` is already on its way (:func:`sync_with_discovery`): the
sync waits for them only where it reads them (a token endpoint it was not given, the POST
fallback of a 405, the per-resource fallback's plan).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import anyio

from probe.directory.secrets import SecretError, SecretSource, TokenStore
from probe.http.fetch import FHIR_JSON, Fetcher
from probe.http.redact import redact_text
from probe.http.urls import join, normalize_base
from probe.models import Exchange, ExtractStep
from probe.sync.auth import Authorizer, Credentials, token_endpoint
from probe.sync.documents import PendingDocuments, ServerDocuments
from probe.sync.limits import SyncLimits
from probe.sync.result import SyncResult
from probe.sync.runner import PatientSync

#: Where the SMART configuration is served (SMART App Launch, ``probe.checks.discovery``'s
#: path; not imported from there, which brings every discovery check with it: ~10 ms of the
#: sync's start, before its first request).
SMART_PATH = ".well-known/smart-configuration"


async def fetch_documents(fetcher: Fetcher, base_url: str) -> ServerDocuments:
    """Fetch the CapabilityStatement and the SMART configuration at once, as discovery does,
    without running the discovery checks (`probe sync` prints none of them)."""
    base = normalize_base(base_url)
    follow = fetcher.limits.cross_origin_redirects
    fetched: dict[str, list[Exchange]] = {}

    async def get(key: str, url: str, accept: str) -> None:
        fetched[key] = await fetcher.get(
            url, step=ExtractStep.DISCOVERY, accept=accept, follow_cross_origin=follow
        )

    async with anyio.create_task_group() as tg:
        tg.start_soon(get, "metadata", join(base, "metadata"), FHIR_JSON)
        tg.start_soon(get, "smart", join(base, SMART_PATH), "application/json")
    # Imported once the requests are out (with the validator's modules: about 9 ms of a
    # `probe sync`'s start that now overlaps the server's wait).
    from probe.checks import metadata, smart

    depth = fetcher.limits.max_json_depth
    return ServerDocuments(
        base,
        metadata.observe(base, fetched["metadata"], max_depth=depth).document,
        smart.observe(base, fetched["smart"], max_depth=depth).document,
    )


async def sync_with_discovery(
    fetcher: Fetcher,
    base_url: str,
    patient_id: str,
    credentials: Credentials | None,
    secrets: SecretSource,
    *,
    on_documents: Callable[[], None] | None = None,
    patient_label: str | None = None,
    token_store: TokenStore | None = None,
    limits: SyncLimits | None = None,
) -> SyncResult:
    """Fetch the server documents (:func:`fetch_documents`) and sync the patient at once; the
    same requests and the same result as fetching them first, sooner.

    `on_documents` is called once the documents are in (the patient's requests have gone out
    with them). A discovery request still unanswered when the sync has ended is abandoned: the
    sync did not need its answer."""
    base = normalize_base(base_url)
    pending = PendingDocuments()

    async def discover() -> None:
        pending.set(await fetch_documents(fetcher, base))
        if on_documents is not None:
            on_documents()

    async with anyio.create_task_group() as tg:
        tg.start_soon(discover)
        result = await sync_patient(
            fetcher,
            base,
            patient_id,
            credentials,
            secrets,
            patient_label=patient_label,
            documents=pending,
            token_store=token_store,
            limits=limits,
        )
        tg.cancel_scope.cancel()
    return result


_warm_up: threading.Thread | None = None


def warm_up_validation() -> None:
    """Build the R4 validator in the background, once per process, so that its one-time cost
    (importing jsonschema-rs, loading the schema, compiling the common types' validator: about
    60 ms of CPU) overlaps a wait on the network instead of following it.

    The build holds the GIL (JSON parsing, then jsonschema-rs compiling in Rust): started while
    the caller still has Python work to do before its requests go out, it delays them by as
    much. ``probe sync`` therefore starts it once the server documents are in, after the
    patient's first request went out with them (the server's longest wait)."""
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
    documents: PendingDocuments | None = None,
    token_store: TokenStore | None = None,
    limits: SyncLimits | None = None,
    on_exchanges: Callable[[list[Exchange]], None] | None = None,
) -> SyncResult:
    """Sync one test patient; secrets problems become an `auth_failed` outcome, not a crash.

    The server's documents are `capability` and `smart_configuration`, or `documents` when
    their discovery is still in flight."""
    authorizer = Authorizer(
        fetcher,
        base_url.rstrip("/"),
        credentials,
        secrets,
        record=lambda _: None,
        discovered_token_url=token_endpoint(smart_configuration),
        discovery=documents,
        token_store=token_store,
    )
    job = PatientSync(
        fetcher,
        base_url,
        patient_id,
        authorizer,
        patient_label=patient_label,
        capability=capability,
        documents=documents,
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
