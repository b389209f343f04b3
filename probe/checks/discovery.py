"""The discovery suite: fetch /metadata, the SMART configuration and one anonymous search once
each, and run every check."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import anyio

from probe.checks import access, metadata, smart
from probe.checks.observation import DocumentObservation
from probe.http.fetch import FHIR_JSON, Fetcher
from probe.http.urls import join, normalize_base
from probe.models import CheckSpec, Exchange, ExtractStep, Report

SMART_PATH = ".well-known/smart-configuration"


def catalog() -> tuple[CheckSpec, ...]:
    """Every check the discovery suite runs, in report order."""
    return metadata.SPECS + smart.SPECS + access.SPECS


async def run_discovery(fetcher: Fetcher, base_url: str) -> Report:
    """Probe one FHIR base URL's discovery documents and return the checked report."""
    base = normalize_base(base_url)
    started = datetime.now(UTC)
    t0 = time.perf_counter()
    fetched: dict[str, list[Exchange]] = {}

    async def fetch(key: str, url: str, accept: str, follow_cross_origin: bool) -> None:
        fetched[key] = await fetcher.get(
            url, step=ExtractStep.DISCOVERY, accept=accept, follow_cross_origin=follow_cross_origin
        )

    # Discovery sends no credentials, so a moved base may be followed to report where it went
    # (the fetcher still refuses hops into internal networks); configurable off. The anonymous
    # data request never leaves the origin.
    follow = fetcher.limits.cross_origin_redirects
    async with anyio.create_task_group() as tg:
        tg.start_soon(fetch, "metadata", join(base, "metadata"), FHIR_JSON, follow)
        tg.start_soon(fetch, "smart", join(base, SMART_PATH), "application/json", follow)
        tg.start_soon(fetch, "access", join(base, access.ANONYMOUS_PATH), FHIR_JSON, False)

    depth = fetcher.limits.max_json_depth
    meta_obs = metadata.observe(base, fetched["metadata"], max_depth=depth)
    smart_obs = smart.observe(base, fetched["smart"], max_depth=depth)
    results = metadata.run_metadata_checks(meta_obs)
    results += smart.run_smart_checks(smart_obs, metadata.oauth_uris(meta_obs.document))
    access_obs = DocumentObservation.of(base, fetched["access"], max_depth=depth)
    results += access.run_access_checks(access_obs)
    report = Report(
        base_url=base,
        started_at=started,
        duration_ms=(time.perf_counter() - t0) * 1000,
        results=results,
        exchanges=[*fetched["metadata"], *fetched["smart"], *fetched["access"]],
    )
    if meta_obs.document is not None:
        report.documents["capability"] = meta_obs.document
    if smart_obs.document is not None:
        report.documents["smart_configuration"] = smart_obs.document
    return report
