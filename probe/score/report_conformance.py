"""Conformance for the HTML report: each payer's failed and warned checks, Lantern style.

The input is the newest stored verdict per endpoint and check in the scoring window
(:func:`probe.store.reports.latest_check_results`). Each failed or warned check becomes a
:class:`Finding` with what the check expected, what the server did (``expected``/``actual`` from
the check's evidence when it has them), the check's message as the comment, and the spec
requirement it verifies (from the check catalog of this probe version).

A payer's *required failures* are the failed required checks of its production endpoints; its
sandboxes are listed, never counted. A failed ``auth.anonymous_refused`` on production means the
payer serves member data without a token: the report says so wherever the payer appears, and
the conformance ranking puts such payers last.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from typing import Any

from probe.checks import discovery, portal
from probe.drift.keys import JWKS
from probe.models import CheckSpec, Severity, Status
from probe.store.reports import StoredCheck

ANONYMOUS_CHECK = "auth.anonymous_refused"
"""The check whose failure means member data is served without a token."""
SHOWN_STATUSES = (Status.FAIL, Status.WARN, Status.ERROR)
"""Verdicts a scorecard lists as findings; passes and skips are only counted."""
_SEVERITY_ORDER = {str(Severity.REQUIRED): 0, str(Severity.RECOMMENDED): 1}
_STATUS_ORDER = {str(Status.FAIL): 0, str(Status.ERROR): 1, str(Status.WARN): 2}
_EVIDENCE_HIDDEN = frozenset(
    {"url", "method", "http_status", "expected", "actual", "latency_ms", "size_bytes"}
)
_VALUE_WIDTH = 300


@cache
def check_catalog() -> dict[str, CheckSpec]:
    """Every check this probe version stores, by id: discovery, portal and the key set."""
    return {spec.id: spec for spec in (*discovery.catalog(), *portal.SPECS, JWKS)}


def _text(value: Any) -> str:
    """A stored evidence value as one short line of text."""
    if value is None:
        return "none"
    if isinstance(value, list | tuple):
        text = ", ".join(_text(v) for v in value) or "none"
    elif isinstance(value, str):
        text = value
    else:
        text = json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)
    return text if len(text) <= _VALUE_WIDTH else text[: _VALUE_WIDTH - 1] + "…"


@dataclass(frozen=True, slots=True)
class Finding:
    """One failed, warned or errored check at one endpoint, with its evidence and spec."""

    check_id: str
    title: str
    severity: str
    status: str
    comment: str
    expected: str
    actual: str
    spec: str
    url: str
    http_status: str
    details: tuple[tuple[str, str], ...]
    environment: str
    base_url: str
    run_id: int
    result_id: int
    observed_at: datetime

    @property
    def required_failure(self) -> bool:
        """True for a failed required check on a production endpoint."""
        return (
            self.severity == Severity.REQUIRED
            and self.status == Status.FAIL
            and self.environment == "production"
        )

    def to_json(self) -> dict[str, Any]:
        """The finding as strict-JSON-ready data (the report embeds it; the page has the text)."""
        return {
            "check": self.check_id,
            "severity": self.severity,
            "status": self.status,
            "environment": self.environment,
            "evidence": [f"run:{self.run_id}", f"check:{self.result_id}"],
        }


def finding(row: StoredCheck) -> Finding:
    """One stored verdict as a finding: the catalog's title and spec, expected/actual from the
    evidence (when the check names no actual value: a non-2xx HTTP status, or the transport
    failure when there was no answer)."""
    spec = check_catalog().get(row.check_id)
    evidence = row.evidence
    actual = _text(evidence["actual"]) if "actual" in evidence else ""
    status_code = evidence.get("http_status")
    if not actual and evidence.get("error_class"):
        actual = f"no answer ({evidence['error_class']})" if status_code is None else ""
    if not actual and isinstance(status_code, int) and not 200 <= status_code < 300:
        actual = f"HTTP {status_code}"  # a refusal or a redirect is what the server did
    details = tuple(
        (str(key), _text(value))
        for key, value in evidence.items()
        if key not in _EVIDENCE_HIDDEN and value not in (None, "", [], {})
    )
    return Finding(
        check_id=row.check_id,
        title=spec.title if spec else row.check_id,
        severity=row.severity,
        status=row.status,
        comment=row.message,
        expected=_text(evidence["expected"]) if "expected" in evidence else "",
        actual=actual,
        spec=spec.spec if spec else "",
        url=str(evidence.get("url") or ""),
        http_status="" if status_code is None else str(status_code),
        details=details,
        environment=row.environment,
        base_url=row.base_url,
        run_id=row.run_id,
        result_id=row.id,
        observed_at=row.observed_at,
    )


@dataclass(slots=True)
class PayerConformance:
    """One payer's newest check verdicts: findings to show, and counts of everything."""

    payer: str
    findings: list[Finding] = field(default_factory=list)
    counts: Counter[str] = field(default_factory=Counter)
    endpoints: set[str] = field(default_factory=set)
    last_checked: datetime | None = None
    rank: int = 0

    @property
    def required_failures(self) -> list[Finding]:
        """Failed required checks of production endpoints."""
        return [f for f in self.findings if f.required_failure]

    @property
    def other_failures(self) -> list[Finding]:
        """Failed checks that are not required failures (recommended, informational, sandbox)."""
        return [f for f in self.findings if f.status == Status.FAIL and not f.required_failure]

    @property
    def warnings(self) -> list[Finding]:
        """Warned or errored checks."""
        return [f for f in self.findings if f.status != Status.FAIL]

    @property
    def serves_data_without_token(self) -> bool:
        """True when a production endpoint answered a data request without a token."""
        return any(f.check_id == ANONYMOUS_CHECK for f in self.required_failures)

    @property
    def checks(self) -> int:
        """How many verdicts there are (every status)."""
        return sum(self.counts.values())

    def to_json(self) -> dict[str, Any]:
        """The payer's conformance as strict-JSON-ready data (the report embeds it)."""
        return {
            "payer": self.payer,
            "rank": self.rank,
            "required_failures": [f.check_id for f in self.required_failures],
            "serves_data_without_token": self.serves_data_without_token,
            "counts": {str(s): self.counts.get(str(s), 0) for s in Status},
            "endpoints": sorted(self.endpoints),
            "last_checked": self.last_checked.isoformat() if self.last_checked else None,
            "findings": [f.to_json() for f in self.findings],
        }


def _finding_key(f: Finding) -> tuple[int, int, int, str, str]:
    return (
        0 if f.environment == "production" else 1,
        _STATUS_ORDER.get(f.status, 3),
        _SEVERITY_ORDER.get(f.severity, 2),
        f.check_id,
        f.base_url,
    )


def conformance_by_payer(rows: Iterable[StoredCheck]) -> dict[str, PayerConformance]:
    """Each payer's conformance from its newest verdicts, ranked: payers that serve member data
    without a token last, then fewest required failures first, then fewest other failures, then
    fewest warnings (ties share a rank)."""
    out: dict[str, PayerConformance] = defaultdict(lambda: PayerConformance(""))
    for row in rows:
        entry = out[row.payer]
        entry.payer = row.payer
        entry.counts[row.status] += 1
        entry.endpoints.add(f"{row.environment} {row.base_url}")
        if entry.last_checked is None or row.observed_at > entry.last_checked:
            entry.last_checked = row.observed_at
        if row.status in SHOWN_STATUSES:
            entry.findings.append(finding(row))
    for entry in out.values():
        entry.findings.sort(key=_finding_key)
    ordered = sorted(out.values(), key=lambda c: (*_standing(c), c.payer.casefold()))
    previous: tuple[int, int, int, int] | None = None
    for position, entry in enumerate(ordered, start=1):
        standing = _standing(entry)
        entry.rank = position if standing != previous else ordered[position - 2].rank
        previous = standing
    return {entry.payer: entry for entry in ordered}


def _standing(entry: PayerConformance) -> tuple[int, int, int, int]:
    return (
        int(entry.serves_data_without_token),
        len(entry.required_failures),
        len(entry.other_failures),
        len(entry.warnings),
    )


def conformance_json(conformance: Mapping[str, PayerConformance]) -> list[dict[str, Any]]:
    """Every payer's conformance in rank order, as strict-JSON-ready data."""
    return [c.to_json() for c in conformance.values()]


def checks_found(conformance: Iterable[PayerConformance]) -> list[CheckSpec]:
    """The catalog entries of every check some payer failed or warned, by id (the report's list
    of spec references; a scorecard quotes the spec in full for required failures only)."""
    catalog = check_catalog()
    found = {f.check_id for c in conformance for f in c.findings}
    return [catalog[check_id] for check_id in sorted(found) if check_id in catalog]
