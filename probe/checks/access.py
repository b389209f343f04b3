"""auth.* checks: a data request without a token is refused.

Discovery documents are public, member data is not. One anonymous search,
``GET {base}/Patient?_count=1`` with no ``Authorization`` header, must be answered 401, 403 or
404. A 2xx answer is a failure whatever its body (a Bundle with entries is member data served to
anyone); anything else (a 400 for the missing parameters, a redirect to a login page, a 5xx) is
a warning: the server did not say "not without a token". The body is only counted, never kept:
the evidence names how many entries and of which types, not what they hold.
"""

from __future__ import annotations

from collections import Counter

from probe.checks.observation import DocumentObservation, skipped, verdict
from probe.checks.transport import bound_failure, transport_failure
from probe.models import CheckResult, CheckSpec, Severity, Status

ANONYMOUS_PATH = "Patient?_count=1"
REFUSALS = (401, 403, 404)

ANONYMOUS_REFUSED = CheckSpec(
    "auth.anonymous_refused",
    "Data requests without a token are refused",
    Severity.REQUIRED,
    "US Core Server CapabilityStatement, behavior: a server SHALL reject any unauthorized "
    "requests by returning HTTP 401 Unauthorized, 403 Forbidden or 404 Not Found (US Core "
    "3.1.1: 401); SMART App Launch 2.x: resource requests carry the access token (RFC 6750)",
)

SPECS = (ANONYMOUS_REFUSED,)


def _entry_types(data: dict[str, object]) -> Counter[str]:
    entries = data.get("entry")
    types: Counter[str] = Counter()
    if isinstance(entries, list):
        for entry in entries:
            resource = entry.get("resource") if isinstance(entry, dict) else None
            kind = resource.get("resourceType") if isinstance(resource, dict) else None
            types[str(kind) if kind else "(no resource)"] += 1
    return types


def check_anonymous_refused(obs: DocumentObservation) -> CheckResult:
    """auth.anonymous_refused: a search without a token is answered 401, 403 or 404."""
    ex = obs.exchange
    if ex.status is None:
        return skipped(ANONYMOUS_REFUSED, obs, f"no answer: {transport_failure(ex)}")
    bound = bound_failure(ex)
    if bound is not None and not ex.ok:
        return verdict(ANONYMOUS_REFUSED, Status.WARN, bound, obs)
    if ex.status in REFUSALS:
        challenge = ex.header("www-authenticate")
        return verdict(
            ANONYMOUS_REFUSED,
            Status.PASS,
            f"refused without a token: HTTP {ex.status}",
            obs,
            www_authenticate=challenge,
        )
    mismatch = {"expected": list(REFUSALS), "actual": ex.status}
    if ex.ok and obs.parsed.problem == "html":
        title = obs.parsed.html_title
        return verdict(
            ANONYMOUS_REFUSED,
            Status.WARN,
            f"HTTP {ex.status} with an HTML page{f' ({title!r})' if title else ''} without a "
            "token, not 401, 403 or 404: clients cannot tell that a token is needed",
            obs,
            title=title,
            **mismatch,
        )
    if ex.ok:
        data = obs.parsed.data
        if data is not None and data.get("resourceType") == "Bundle":
            types = _entry_types(data)
            count = sum(types.values())
            if count:
                kinds = ", ".join(f"{n} {t}" for t, n in sorted(types.items()))
                message = (
                    f"HTTP {ex.status} without a token, with {count} entr"
                    f"{'y' if count == 1 else 'ies'} ({kinds}): member data is served to anyone"
                )
            else:
                message = (
                    f"HTTP {ex.status} without a token (an empty Bundle): unauthorized requests "
                    "SHALL be rejected with 401, 403 or 404"
                )
            return verdict(
                ANONYMOUS_REFUSED,
                Status.FAIL,
                message,
                obs,
                entries=count,
                entry_types=dict(sorted(types.items())) or None,
                **mismatch,
            )
        return verdict(
            ANONYMOUS_REFUSED,
            Status.FAIL,
            f"HTTP {ex.status} without a token: unauthorized requests SHALL be rejected with "
            "401, 403 or 404",
            obs,
            **mismatch,
        )
    where = f" to {ex.header('location')}" if 300 <= ex.status < 400 else ""
    return verdict(
        ANONYMOUS_REFUSED,
        Status.WARN,
        f"HTTP {ex.status}{where} without a token, not 401, 403 or 404: clients cannot tell "
        "that a token is needed",
        obs,
        **mismatch,
    )


def run_access_checks(obs: DocumentObservation) -> list[CheckResult]:
    """Every auth.* check over one observation of the anonymous request."""
    return [check_anonymous_refused(obs)]
