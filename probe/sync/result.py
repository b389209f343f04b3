"""What one test-patient sync observed: counts, timings, findings (never resource bodies)."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from probe.models import Exchange


@dataclass(frozen=True, slots=True)
class Finding:
    """Something notable the sync saw: a stable code, a message and the URL it concerns."""

    code: str
    message: str
    url: str | None = None

    def to_json(self) -> dict[str, Any]:
        """JSON form of the finding."""
        return {"code": self.code, "message": self.message, "url": self.url}


@dataclass(slots=True)
class ReferenceStats:
    """Reference resolution figures: how many were found and how many resolved, and how."""

    found: int = 0
    in_bundle: int = 0
    fetched: int = 0
    resolved: int = 0
    other_origin: int = 0
    unresolved: list[str] = field(default_factory=list)

    @property
    def rate(self) -> float | None:
        """Resolved share of references probe may resolve (other origins excluded); None if none."""
        eligible = self.found - self.other_origin
        return None if eligible <= 0 else self.resolved / eligible

    def to_json(self) -> dict[str, Any]:
        """JSON form, as documented in the README."""
        return {
            "found": self.found,
            "in_bundle": self.in_bundle,
            "fetched": self.fetched,
            "resolved": self.resolved,
            "other_origin": self.other_origin,
            "rate": None if self.rate is None else round(self.rate, 4),
            "unresolved_sample": self.unresolved[:20],
        }


@dataclass(slots=True)
class EverythingStats:
    """How `$everything` behaved: supported, paged properly, and whether fallback was needed."""

    supported: bool | None = None
    paged: bool | None = None
    method: str | None = None
    fallback_used: bool = False
    pages: int = 0
    reason: str | None = None

    @property
    def support_level(self) -> str:
        """'paged', 'limited', 'unsupported' (the rubric's outcomes), or 'unknown' if not tried."""
        if self.supported is None:
            return "unknown"
        if not self.supported:
            return "unsupported"
        return "paged" if self.paged else "limited"

    def to_json(self) -> dict[str, Any]:
        """JSON form, as documented in the README."""
        return {
            "supported": self.supported,
            "paged": self.paged,
            "support_level": self.support_level,
            "method": self.method,
            "fallback_used": self.fallback_used,
            "pages": self.pages,
            "reason": self.reason,
        }


@dataclass(slots=True)
class TokenFacts:
    """What the token endpoint told us: refresh token issued, lifetimes, rotation."""

    kind: str = "none"
    refresh_token_issued: bool | None = None
    refresh_token_rotated: bool = False
    refresh_token_lifetime_s: float | None = None
    access_token_lifetime_s: float | None = None
    refreshes: int = 0

    def to_json(self) -> dict[str, Any]:
        """JSON form (no token values, ever)."""
        return {
            "kind": self.kind,
            "refresh_token_issued": self.refresh_token_issued,
            "refresh_token_rotated": self.refresh_token_rotated,
            "refresh_token_lifetime_s": self.refresh_token_lifetime_s,
            "access_token_lifetime_s": self.access_token_lifetime_s,
            "refreshes": self.refreshes,
        }


@dataclass(slots=True, repr=False)
class SyncResult:
    """One test patient's sync: outcome, timings, counts by type, requests by step, findings.

    Its repr is short on purpose: asyncio formats the repr of a finished main task's result
    when the runner restores the SIGINT handler (``signal.signal`` names the replaced handler,
    which holds the task), and the generated repr of every exchange and id took seconds.
    """

    def __repr__(self) -> str:
        return (
            f"SyncResult({self.base_url!r}, patient={self.patient_label!r}, "
            f"outcome={self.outcome!r})"
        )

    base_url: str
    patient_id: str
    patient_label: str
    created_at: datetime
    completed_at: datetime | None = None
    outcome: str = "running"
    pages: int = 0
    bytes: int = 0
    resource_ids: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    validation_failures: Counter[str] = field(default_factory=Counter)
    validation_samples: dict[str, str] = field(default_factory=dict)
    references: ReferenceStats = field(default_factory=ReferenceStats)
    everything: EverythingStats = field(default_factory=EverythingStats)
    tokens: TokenFacts = field(default_factory=TokenFacts)
    findings: list[Finding] = field(default_factory=list)
    exchanges: list[Exchange] = field(default_factory=list)
    searched_types: dict[str, int | None] = field(default_factory=dict)
    #: How each type's data was searched: its patient parameter, or ``<param>+category`` when
    #: the patient-only search was refused (or not allowed) and each category was searched.
    search_strategies: dict[str, str] = field(default_factory=dict)

    @property
    def duration_ms(self) -> float | None:
        """Completed minus created, in ms (the report's sync speed is the median of this)."""
        if self.completed_at is None:
            return None
        return (self.completed_at - self.created_at).total_seconds() * 1000

    def timing(self) -> dict[str, float] | None:
        """Where the sync's wall time went, in ms: `server_ms` (requests on the wire, overlaps
        counted once), `probe_wait_ms` (probe's own politeness and concurrency waits while
        nothing was on the wire) and `scored_ms`, the wall time without those waits (what Sync
        Speed scores). None while the sync runs."""
        wall = self.duration_ms
        if wall is None:
            return None
        wire: list[tuple[float, float]] = []
        waits: list[tuple[float, float]] = []
        for ex in self.exchanges:
            if ex.started_at is None:
                continue
            start = ex.started_at.timestamp() * 1000
            waits.append((start, start + ex.wait_ms))
            wire.append((start + ex.wait_ms, start + ex.wait_ms + ex.latency_ms))
        server = _union_ms(wire)
        waiting = max(0.0, _union_ms(waits + wire) - server)
        probe_wait = min(waiting, wall)
        return {
            "wall_ms": round(wall, 1),
            "server_ms": round(min(server, wall), 1),
            "probe_wait_ms": round(probe_wait, 1),
            "scored_ms": round(wall - probe_wait, 1),
        }

    @property
    def resources_by_type(self) -> dict[str, int]:
        """Distinct resources per type."""
        return {t: len(ids) for t, ids in sorted(self.resource_ids.items())}

    @property
    def requests_by_step(self) -> dict[str, dict[str, int]]:
        """Per extract step, the count of requests per HTTP status (or error class)."""
        out: dict[str, Counter[str]] = defaultdict(Counter)
        for ex in self.exchanges:
            out[str(ex.step)][
                str(ex.status) if ex.status is not None else (ex.error_class or "error")
            ] += 1
        return {step: dict(sorted(c.items())) for step, c in sorted(out.items())}

    def add_finding(self, code: str, message: str, url: str | None = None) -> None:
        """Record a finding once (same code and URL are not repeated)."""
        if not any(f.code == code and f.url == url for f in self.findings):
            self.findings.append(Finding(code, message, url))

    def job_fields(self) -> dict[str, Any]:
        """The keyword arguments of `StoreWriter.add_sync_job` for this sync (counts, timings,
        and the JSON without what has a column of its own)."""
        details = self.to_json()
        for key in ("resources_by_type", "base_url"):
            details.pop(key, None)
        return {
            "created_at": self.created_at,
            "completed_at": self.completed_at,
            "outcome": self.outcome,
            "resources_by_type": self.resources_by_type,
            "pages": self.pages,
            "size_bytes": self.bytes,
            "references_found": self.references.found,
            "references_resolved": self.references.resolved,
            "details": details,
        }

    def to_json(self) -> dict[str, Any]:
        """The documented JSON object printed by `probe sync --format json`."""
        return {
            "base_url": self.base_url,
            "patient": {"id": self.patient_id, "label": self.patient_label},
            "outcome": self.outcome,
            "created_at": self.created_at.isoformat(),
            "completed_at": self.completed_at.isoformat() if self.completed_at else None,
            "duration_ms": None if self.duration_ms is None else round(self.duration_ms, 1),
            "timing": self.timing(),
            "pages": self.pages,
            "bytes": self.bytes,
            "resources_by_type": self.resources_by_type,
            "requests_by_step": self.requests_by_step,
            "references": self.references.to_json(),
            "everything": self.everything.to_json(),
            "validation_failures_by_type": dict(sorted(self.validation_failures.items())),
            "validation_samples": self.validation_samples,
            "tokens": self.tokens.to_json(),
            "searched_types": self.searched_types,
            "search_strategies": self.search_strategies,
            "findings": [f.to_json() for f in self.findings],
        }


def _union_ms(intervals: list[tuple[float, float]]) -> float:
    """The total length of the union of (start, end) intervals."""
    total = 0.0
    end_so_far = float("-inf")
    for start, end in sorted(i for i in intervals if i[1] > i[0]):
        if start > end_so_far:
            total += end - start
            end_so_far = end
        elif end > end_so_far:
            total += end - end_so_far
            end_so_far = end
    return total
