"""The change classifier: what changed between two snapshots of an endpoint, and how much it counts.

Every :class:`Change` has a stable id (the same change always gets the same id, so a change is
stored and notified once per run), a kind, the path it concerns, the values before and after,
and the reason for its kind:

* ``breaking``: a developer's working integration can fail (a removed resource type, interaction,
  search parameter, operation or profile; a changed token or authorize endpoint; a removed
  scope, grant type, SMART capability or PKCE S256; a JWKS key id that disappeared; a new
  fhirVersion; a moved base URL; discovery answering non-2xx; $everything support down; paging
  newly broken; a sync that newly fails).
* ``notable``: worth knowing, nothing should break (additions, settings, recoveries, a slower
  sync beyond the threshold).
* ``cosmetic``: text and dates (description, date, version, names, ...).

The full table is in docs/drift.md. The classifier is pure: it compares two
:class:`~probe.drift.snapshot.EndpointSnapshot` values and never does I/O.

Comparing two endpoints (``probe prerelease``: staging against production) differs from
comparing one endpoint with itself over time in two ways: URLs are compared relative to each
side's base URL (``{base}/../oauth/token``; on another origin by path only), because the hosts
differ by design; and JWKS key ids are notable rather than breaking, because environments
usually sign with their own keys.
"""

from __future__ import annotations

import enum
import posixpath
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from probe.checks.access import ANONYMOUS_PATH, REFUSALS
from probe.checks.metadata import oauth_uris
from probe.drift.settings import DriftThresholds
from probe.drift.snapshot import EndpointSnapshot, Fetched, KeySet, SyncFacts, median_duration
from probe.http.urls import normalize_base, origin_of


class ChangeKind(enum.StrEnum):
    """How much a change matters to a developer whose integration works today."""

    BREAKING = "breaking"
    NOTABLE = "notable"
    COSMETIC = "cosmetic"

    @property
    def rank(self) -> int:
        """0 for breaking, 1 for notable, 2 for cosmetic (sort order, most severe first)."""
        return _RANK[self]

    def at_least(self, other: ChangeKind) -> bool:
        """True when this kind is as severe as `other` or more."""
        return self.rank <= other.rank


_RANK = {ChangeKind.BREAKING: 0, ChangeKind.NOTABLE: 1, ChangeKind.COSMETIC: 2}
BREAKING, NOTABLE, COSMETIC = ChangeKind.BREAKING, ChangeKind.NOTABLE, ChangeKind.COSMETIC


@dataclass(frozen=True, slots=True)
class Change:
    """One classified difference between two snapshots."""

    id: str
    kind: ChangeKind
    path: str
    before: Any
    after: Any
    reason: str

    def to_json(self) -> dict[str, Any]:
        """JSON form: id, kind, path, before, after, reason."""
        return {
            "id": self.id,
            "kind": str(self.kind),
            "path": self.path,
            "before": self.before,
            "after": self.after,
            "reason": self.reason,
        }


# -- URLs ----------------------------------------------------------------------------------------


def relative_url(url: str, base: str) -> str:
    """`url` as seen from `base`: ``{base}/../oauth/token`` on its origin, else by path only.

    Used to compare two environments (staging and production) whose hosts differ by design.
    """
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return url
    if not parts.scheme or not parts.netloc:
        return url
    query = f"?{parts.query}" if parts.query else ""
    if origin_of(url) == origin_of(base):
        rel = posixpath.relpath(parts.path or "/", urlsplit(base).path or "/")
        return "{base}" if rel == "." else f"{{base}}/{rel}{query}"
    return f"{{other origin}}{parts.path or '/'}{query}"


@dataclass(frozen=True, slots=True)
class _Context:
    """How the two sides are compared: URL keys and whether it is the same endpoint."""

    before_base: str
    after_base: str
    same_endpoint: bool

    def url_key(self, value: Any, side: str) -> Any:
        if self.same_endpoint or not isinstance(value, str):
            return value
        return relative_url(value, self.before_base if side == "before" else self.after_base)

    def same_url(self, before: Any, after: Any) -> bool:
        return bool(self.url_key(before, "before") == self.url_key(after, "after"))


# -- helpers -------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Out:
    changes: list[Change] = field(default_factory=list)

    def add(
        self, cid: str, kind: ChangeKind, path: str, before: Any, after: Any, reason: str
    ) -> None:
        self.changes.append(Change(cid, kind, path, before, after, reason))

    def sets(
        self,
        before: Iterable[str],
        after: Iterable[str],
        *,
        cid: str,
        path: Callable[[str], str],
        removed: ChangeKind,
        added: ChangeKind,
        what: str,
        removed_why: str,
        added_why: str = "",
    ) -> None:
        """Removed and added members of two string sets, one change each."""
        b, a = set(before), set(after)
        for value in sorted(b - a):
            self.add(
                f"{cid}.removed:{value}",
                removed,
                path(value),
                value,
                None,
                f"{what} {value} removed: {removed_why}",
            )
        for value in sorted(a - b):
            why = f": {added_why}" if added_why else ""
            self.add(
                f"{cid}.added:{value}",
                added,
                path(value),
                None,
                value,
                f"{what} {value} added{why}",
            )


def _fixed(path: str) -> Callable[[str], str]:
    """A path function that ignores the value (the path of a whole list)."""
    return lambda _value: path


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [v for v in value if isinstance(v, str)]
    return []


def _server_rest(doc: Mapping[str, Any]) -> dict[str, Any] | None:
    rests = [r for r in doc.get("rest") or [] if isinstance(r, dict)]
    for rest in rests:
        if rest.get("mode") == "server":
            return rest
    return None


def _resources(rest: Mapping[str, Any] | None) -> dict[str, dict[str, Any]]:
    if rest is None:
        return {}
    return {
        str(r["type"]): r
        for r in rest.get("resource") or []
        if isinstance(r, dict) and isinstance(r.get("type"), str)
    }


def _codes(items: Any, key: str = "code") -> set[str]:
    return {str(i[key]) for i in items or [] if isinstance(i, dict) and isinstance(i.get(key), str)}


def _op_name(op: Mapping[str, Any]) -> str | None:
    name = op.get("name")
    if isinstance(name, str) and name:
        return name.lstrip("$")
    definition = op.get("definition")
    if isinstance(definition, str) and definition:
        return definition.split("|")[0].rsplit("/", 1)[-1]
    return None


def _operations(items: Any) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for op in items or []:
        if isinstance(op, dict) and (name := _op_name(op)):
            definition = op.get("definition")
            out[name] = definition.split("|")[0] if isinstance(definition, str) else None
    return out


def _search_params(resource: Mapping[str, Any]) -> dict[str, str | None]:
    return {
        str(p["name"]): (str(p["type"]) if isinstance(p.get("type"), str) else None)
        for p in resource.get("searchParam") or []
        if isinstance(p, dict) and isinstance(p.get("name"), str)
    }


def _profiles(resource: Mapping[str, Any]) -> set[str]:
    found = set(_strings(resource.get("supportedProfile")))
    profile = resource.get("profile")
    if isinstance(profile, str):
        found.add(profile)
    elif isinstance(profile, dict) and isinstance(profile.get("reference"), str):
        found.add(profile["reference"])
    return found


def _security_codes(rest: Mapping[str, Any] | None) -> set[str]:
    security = (rest or {}).get("security")
    if not isinstance(security, dict):
        return set()
    return {
        str(c["code"])
        for svc in security.get("service") or []
        if isinstance(svc, dict)
        for c in svc.get("coding") or []
        if isinstance(c, dict) and isinstance(c.get("code"), str)
    }


def _cors(rest: Mapping[str, Any] | None) -> bool:
    security = (rest or {}).get("security")
    return isinstance(security, dict) and security.get("cors") is True


# -- the CapabilityStatement ---------------------------------------------------------------------

_JSON_FORMATS = frozenset({"json", "application/json", "application/fhir+json"})
_REST = "/rest[mode=server]"
#: Top-level CapabilityStatement elements whose change is cosmetic (text, dates, names).
CAPABILITY_COSMETIC = (
    "id",
    "meta",
    "text",
    "url",
    "version",
    "name",
    "title",
    "date",
    "publisher",
    "contact",
    "description",
    "useContext",
    "jurisdiction",
    "purpose",
    "copyright",
    "experimental",
    "language",
    "patchFormat",
    "acceptUnknown",
)
_CAPABILITY_HANDLED = frozenset(
    {
        "resourceType",
        "rest",
        "fhirVersion",
        "format",
        "kind",
        "status",
        "software",
        "implementation",
        "instantiates",
        "implementationGuide",
        "imports",
    }
)
#: Resource elements whose change is cosmetic.
_RESOURCE_COSMETIC = frozenset({"documentation", "extension", "id"})
_RESOURCE_HANDLED = frozenset(
    {
        "type",
        "interaction",
        "searchParam",
        "operation",
        "supportedProfile",
        "profile",
        "searchInclude",
        "searchRevInclude",
    }
)
_BREAKING_OAUTH = ("authorize", "token")


def classify_capability(
    before: Mapping[str, Any], after: Mapping[str, Any], ctx: _Context | None = None
) -> list[Change]:
    """Changes between two CapabilityStatements (both present)."""
    ctx = ctx or _Context("", "", True)
    out = _Out()
    _capability_top(before, after, ctx, out)
    rb, ra = _server_rest(before), _server_rest(after)
    if rb is not None and ra is None:
        out.add(
            "capability.rest_server.removed",
            BREAKING,
            _REST,
            "server",
            None,
            "no rest entry with mode 'server' any more: nothing is declared for clients",
        )
        return out.changes
    if rb is None or ra is None:
        if ra is not None:
            out.add(
                "capability.rest_server.added",
                NOTABLE,
                _REST,
                None,
                "server",
                "a rest entry with mode 'server' is now declared",
            )
        return out.changes
    _capability_rest(rb, ra, ctx, out)
    _capability_resources(_resources(rb), _resources(ra), out)
    return sort_changes(out.changes)


def _capability_top(
    before: Mapping[str, Any], after: Mapping[str, Any], ctx: _Context, out: _Out
) -> None:
    vb, va = before.get("fhirVersion"), after.get("fhirVersion")
    if vb != va:
        out.add(
            "capability.fhir_version.changed",
            BREAKING,
            "/fhirVersion",
            vb,
            va,
            f"fhirVersion {vb} became {va}: clients parse resources by FHIR version",
        )
    fb, fa = set(_strings(before.get("format"))), set(_strings(after.get("format")))
    for fmt in sorted(fb - fa):
        json_like = fmt.split(";")[0].strip().lower() in _JSON_FORMATS
        out.add(
            f"capability.format.removed:{fmt}",
            BREAKING if json_like else NOTABLE,
            "/format",
            fmt,
            None,
            f"format {fmt} no longer declared" + (": apps exchange JSON" if json_like else ""),
        )
    for fmt in sorted(fa - fb):
        out.add(
            f"capability.format.added:{fmt}", NOTABLE, "/format", None, fmt, f"format {fmt} added"
        )
    for key, why in (
        ("kind", "what the statement describes changed"),
        ("status", "the statement's publication status changed"),
    ):
        if before.get(key) != after.get(key):
            out.add(
                f"capability.{key}.changed",
                NOTABLE,
                f"/{key}",
                before.get(key),
                after.get(key),
                why,
            )
    sb, sa = before.get("software") or {}, after.get("software") or {}
    if isinstance(sb, dict) and isinstance(sa, dict):
        if sb.get("name") != sa.get("name"):
            out.add(
                "capability.software.name_changed",
                NOTABLE,
                "/software/name",
                sb.get("name"),
                sa.get("name"),
                "the server software changed",
            )
        for key in sorted((set(sb) | set(sa)) - {"name"}):
            if sb.get(key) != sa.get(key):
                out.add(
                    f"capability.software.changed:{key}",
                    COSMETIC,
                    f"/software/{key}",
                    sb.get(key),
                    sa.get(key),
                    f"software.{key} changed (text only)",
                )
    ib, ia = before.get("implementation") or {}, after.get("implementation") or {}
    if isinstance(ib, dict) and isinstance(ia, dict):
        if not ctx.same_url(ib.get("url"), ia.get("url")):
            out.add(
                "capability.implementation_url.changed",
                NOTABLE,
                "/implementation/url",
                ib.get("url"),
                ia.get("url"),
                "the base URL the statement declares changed",
            )
        for key in sorted((set(ib) | set(ia)) - {"url"}):
            if ib.get(key) != ia.get(key):
                out.add(
                    f"capability.implementation.changed:{key}",
                    COSMETIC,
                    f"/implementation/{key}",
                    ib.get(key),
                    ia.get(key),
                    f"implementation.{key} changed (text only)",
                )
    for key in ("instantiates", "implementationGuide", "imports"):
        out.sets(
            _strings(before.get(key)),
            _strings(after.get(key)),
            cid=f"capability.{key}",
            path=_fixed(f"/{key}"),
            removed=NOTABLE,
            added=NOTABLE,
            what=f"{key}",
            removed_why="the server no longer claims conformance to it",
        )
    for key in sorted((set(before) | set(after)) - _CAPABILITY_HANDLED):
        if before.get(key) != after.get(key):
            known = key in CAPABILITY_COSMETIC
            out.add(
                f"capability.field.changed:{key}",
                COSMETIC,
                f"/{key}",
                before.get(key),
                after.get(key),
                f"{key} changed" + (" (text, dates and names only)" if known else ""),
            )


def _capability_rest(
    rb: Mapping[str, Any], ra: Mapping[str, Any], ctx: _Context, out: _Out
) -> None:
    out.sets(
        [f"system.{c}" for c in _codes(rb.get("interaction"))],
        [f"system.{c}" for c in _codes(ra.get("interaction"))],
        cid="capability.interaction",
        path=lambda v: f"{_REST}/interaction[code={v.split('.', 1)[1]}]",
        removed=BREAKING,
        added=NOTABLE,
        what="system interaction",
        removed_why="clients using it fail",
    )
    ob, oa = _operations(rb.get("operation")), _operations(ra.get("operation"))
    _operation_changes("system", ob, oa, f"{_REST}/operation", out)
    ub, ua = oauth_uris({"rest": [rb]}), oauth_uris({"rest": [ra]})
    security = f"{_REST}/security/extension[oauth-uris]"
    for name in sorted(set(ub) | set(ua)):
        b, a = ub.get(name), ua.get(name)
        critical = name in _BREAKING_OAUTH
        if b and not a:
            out.add(
                f"capability.oauth_uri.removed:{name}",
                BREAKING if critical else NOTABLE,
                f"{security}/{name}",
                b,
                None,
                f"the {name} endpoint is no longer declared"
                + (": apps cannot authorize" if critical else ""),
            )
        elif a and not b:
            out.add(
                f"capability.oauth_uri.added:{name}",
                NOTABLE,
                f"{security}/{name}",
                None,
                a,
                f"a {name} endpoint is now declared",
            )
        elif b and a and not ctx.same_url(b, a):
            out.add(
                f"capability.oauth_uri.changed:{name}",
                BREAKING if critical else NOTABLE,
                f"{security}/{name}",
                b,
                a,
                f"the {name} endpoint moved"
                + (": apps configured with the old URL fail to authorize" if critical else ""),
            )
    if _cors(rb) and not _cors(ra):
        out.add(
            "capability.cors.disabled",
            BREAKING,
            f"{_REST}/security/cors",
            True,
            (ra.get("security") or {}).get("cors")
            if isinstance(ra.get("security"), dict)
            else None,
            "CORS no longer declared: browser-based apps fail",
        )
    elif _cors(ra) and not _cors(rb):
        out.add(
            "capability.cors.enabled",
            NOTABLE,
            f"{_REST}/security/cors",
            None,
            True,
            "CORS now declared: browser-based apps can call the API",
        )
    out.sets(
        _security_codes(rb),
        _security_codes(ra),
        cid="capability.security_service",
        path=_fixed(f"{_REST}/security/service"),
        removed=NOTABLE,
        added=NOTABLE,
        what="security service",
        removed_why="clients discover authorization from it",
    )
    for key in ("documentation", "mode"):
        if rb.get(key) != ra.get(key):
            out.add(
                f"capability.rest.changed:{key}",
                COSMETIC,
                f"{_REST}/{key}",
                rb.get(key),
                ra.get(key),
                f"rest.{key} changed (text only)",
            )


def _operation_changes(
    owner: str, ob: Mapping[str, str | None], oa: Mapping[str, str | None], path: str, out: _Out
) -> None:
    for name in sorted(set(ob) - set(oa)):
        out.add(
            f"capability.operation.removed:{owner}.{name}",
            BREAKING,
            f"{path}[name={name}]",
            f"${name}",
            None,
            f"operation ${name} ({owner}) no longer declared: apps that call it fail",
        )
    for name in sorted(set(oa) - set(ob)):
        out.add(
            f"capability.operation.added:{owner}.{name}",
            NOTABLE,
            f"{path}[name={name}]",
            None,
            f"${name}",
            f"operation ${name} ({owner}) now declared",
        )
    for name in sorted(set(ob) & set(oa)):
        if ob[name] != oa[name]:
            out.add(
                f"capability.operation.definition_changed:{owner}.{name}",
                NOTABLE,
                f"{path}[name={name}]/definition",
                ob[name],
                oa[name],
                f"operation ${name} ({owner}) now points at another OperationDefinition",
            )


def _capability_resources(
    rb: Mapping[str, dict[str, Any]], ra: Mapping[str, dict[str, Any]], out: _Out
) -> None:
    for rtype in sorted(set(rb) - set(ra)):
        out.add(
            f"capability.resource.removed:{rtype}",
            BREAKING,
            f"{_REST}/resource[type={rtype}]",
            rtype,
            None,
            f"resource type {rtype} no longer declared: apps that read or search it fail",
        )
    for rtype in sorted(set(ra) - set(rb)):
        out.add(
            f"capability.resource.added:{rtype}",
            NOTABLE,
            f"{_REST}/resource[type={rtype}]",
            None,
            rtype,
            f"resource type {rtype} now declared",
        )
    for rtype in sorted(set(rb) & set(ra)):
        _capability_resource(rtype, rb[rtype], ra[rtype], out)


def _capability_resource(rtype: str, b: Mapping[str, Any], a: Mapping[str, Any], out: _Out) -> None:
    at = f"{_REST}/resource[type={rtype}]"
    out.sets(
        [f"{rtype}.{c}" for c in _codes(b.get("interaction"))],
        [f"{rtype}.{c}" for c in _codes(a.get("interaction"))],
        cid="capability.interaction",
        path=lambda v: f"{at}/interaction[code={v.split('.', 1)[1]}]",
        removed=BREAKING,
        added=NOTABLE,
        what="interaction",
        removed_why="clients using it fail",
    )
    # Ids carry the resource type; `sets` prefixes the value, so qualify the values here.
    pb, pa = _search_params(b), _search_params(a)
    out.sets(
        [f"{rtype}.{n}" for n in pb],
        [f"{rtype}.{n}" for n in pa],
        cid="capability.search_param",
        path=lambda v: f"{at}/searchParam[name={v.split('.', 1)[1]}]",
        removed=BREAKING,
        added=NOTABLE,
        what="search parameter",
        removed_why="searches using it fail or silently ignore it",
    )
    for name in sorted(set(pb) & set(pa)):
        if pb[name] != pa[name]:
            out.add(
                f"capability.search_param.type_changed:{rtype}.{name}",
                BREAKING,
                f"{at}/searchParam[name={name}]/type",
                pb[name],
                pa[name],
                f"search parameter {rtype}.{name} changed type: existing query values may fail",
            )
    _operation_changes(
        rtype,
        _operations(b.get("operation")),
        _operations(a.get("operation")),
        f"{at}/operation",
        out,
    )
    out.sets(
        [f"{rtype}|{p}" for p in _profiles(b)],
        [f"{rtype}|{p}" for p in _profiles(a)],
        cid="capability.profile",
        path=_fixed(f"{at}/supportedProfile"),
        removed=BREAKING,
        added=NOTABLE,
        what="profile",
        removed_why="data is no longer claimed to conform to it",
    )
    for key in ("searchInclude", "searchRevInclude"):
        out.sets(
            [f"{rtype}.{v}" for v in _strings(b.get(key))],
            [f"{rtype}.{v}" for v in _strings(a.get(key))],
            cid=f"capability.{key}",
            path=_fixed(f"{at}/{key}"),
            removed=BREAKING,
            added=NOTABLE,
            what=key,
            removed_why="queries using it fail or return less",
        )
    for key in sorted((set(b) | set(a)) - _RESOURCE_HANDLED):
        if b.get(key) != a.get(key):
            cosmetic = key in _RESOURCE_COSMETIC
            out.add(
                f"capability.resource_setting.changed:{rtype}.{key}",
                COSMETIC if cosmetic else NOTABLE,
                f"{at}/{key}",
                b.get(key),
                a.get(key),
                f"{rtype}.{key} changed" + (" (text only)" if cosmetic else ""),
            )


# -- the SMART configuration ---------------------------------------------------------------------

#: Endpoint fields: (kind when changed or removed, why).
SMART_ENDPOINTS: dict[str, tuple[ChangeKind, str]] = {
    "authorization_endpoint": (BREAKING, "apps send patients to the old URL and fail to authorize"),
    "token_endpoint": (BREAKING, "apps exchange codes and refresh tokens at the old URL and fail"),
    "issuer": (BREAKING, "id_tokens are validated against the issuer"),
    "jwks_uri": (NOTABLE, "apps fetch keys from it (the keys themselves are compared too)"),
    "registration_endpoint": (NOTABLE, "dynamic registration moved"),
    "management_endpoint": (NOTABLE, "the patient's app management page moved"),
    "introspection_endpoint": (NOTABLE, "token introspection moved"),
    "revocation_endpoint": (NOTABLE, "token revocation moved"),
    "userinfo_endpoint": (NOTABLE, "the OpenID userinfo endpoint moved"),
}
#: List fields: (change id part, what, why a removal breaks).
SMART_LISTS: dict[str, tuple[str, str, str]] = {
    "capabilities": ("capability", "SMART capability", "apps relying on it fail"),
    "scopes_supported": ("scope", "scope", "apps requesting it get invalid_scope"),
    "grant_types_supported": ("grant_type", "grant type", "apps using it cannot get tokens"),
    "token_endpoint_auth_methods_supported": (
        "auth_method",
        "client authentication method",
        "clients registered with it cannot authenticate",
    ),
    "token_endpoint_auth_signing_alg_values_supported": (
        "signing_alg",
        "client assertion signing algorithm",
        "clients signing with it cannot authenticate",
    ),
    "response_types_supported": ("response_type", "response type", "apps using it fail"),
}
_SMART_HANDLED = frozenset({*SMART_ENDPOINTS, *SMART_LISTS, "code_challenge_methods_supported"})


def classify_smart(
    before: Mapping[str, Any], after: Mapping[str, Any], ctx: _Context | None = None
) -> list[Change]:
    """Changes between two SMART configurations (both present)."""
    ctx = ctx or _Context("", "", True)
    out = _Out()
    for key, (kind, why) in SMART_ENDPOINTS.items():
        b, a = before.get(key), after.get(key)
        if b == a or (b and a and ctx.same_url(b, a)):
            continue
        if b and not a:
            removed_kind = BREAKING if key == "jwks_uri" else kind
            out.add(
                f"smart.endpoint.removed:{key}",
                removed_kind,
                f"/{key}",
                b,
                a,
                f"{key} removed: {why}",
            )
        elif a and not b:
            out.add(f"smart.endpoint.added:{key}", NOTABLE, f"/{key}", b, a, f"{key} now declared")
        else:
            out.add(f"smart.endpoint.changed:{key}", kind, f"/{key}", b, a, f"{key} changed: {why}")
    for key, (part, what, why) in SMART_LISTS.items():
        out.sets(
            _strings(before.get(key)),
            _strings(after.get(key)),
            cid=f"smart.{part}",
            path=_fixed(f"/{key}"),
            removed=BREAKING,
            added=NOTABLE,
            what=what,
            removed_why=why,
        )
    pb = set(_strings(before.get("code_challenge_methods_supported")))
    pa = set(_strings(after.get("code_challenge_methods_supported")))
    path = "/code_challenge_methods_supported"
    for method in sorted(pb - pa):
        s256 = method == "S256"
        out.add(
            f"smart.pkce.removed:{method}",
            BREAKING if s256 else NOTABLE,
            path,
            method,
            None,
            "PKCE S256 removed: SMART apps are required to use it and fail"
            if s256
            else f"PKCE method {method} removed",
        )
    for method in sorted(pa - pb):
        out.add(
            f"smart.pkce.added:{method}",
            NOTABLE,
            path,
            None,
            method,
            "PKCE plain added: SMART forbids it (weaker protection of the code)"
            if method == "plain"
            else f"PKCE method {method} added",
        )
    for key in sorted((set(before) | set(after)) - _SMART_HANDLED):
        if before.get(key) != after.get(key):
            out.add(
                f"smart.field.changed:{key}",
                COSMETIC,
                f"/{key}",
                before.get(key),
                after.get(key),
                f"{key} changed (not used by SMART clients to connect)",
            )
    return sort_changes(out.changes)


# -- the key set ---------------------------------------------------------------------------------


def classify_jwks(before: KeySet, after: KeySet, *, same_endpoint: bool = True) -> list[Change]:
    """Changes between two observed key sets (by kid; keys without kid by thumbprint)."""
    out = _Out()
    path = "jwks_uri#/keys"
    if before.served and not after.served:
        out.add(
            "jwks.unavailable",
            BREAKING,
            "jwks_uri",
            before.uri,
            after.problem,
            f"the key set is no longer served ({after.problem}): apps cannot verify id_tokens",
        )
        return out.changes
    if after.served and not before.served:
        out.add(
            "jwks.available",
            NOTABLE,
            "jwks_uri",
            before.problem,
            after.uri,
            "the key set is now served",
        )
        return out.changes
    if not (before.served and after.served):
        return out.changes
    kb = {k.name: k for k in before.keys}
    ka = {k.name: k for k in after.keys}
    removed_kind = BREAKING if same_endpoint else NOTABLE
    cross = "" if same_endpoint else " (another environment may sign with its own keys)"
    for name in sorted(set(kb) - set(ka)):
        out.add(
            f"jwks.key.removed:{name}",
            removed_kind,
            f"{path}[kid={name}]",
            kb[name].to_json(),
            None,
            f"key {name} was removed (rotated): tokens signed with it no longer verify{cross}",
        )
    for name in sorted(set(ka) - set(kb)):
        out.add(
            f"jwks.key.added:{name}",
            NOTABLE,
            f"{path}[kid={name}]",
            None,
            ka[name].to_json(),
            f"key {name} was added",
        )
    for name in sorted(set(kb) & set(ka)):
        b, a = kb[name], ka[name]
        if b.thumbprint and a.thumbprint and b.thumbprint != a.thumbprint:
            out.add(
                f"jwks.key.replaced:{name}",
                removed_kind,
                f"{path}[kid={name}]",
                b.to_json(),
                a.to_json(),
                f"key {name} has new key material under the same kid: cached keys fail{cross}",
            )
        elif (b.alg, b.use, b.kty) != (a.alg, a.use, a.kty):
            out.add(
                f"jwks.key.changed:{name}",
                NOTABLE,
                f"{path}[kid={name}]",
                b.to_json(),
                a.to_json(),
                f"key {name} changed its alg, use or type",
            )
    return sort_changes(out.changes)


# -- behaviour -----------------------------------------------------------------------------------

EVERYTHING_ORDER = {"unsupported": 0, "limited": 1, "paged": 2}
OUTCOME_ORDER = {"failed": 0, "auth_failed": 0, "timeout": 1, "partial": 2, "completed": 3}
#: Sync findings that mean paging is broken.
PAGING_PROBLEMS = frozenset(
    {
        "paging_loop",
        "next_link_cross_origin",
        "paging_repeats",
        "empty_pages",
        "paging_incomplete",
        "page_failed",
    }
)


def _fetch_changes(
    name: str, path: str, before: Fetched | None, after: Fetched | None, out: _Out
) -> None:
    if before is None or after is None:
        return
    b, a = before.describe(), after.describe()
    if before.ok and not after.ok:
        out.add(
            f"behaviour.{name}.unavailable",
            BREAKING,
            path,
            b,
            a,
            f"{path} answered {b} before and {a} now: discovery fails",
        )
    elif after.ok and not before.ok:
        out.add(f"behaviour.{name}.recovered", NOTABLE, path, b, a, f"{path} answers {a} again")
    elif not before.ok and b != a:
        out.add(
            f"behaviour.{name}.status_changed", NOTABLE, path, b, a, f"{path} still fails, now {a}"
        )


def _anonymous_access_changes(before: Fetched | None, after: Fetched | None, out: _Out) -> None:
    """A data search without a token: refused before and answered now, or the reverse."""
    if before is None or after is None or before.status is None or after.status is None:
        return
    path = f"GET [base]/{ANONYMOUS_PATH} (no token)"
    b, a = before.describe(), after.describe()
    if not before.ok and after.ok:
        out.add(
            "behaviour.anonymous_access.opened",
            BREAKING,
            path,
            b,
            a,
            f"a search without a token answered {b} before and {a} now: member data may be "
            "served to anyone",
        )
    elif before.ok and not after.ok and after.status in REFUSALS:
        out.add(
            "behaviour.anonymous_access.closed",
            NOTABLE,
            path,
            b,
            a,
            f"a search without a token is refused again ({a})",
        )


def _moved(fetched: Fetched) -> bool:
    target = fetched.redirected_to
    if target is None or fetched.url is None:
        return False
    return origin_of(target) != origin_of(fetched.url) or (
        urlsplit(target).path.rstrip("/") != urlsplit(fetched.url).path.rstrip("/")
    )


def _base_url_changes(
    before: Fetched | None, after: Fetched | None, ctx: _Context, out: _Out
) -> None:
    if before is None or after is None or after.status is None:
        return
    tb, ta = before.redirected_to, after.redirected_to
    path = "GET [base]/metadata"
    if ta and (tb is None or not ctx.same_url(tb, ta)):
        where = "another origin" if after.url and origin_of(ta) != origin_of(after.url) else ta
        if _moved(after):
            out.add(
                "base_url.moved",
                BREAKING,
                path,
                tb or before.url,
                ta,
                f"the base URL now redirects to {where}: clients must not follow a base URL to "
                "another server, and tokens are bound to the old one",
            )
        else:
            out.add(
                "base_url.redirect_added",
                NOTABLE,
                path,
                tb or before.url,
                ta,
                f"the base URL now answers after a redirect to {ta}",
            )
    elif tb and ta is None:
        out.add(
            "base_url.redirect_removed",
            NOTABLE,
            path,
            tb,
            after.url,
            "the base URL answers without a redirect again",
        )


def _worst_everything(syncs: Iterable[SyncFacts]) -> str | None:
    levels = [s.everything for s in syncs if s.everything in EVERYTHING_ORDER]
    return min(levels, key=EVERYTHING_ORDER.__getitem__) if levels else None


def _sync_changes(
    before: tuple[SyncFacts, ...],
    after: tuple[SyncFacts, ...],
    thresholds: DriftThresholds,
    out: _Out,
) -> None:
    if not before or not after:
        return
    eb, ea = _worst_everything(before), _worst_everything(after)
    if eb is not None and ea is not None and eb != ea:
        down = EVERYTHING_ORDER[ea] < EVERYTHING_ORDER[eb]
        out.add(
            f"behaviour.everything.{'down' if down else 'up'}",
            BREAKING if down else NOTABLE,
            "Patient/$everything",
            eb,
            ea,
            f"$everything support went from {eb} to {ea}"
            + (": apps relying on it get less or nothing" if down else ""),
        )
    pb = set().union(*(s.findings for s in before)) & PAGING_PROBLEMS
    pa = set().union(*(s.findings for s in after)) & PAGING_PROBLEMS
    for code in sorted(pa - pb):
        out.add(
            f"behaviour.paging.broken:{code}",
            BREAKING,
            "Bundle.link[next]",
            None,
            code,
            f"paging is newly broken ({code}): clients following next links lose or repeat data",
        )
    for code in sorted(pb - pa):
        out.add(
            f"behaviour.paging.fixed:{code}",
            NOTABLE,
            "Bundle.link[next]",
            code,
            None,
            f"paging problem {code} is gone",
        )
    _outcome_changes(before, after, out)
    mb, ma = median_duration(before), median_duration(after)
    if mb is not None and ma is not None:
        grew = ma - mb
        if ma > mb * (1 + thresholds.slower_percent / 100) and grew > thresholds.slower_seconds:
            out.add(
                "behaviour.sync.slower",
                NOTABLE,
                "sync median duration (s)",
                round(mb, 3),
                round(ma, 3),
                f"the median sync took {ma:.1f} s, up from {mb:.1f} s (more than "
                f"+{thresholds.slower_percent:g}% and +{thresholds.slower_seconds:g} s)",
            )


def _worst_outcome(syncs: Iterable[SyncFacts]) -> str | None:
    known = [s.outcome for s in syncs if s.outcome in OUTCOME_ORDER]
    return min(known, key=lambda o: OUTCOME_ORDER[o or ""]) if known else None


def _outcome_changes(
    before: tuple[SyncFacts, ...], after: tuple[SyncFacts, ...], out: _Out
) -> None:
    def rank(outcome: str | None) -> int | None:
        return OUTCOME_ORDER.get(outcome or "")

    by_b = {s.label: s.outcome for s in before}
    by_a = {s.label: s.outcome for s in after}
    shared = sorted(set(by_b) & set(by_a))
    if shared:
        pairs = [(label, by_b[label], by_a[label]) for label in shared]
    else:  # two environments' patients: compare the worst outcome of each side
        pairs = [("", _worst_outcome(before), _worst_outcome(after))]
    for label, b, a in pairs:
        rb, ra = rank(b), rank(a)
        if rb is None or ra is None or rb == ra:
            continue
        suffix = f":{label}" if label else ""
        path = f"sync[{label}]" if label else "sync"
        who = f"the sync of {label}" if label else "the test-patient sync"
        if rb >= OUTCOME_ORDER["partial"] and ra < OUTCOME_ORDER["partial"]:
            out.add(
                f"behaviour.sync.failed{suffix}",
                BREAKING,
                path,
                b,
                a,
                f"{who} now ends {a} (was {b}): apps cannot get the patient's data",
            )
        elif ra >= OUTCOME_ORDER["partial"] and rb < OUTCOME_ORDER["partial"]:
            out.add(
                f"behaviour.sync.recovered{suffix}", NOTABLE, path, b, a, f"{who} works again ({a})"
            )
        else:
            out.add(
                f"behaviour.sync.outcome_changed{suffix}",
                NOTABLE,
                path,
                b,
                a,
                f"{who} ends {a}, was {b}",
            )


# -- everything ----------------------------------------------------------------------------------


def classify(
    before: EndpointSnapshot,
    after: EndpointSnapshot,
    *,
    thresholds: DriftThresholds | None = None,
    same_endpoint: bool | None = None,
) -> list[Change]:
    """Every change from `before` to `after`, most severe first (then by id).

    `same_endpoint` (default: whether both base URLs are equal) selects how URLs and JWKS keys
    are compared; see the module docstring.
    """
    thresholds = thresholds or DriftThresholds()
    same = (
        normalize_base(before.base_url) == normalize_base(after.base_url)
        if same_endpoint is None
        else same_endpoint
    )
    ctx = _Context(normalize_base(before.base_url), normalize_base(after.base_url), same)
    out = _Out()
    _document_changes(before, after, ctx, out)
    if before.jwks is not None and after.jwks is not None:
        out.changes += classify_jwks(before.jwks, after.jwks, same_endpoint=same)
    _fetch_changes(
        "metadata", "GET [base]/metadata", before.metadata_fetch, after.metadata_fetch, out
    )
    _fetch_changes(
        "smart_configuration",
        "GET [base]/.well-known/smart-configuration",
        before.smart_fetch,
        after.smart_fetch,
        out,
    )
    _base_url_changes(before.metadata_fetch, after.metadata_fetch, ctx, out)
    _anonymous_access_changes(before.anonymous_fetch, after.anonymous_fetch, out)
    _sync_changes(before.syncs, after.syncs, thresholds, out)
    return sort_changes(out.changes)


def _document_changes(
    before: EndpointSnapshot, after: EndpointSnapshot, ctx: _Context, out: _Out
) -> None:
    for name, label, b, a, fetched in (
        (
            "capability",
            "CapabilityStatement",
            before.capability,
            after.capability,
            after.metadata_fetch,
        ),
        ("smart", "SMART configuration", before.smart, after.smart, after.smart_fetch),
    ):
        if b is not None and a is not None:
            changes = (
                classify_capability(b, a, ctx)
                if name == "capability"
                else classify_smart(b, a, ctx)
            )
            out.changes += changes
        elif b is not None and a is None and (fetched is None or fetched.ok):
            # A non-2xx answer is reported as behaviour; a 2xx without the document is this.
            out.add(
                f"{name}.document.missing",
                BREAKING,
                "/",
                label,
                None,
                f"a 2xx answer no longer carries the {label}",
            )
        elif a is not None and b is None:
            out.add(
                f"{name}.document.served", NOTABLE, "/", None, label, f"the {label} is served now"
            )


def sort_changes(changes: Iterable[Change]) -> list[Change]:
    """Most severe first, then by id (a stable order for reports and tests)."""
    return sorted(changes, key=lambda c: (c.kind.rank, c.id))


def counts_by_kind(changes: Iterable[Change | Any]) -> dict[str, int]:
    """How many changes of each kind (every kind present, zero when absent)."""
    counts = {str(k): 0 for k in ChangeKind}
    for change in changes:
        counts[str(change.kind)] += 1
    return counts
