"""A live probe of one base URL for a prerelease: discovery, the JWKS and the test-patient syncs."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from probe.checks.discovery import run_discovery
from probe.directory.secrets import SecretSource, TokenStore
from probe.drift.keys import observe_key_set
from probe.drift.snapshot import EndpointSnapshot, snapshot_from_results
from probe.http.fetch import Fetcher
from probe.models import Report
from probe.sync.auth import Credentials
from probe.sync.limits import SyncLimits
from probe.sync.result import SyncResult
from probe.sync.session import sync_patient

# -- observing ---------------------------------------------------------------------------------


@dataclass(slots=True)
class Observation:
    """A live probe of one base URL: discovery (with the JWKS) and the test-patient syncs."""

    base_url: str
    report: Report
    syncs: list[SyncResult] = field(default_factory=list)
    snapshot: EndpointSnapshot = field(init=False)
    label: str = ""

    def __post_init__(self) -> None:
        self.snapshot = snapshot_from_results(
            self.base_url, self.report.results, self.report.documents, self.syncs, label=self.label
        )


@dataclass(frozen=True, slots=True)
class PatientSpec:
    """A test patient to sync: FHIR id and report label."""

    id: str
    label: str


async def observe(
    fetcher: Fetcher,
    base_url: str,
    *,
    patients: Sequence[PatientSpec] = (),
    credentials: Credentials | None = None,
    secrets: SecretSource | None = None,
    token_store: TokenStore | None = None,
    sync_limits: SyncLimits | None = None,
    label: str = "",
) -> Observation:
    """Discovery, the JWKS and (when patients are given and the server answers) the syncs."""
    report = await run_discovery(fetcher, base_url)
    await observe_key_set(fetcher, report)
    syncs: list[SyncResult] = []
    answered = report.result("metadata.reachable").evidence.get("http_status") is not None
    if patients and answered:
        for patient in patients:
            syncs.append(
                await sync_patient(
                    fetcher,
                    report.base_url,
                    patient.id,
                    credentials,
                    secrets or SecretSource(),
                    patient_label=patient.label,
                    capability=report.documents.get("capability"),
                    smart_configuration=report.documents.get("smart_configuration"),
                    token_store=token_store,
                    limits=sync_limits,
                )
            )
    return Observation(report.base_url, report, syncs, label=label)
