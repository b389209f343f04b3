"""Domain types shared by every layer: checks, their results, the evidence behind them, reports.

These are plain frozen dataclasses with no I/O. The JSON shape produced by :meth:`Report.to_json`
is a public contract (payers' CI parses it); see README "JSON output".
"""

from __future__ import annotations

import enum
import math
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


class Severity(enum.StrEnum):
    """How much a failed check matters: only `required` failures make `probe check` exit 1."""

    REQUIRED = "required"
    RECOMMENDED = "recommended"
    INFORMATIONAL = "informational"


class Status(enum.StrEnum):
    """Outcome of one check; `error` means probe could not evaluate it (not a server fault)."""

    PASS = "pass"
    FAIL = "fail"
    WARN = "warn"
    SKIP = "skip"
    ERROR = "error"


class ExtractStep(enum.StrEnum):
    """Why a request was made; the scoring groups request success rates by step."""

    DISCOVERY = "discovery"
    EVERYTHING = "everything"
    INDIVIDUAL = "individual"
    PAGINATION = "pagination"
    RETRY = "retry"
    REFERENCE = "reference"
    TOKEN = "token"
    PORTAL = "portal"


@dataclass(frozen=True, slots=True)
class CheckSpec:
    """A check's identity: stable id, title, severity and the spec requirement it verifies."""

    id: str
    title: str
    severity: Severity
    spec: str


@dataclass(frozen=True, slots=True)
class Exchange:
    """One HTTP request as observed: what was asked, what came back, how long it took.

    `error_class` names a transport failure (``dns``, ``connection_refused``, ``tls``,
    ``timeout``, ...) when there was no response; `status` is then None. `body` is the
    (size-capped) response body and is never persisted; of a body cut at the cap (`truncated`)
    only the first 64 KiB are kept, while `size_bytes` says how much was received.
    `latency_ms` is the server's time (on the wire, every redirect hop included); `wait_ms` is
    probe's own waiting before sending (politeness slots), never part of the latency.
    """

    method: str
    url: str
    step: ExtractStep
    status: int | None = None
    latency_ms: float = 0.0
    size_bytes: int = 0
    content_type: str | None = None
    error_class: str | None = None
    error_detail: str | None = None
    final_url: str | None = None
    redirects: tuple[str, ...] = ()
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = field(default=b"", repr=False)
    truncated: bool = False
    started_at: datetime | None = None
    wait_ms: float = 0.0

    @property
    def ok(self) -> bool:
        """True when a response arrived with a 2xx status."""
        return self.status is not None and 200 <= self.status < 300

    def header(self, name: str) -> str | None:
        """The first response header with this (case-insensitive) name, or None."""
        lowered = name.lower()
        for key, value in self.headers:
            if key.lower() == lowered:
                return value
        return None

    def evidence(self, **extra: Any) -> dict[str, Any]:
        """The evidence dict a check result carries for this exchange, plus `extra` fields."""
        data: dict[str, Any] = {
            "url": self.url,
            "method": self.method,
            "http_status": self.status,
            "latency_ms": round(self.latency_ms, 1),
            "size_bytes": self.size_bytes,
            "content_type": self.content_type,
        }
        if self.final_url and self.final_url != self.url:
            data["final_url"] = self.final_url
        if self.redirects:
            data["redirects"] = list(self.redirects)
        if self.error_class:
            data["error_class"] = self.error_class
        if self.status is not None and 300 <= self.status < 400 and self.header("location"):
            data["location"] = self.header("location")  # a redirect probe did not follow
        if self.truncated:
            data["truncated"] = True
        data.update({k: v for k, v in extra.items() if v is not None})
        return data


@dataclass(frozen=True, slots=True)
class CheckResult:
    """One check's verdict with a human message and machine-readable evidence."""

    spec: CheckSpec
    status: Status
    message: str
    evidence: dict[str, Any] = field(default_factory=dict)

    @property
    def id(self) -> str:
        """The check id, e.g. ``metadata.reachable``."""
        return self.spec.id

    @property
    def blocking(self) -> bool:
        """True when this result makes the run fail: a required check that failed."""
        return self.spec.severity is Severity.REQUIRED and self.status is Status.FAIL

    def to_json(self) -> dict[str, Any]:
        """The documented JSON form of one check result."""
        return {
            "id": self.spec.id,
            "title": self.spec.title,
            "severity": str(self.spec.severity),
            "status": str(self.status),
            "spec": self.spec.spec,
            "message": self.message,
            "evidence": self.evidence,
        }


@dataclass(slots=True)
class Report:
    """All check results of one probe of one base URL, plus the requests that produced them."""

    base_url: str
    started_at: datetime
    duration_ms: float = 0.0
    results: list[CheckResult] = field(default_factory=list)
    exchanges: list[Exchange] = field(default_factory=list)
    documents: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def summary(self) -> dict[str, int]:
        """Count of results per status, every status present (zero when absent)."""
        counts = Counter(r.status for r in self.results)
        return {str(s): counts.get(s, 0) for s in Status}

    @property
    def failed_required(self) -> list[CheckResult]:
        """Required checks that failed; non-empty means `probe check` exits 1."""
        return [r for r in self.results if r.blocking]

    def result(self, check_id: str) -> CheckResult:
        """The result of the check with this id (KeyError when it did not run)."""
        for r in self.results:
            if r.spec.id == check_id:
                return r
        raise KeyError(check_id)

    def to_json(self) -> dict[str, Any]:
        """The documented, stable JSON shape of a report."""
        return {
            "base_url": self.base_url,
            "started_at": self.started_at.isoformat(),
            "duration_ms": round(self.duration_ms, 1),
            "checks": [r.to_json() for r in self.results],
            "summary": self.summary,
        }


def finite_json(value: Any) -> Any:
    """A copy of JSON-shaped data fit for strict JSON (RFC 8259 has no NaN or Infinity): every
    non-finite float becomes None. Outputs dump the result with ``allow_nan=False``."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite_json(v) for v in value]
    return value
