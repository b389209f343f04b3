"""What drift compares: one endpoint as observed in one run (documents, keys, behaviour).

An :class:`EndpointSnapshot` is built the same way from a live probe (``probe prerelease``) and
from the observation store (nightly drift): both read the same check results (their evidence
carries the HTTP status and final URL of each discovery request and the JWKS key ids), the same
documents and the same sync figures, so a stored run and a live probe compare like for like.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from probe.checks.access import ANONYMOUS_REFUSED
from probe.models import CheckResult
from probe.sync.result import SyncResult

METADATA_CHECK = "metadata.reachable"
SMART_CHECK = "smart.reachable"
JWKS_CHECK = "smart.jwks"
ANONYMOUS_CHECK = ANONYMOUS_REFUSED.id
SNAPSHOT_CHECKS = (METADATA_CHECK, SMART_CHECK, JWKS_CHECK, ANONYMOUS_CHECK)
"""The check results a snapshot reads (their evidence, not their verdicts)."""

COMPLETED_OUTCOMES = frozenset({"completed", "partial"})
"""Sync outcomes whose duration counts towards the sync speed median."""


@dataclass(frozen=True, slots=True)
class Fetched:
    """How one discovery request ended: status (None: no response), error, URLs asked and got."""

    status: int | None
    error_class: str | None = None
    url: str | None = None
    final_url: str | None = None

    @property
    def ok(self) -> bool:
        """True for a 2xx answer."""
        return self.status is not None and 200 <= self.status < 300

    @property
    def redirected_to(self) -> str | None:
        """The URL the request ended at when redirects were followed, else None."""
        if self.final_url and self.final_url != self.url:
            return self.final_url
        return None

    def describe(self) -> str:
        """'HTTP 200', 'HTTP 404' or the transport failure class ('connection_refused')."""
        if self.status is not None:
            return f"HTTP {self.status}"
        return self.error_class or "no response"

    @classmethod
    def from_evidence(cls, evidence: Mapping[str, Any] | None) -> Fetched | None:
        """From a discovery check's evidence (``http_status``, ``error_class``, ``final_url``)."""
        if not evidence:
            return None
        status = evidence.get("http_status")
        return cls(
            status=status if isinstance(status, int) else None,
            error_class=_str(evidence.get("error_class")),
            url=_str(evidence.get("url")),
            final_url=_str(evidence.get("final_url")),
        )


@dataclass(frozen=True, slots=True)
class JwksKey:
    """One public key of a JWK Set, by its identity only (no key material is kept)."""

    kid: str | None
    kty: str | None
    alg: str | None
    use: str | None
    thumbprint: str | None

    @property
    def name(self) -> str:
        """The key's id, or its RFC 7638 thumbprint when it has no kid."""
        return self.kid or f"thumbprint:{self.thumbprint}"

    def to_json(self) -> dict[str, Any]:
        """JSON form (what the `smart.jwks` check's evidence and drift events carry)."""
        return {
            "kid": self.kid,
            "kty": self.kty,
            "alg": self.alg,
            "use": self.use,
            "thumbprint": self.thumbprint,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> JwksKey:
        """From :meth:`to_json` output."""
        return cls(
            kid=_str(data.get("kid")),
            kty=_str(data.get("kty")),
            alg=_str(data.get("alg")),
            use=_str(data.get("use")),
            thumbprint=_str(data.get("thumbprint")),
        )


@dataclass(frozen=True, slots=True)
class KeySet:
    """The JWKS at the SMART configuration's jwks_uri: served (with keys) or not."""

    uri: str | None
    served: bool
    keys: tuple[JwksKey, ...] = ()
    problem: str | None = None

    @classmethod
    def from_check(cls, result: CheckResult | None) -> KeySet | None:
        """From a `smart.jwks` check result (None when the check did not run or was skipped)."""
        if result is None:
            return None
        return cls.from_evidence(str(result.status), result.evidence, result.message)

    @classmethod
    def from_evidence(
        cls, status: str, evidence: Mapping[str, Any] | None, message: str = ""
    ) -> KeySet | None:
        """From a stored `smart.jwks` verdict: its status, evidence and message."""
        if status in ("skip", "error") or evidence is None:
            return None
        keys = evidence.get("keys")
        parsed = tuple(JwksKey.from_json(k) for k in keys or [] if isinstance(k, Mapping))
        served = evidence.get("served") is True
        return cls(
            uri=_str(evidence.get("jwks_uri")),
            served=served,
            keys=parsed,
            problem=None if served else message or "JWKS not served",
        )


@dataclass(frozen=True, slots=True)
class SyncFacts:
    """One test-patient sync, reduced to what drift compares."""

    label: str
    outcome: str | None
    everything: str = "unknown"
    findings: frozenset[str] = frozenset()
    duration_s: float | None = None

    @classmethod
    def from_result(cls, result: SyncResult) -> SyncFacts:
        """From a live sync."""
        duration = result.duration_ms
        return cls(
            label=result.patient_label,
            outcome=result.outcome,
            everything=result.everything.support_level,
            findings=frozenset(f.code for f in result.findings),
            duration_s=None if duration is None else duration / 1000,
        )

    @classmethod
    def from_stored(
        cls,
        label: str,
        outcome: str | None,
        duration_s: float | None,
        details: Mapping[str, Any] | None,
    ) -> SyncFacts:
        """From a stored sync job row (its outcome, timings and `details` JSON)."""
        details = details or {}
        everything = details.get("everything")
        level = "unknown"
        if isinstance(everything, Mapping):
            level = str(everything.get("support_level") or "unknown")
        codes = frozenset(
            str(f["code"])
            for f in details.get("findings") or []
            if isinstance(f, Mapping) and f.get("code")
        )
        return cls(label, outcome, level, codes, duration_s)


def median_duration(syncs: Iterable[SyncFacts]) -> float | None:
    """Median duration in seconds of the completed (or partial) syncs, None when there are none."""
    durations = [
        s.duration_s for s in syncs if s.duration_s is not None and s.outcome in COMPLETED_OUTCOMES
    ]
    return statistics.median(durations) if durations else None


@dataclass(frozen=True, slots=True)
class EndpointSnapshot:
    """One endpoint in one run: its documents, discovery answers, key set and syncs.

    `None` means "not observed" (never "empty"): the classifier compares only what both sides
    observed, so a run without syncs says nothing about sync behaviour.
    """

    base_url: str
    capability: dict[str, Any] | None = None
    smart: dict[str, Any] | None = None
    metadata_fetch: Fetched | None = None
    smart_fetch: Fetched | None = None
    anonymous_fetch: Fetched | None = None
    jwks: KeySet | None = None
    syncs: tuple[SyncFacts, ...] = ()
    run_id: int | None = None
    endpoint_id: int | None = None
    label: str = field(default="")

    @property
    def description(self) -> str:
        """How to name this snapshot to a reader ('run 12, https://...' or the URL)."""
        if self.label:
            return self.label
        if self.run_id is not None:
            return f"run {self.run_id} ({self.base_url})"
        return self.base_url


def snapshot_from_results(
    base_url: str,
    results: Sequence[CheckResult],
    documents: Mapping[str, dict[str, Any]],
    syncs: Sequence[SyncResult] = (),
    *,
    label: str = "",
) -> EndpointSnapshot:
    """A snapshot of a live probe: its check results, documents and sync results."""
    by_id = {r.id: r for r in results}
    metadata = by_id.get(METADATA_CHECK)
    smart = by_id.get(SMART_CHECK)
    anonymous = by_id.get(ANONYMOUS_CHECK)
    return EndpointSnapshot(
        base_url=base_url,
        capability=documents.get("capability"),
        smart=documents.get("smart_configuration"),
        metadata_fetch=Fetched.from_evidence(metadata.evidence) if metadata else None,
        smart_fetch=Fetched.from_evidence(smart.evidence) if smart else None,
        anonymous_fetch=Fetched.from_evidence(anonymous.evidence) if anonymous else None,
        jwks=KeySet.from_check(by_id.get(JWKS_CHECK)),
        syncs=tuple(SyncFacts.from_result(s) for s in syncs),
        label=label,
    )


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None
