"""What a release candidate is compared with: a live probe of production or a stored run."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select

from probe.drift.events import DriftError, load_snapshots
from probe.drift.snapshot import EndpointSnapshot
from probe.prerelease.observe import Observation
from probe.store.catalog import normalize_base_url
from probe.store.handle import Store
from probe.store.tables import (
    DocumentSightingRow,
    EndpointRow,
    ProbeRunRow,
    RunTargetRow,
    TargetStatus,
)


class PrereleaseError(Exception):
    """A prerelease that cannot run as asked (bad baseline, unknown run); the message says why."""


# -- the baseline --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Baseline:
    """What the candidate is compared with: a live probe or a stored run's endpoint."""

    snapshot: EndpointSnapshot
    description: str
    run_id: int | None = None
    observation: Observation | None = None

    @property
    def has_syncs(self) -> bool:
        """Whether behaviour that needs a sync can be compared."""
        return bool(self.snapshot.syncs)


def stored_baseline(store: Store, run_id: int, endpoint_url: str | None = None) -> Baseline:
    """The baseline from a stored run; `endpoint_url` picks the endpoint in a multi-endpoint run.

    PrereleaseError when the run does not exist, did not observe that endpoint, or observed
    several and none was named.
    """
    with store.session() as session:
        run = session.get(ProbeRunRow, run_id)
        if run is None:
            raise PrereleaseError(f"--baseline-run {run_id}: no such run in the database")
        observed = dict(
            session.execute(
                select(EndpointRow.id, EndpointRow.base_url)
                .where(
                    EndpointRow.id.in_(
                        select(DocumentSightingRow.endpoint_id).where(
                            DocumentSightingRow.run_id == run_id
                        )
                    )
                    | EndpointRow.id.in_(
                        select(RunTargetRow.endpoint_id).where(
                            RunTargetRow.run_id == run_id,
                            RunTargetRow.status == TargetStatus.DONE.value,
                        )
                    )
                )
                .order_by(EndpointRow.base_url)
            ).all()
        )
        if not observed:
            raise PrereleaseError(f"--baseline-run {run_id}: the run observed no endpoint")
        if endpoint_url is not None:
            wanted = normalize_base_url(endpoint_url)
            matches = [eid for eid, url in observed.items() if url == wanted]
            if not matches:
                raise PrereleaseError(
                    f"--baseline-endpoint {endpoint_url}: run {run_id} did not observe it"
                )
            endpoint_id = matches[0]
        elif len(observed) == 1:
            endpoint_id = next(iter(observed))
        else:
            shown = ", ".join(list(observed.values())[:5])
            more = f" (+{len(observed) - 5} more)" if len(observed) > 5 else ""
            raise PrereleaseError(
                f"--baseline-run {run_id} observed {len(observed)} endpoints; name one with "
                f"--baseline-endpoint URL: {shown}{more}"
            )
        try:
            snapshot = load_snapshots(session, run_id, [endpoint_id])[endpoint_id]
        except (KeyError, DriftError):
            raise PrereleaseError(f"run {run_id} has no observations of that endpoint") from None
    return Baseline(snapshot, f"run {run_id} ({run.kind}) of {snapshot.base_url}", run_id)
