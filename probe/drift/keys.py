"""The SMART configuration's key set (jwks_uri), observed so that rotated keys show up as drift.

Discovery fetches two documents; the key set is a third, fetched once per probe when the SMART
configuration names a ``jwks_uri``. It is recorded as the informational check ``smart.jwks``
whose evidence lists each key's identity (kid, kty, alg, use and RFC 7638 thumbprint), never
key material. Apps that verify id_tokens look keys up by kid: a kid that disappears breaks them.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from probe.checks.transport import transport_failure
from probe.http.body import excerpt, parse_json
from probe.http.fetch import Fetcher
from probe.models import CheckResult, CheckSpec, Exchange, ExtractStep, Report, Severity, Status

JWKS = CheckSpec(
    "smart.jwks",
    "jwks_uri serves a JSON Web Key Set",
    Severity.INFORMATIONAL,
    "SMART App Launch 2.2.0 (https://hl7.org/fhir/smart-app-launch/STU2.2/conformance.html"
    "#metadata) jwks_uri; RFC 7517 §5 JWK Set; RFC 7638 thumbprints. Key ids are compared run "
    "to run by probe drift (docs/drift.md)",
)
JWKS_ACCEPT = "application/jwk-set+json, application/json;q=0.9"
MAX_KEYS = 50
#: Members that hold private or symmetric key material: a public JWKS must never carry them.
PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})
#: The members RFC 7638 hashes for each key type, in lexicographic order.
THUMBPRINT_MEMBERS = {
    "EC": ("crv", "kty", "x", "y"),
    "RSA": ("e", "kty", "n"),
    "OKP": ("crv", "kty", "x"),
    "oct": ("k", "kty"),
}


def thumbprint(jwk: Mapping[str, Any]) -> str | None:
    """The RFC 7638 SHA-256 thumbprint (base64url) of a JWK, or None for an unknown key type."""
    members = THUMBPRINT_MEMBERS.get(str(jwk.get("kty")))
    if members is None or not all(isinstance(jwk.get(m), str) for m in members):
        return None
    canonical = json.dumps({m: jwk[m] for m in members}, separators=(",", ":"), sort_keys=True)
    digest = hashlib.sha256(canonical.encode("utf-8")).digest()
    return base64.urlsafe_b64encode(digest).decode("ascii").rstrip("=")


def key_identity(jwk: Mapping[str, Any]) -> dict[str, Any]:
    """What is kept of one key: kid, kty, alg, use and thumbprint (never key material)."""

    def text(name: str) -> str | None:
        value = jwk.get(name)
        return value[:200] if isinstance(value, str) and value else None

    return {
        "kid": text("kid"),
        "kty": text("kty"),
        "alg": text("alg"),
        "use": text("use"),
        "thumbprint": thumbprint(jwk),
    }


def jwks_uri_of(smart_configuration: Mapping[str, Any] | None) -> str | None:
    """The absolute http(s) jwks_uri of a SMART configuration, or None."""
    if not smart_configuration:
        return None
    uri = smart_configuration.get("jwks_uri")
    if not isinstance(uri, str):
        return None
    parts = urlsplit(uri.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    return uri.strip()


def check_jwks(uri: str | None, attempts: list[Exchange] | None) -> CheckResult:
    """smart.jwks: the key set at `uri` (from `attempts`), with each key's identity as evidence.

    Skipped without a jwks_uri; failed when the URI does not answer a JWK Set or the set
    publishes private key material; passed otherwise. Evidence: ``jwks_uri``, ``served`` and
    ``keys`` (identities only).
    """
    if uri is None or not attempts:
        return CheckResult(
            JWKS, Status.SKIP, "skipped: the SMART configuration names no absolute jwks_uri", {}
        )
    ex = attempts[-1]
    base = {"jwks_uri": uri, "served": False}
    if ex.status is None:
        return CheckResult(JWKS, Status.FAIL, transport_failure(ex), ex.evidence(**base))
    if not ex.ok:
        return CheckResult(
            JWKS, Status.FAIL, f"HTTP {ex.status} from jwks_uri", ex.evidence(**base)
        )
    parsed = parse_json(ex, max_depth=16)
    keys = parsed.data.get("keys") if parsed.data is not None else None
    if not isinstance(keys, list):
        why = "no 'keys' array" if parsed.data is not None else f"not JSON ({parsed.problem})"
        return CheckResult(
            JWKS,
            Status.FAIL,
            f"jwks_uri did not answer a JWK Set: {why}",
            ex.evidence(**base, excerpt=excerpt(ex.body) or None),
        )
    jwks = [k for k in keys[:MAX_KEYS] if isinstance(k, Mapping)]
    identities = [key_identity(k) for k in jwks]
    evidence = ex.evidence(jwks_uri=uri, served=True, keys=identities)
    leaking = sorted({m for k in jwks for m in PRIVATE_MEMBERS if m in k})
    if leaking:
        return CheckResult(
            JWKS,
            Status.FAIL,
            f"the JWK Set publishes private or symmetric key material ({', '.join(leaking)})",
            evidence,
        )
    if not jwks:
        return CheckResult(JWKS, Status.WARN, "the JWK Set is empty", evidence)
    without_kid = sum(1 for i in identities if not i["kid"])
    kids = ", ".join(i["kid"] for i in identities if i["kid"])
    if without_kid:
        return CheckResult(
            JWKS,
            Status.WARN,
            f"{len(jwks)} key(s), {without_kid} without a kid (clients cannot select them)",
            evidence,
        )
    return CheckResult(JWKS, Status.PASS, f"{len(jwks)} key(s): {kids}", evidence)


async def observe_key_set(fetcher: Fetcher, report: Report) -> CheckResult:
    """Fetch the report's jwks_uri (when there is one) and add `smart.jwks` and its requests.

    The check result and the exchanges are appended to `report`, so they are stored and
    reported like every discovery observation.
    """
    uri = jwks_uri_of(report.documents.get("smart_configuration"))
    attempts: list[Exchange] | None = None
    if uri is not None:
        # A URL from the server's document: refused if it leads into an internal network.
        attempts = await fetcher.get(
            uri,
            step=ExtractStep.DISCOVERY,
            accept=JWKS_ACCEPT,
            follow_cross_origin=True,
            supplied_by=report.base_url,
        )
        report.exchanges.extend(attempts)
    result = check_jwks(uri, attempts)
    report.results.append(result)
    return result
