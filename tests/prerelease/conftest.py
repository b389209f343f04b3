"""Prerelease tests: the store fixtures (SQLite and PostgreSQL) and an in-process fleet helper."""

from __future__ import annotations

from typing import Any

import anyio

from probe.directory.schema import BearerCredentials, RefreshTokenCredentials, SecretRef
from probe.directory.secrets import SecretSource
from probe.fleet.app import Fleet
from probe.fleet.config import parse_fleet_config
from probe.prerelease.baseline import Baseline
from probe.prerelease.gate import FailOn
from probe.prerelease.observe import PatientSpec
from probe.prerelease.run import PrereleaseOptions, PrereleaseResult, run_prerelease
from probe.sync.limits import SyncLimits
from tests.store.conftest import pg_admin, store, store_url  # noqa: F401

PAYERS: list[dict[str, Any]] = [
    {"slug": "prod", "name": "Acme Health"},
    {"slug": "staging", "name": "Acme Health (staging)"},
    {"slug": "staging-bad", "name": "Acme Health (next)", "archetypes": ["everything_unsupported"]},
    {"slug": "staging-locked", "archetypes": ["metadata_auth"]},
    {"slug": "staging-bearer", "oauth": {"client_auth": "bearer"}},
    {"slug": "staging-html", "name": "<script>alert(1)</script> | Plan"},
]


def make_fleet() -> Fleet:
    """The prerelease fleet: production, a faithful staging, and broken candidates."""
    return Fleet(parse_fleet_config({"seed": 5, "hosts": 2, "payers": PAYERS}), port=8080)


def credentials_for(fleet: Fleet, slug: str) -> tuple[Any, SecretSource]:
    """The fleet client's credentials at `slug` as env references, with the env they need."""
    c = fleet.credentials(slug)
    if c.auth == "bearer":
        return BearerCredentials(kind="bearer", token=SecretRef(env="TOKEN")), SecretSource(
            env={"TOKEN": c.bearer_token}
        )
    creds = RefreshTokenCredentials(
        kind="refresh_token",
        client_id=c.client_id,
        client_secret=SecretRef(env="CS"),
        refresh_token=SecretRef(env="RT"),
        auth_method="client_secret_basic",
    )
    return creds, SecretSource(env={"CS": c.client_secret, "RT": c.refresh_token})


def prerelease(
    fleet: Fleet,
    slug: str,
    *,
    baseline_slug: str | None = "prod",
    baseline: Baseline | None = None,
    sync: bool = True,
    fail_on: tuple[FailOn, ...] = (),
    fail_under: int | None = None,
    discovery_only: bool = False,
) -> PrereleaseResult:
    """Run a prerelease of fleet payer `slug` in-process (no sockets)."""
    creds, secrets = credentials_for(fleet, slug)
    patients = (PatientSpec(fleet.patients(slug)[0], "member 1"),) if sync else ()
    options = PrereleaseOptions(
        patients=patients,
        credentials=creds if sync else None,
        sync_limits=SyncLimits(validate=False),
        fail_on=fail_on,
        fail_under=fail_under,
        discovery_only=discovery_only,
    )
    box: list[PrereleaseResult] = []

    async def go() -> None:
        box.append(
            await run_prerelease(
                fleet.base_url(slug),
                options,
                baseline_url=fleet.base_url(baseline_slug)
                if baseline_slug and not baseline
                else None,
                baseline=baseline,
                secrets=secrets,
                transport=fleet.transport(),
            )
        )

    anyio.run(go)
    return box[0]
