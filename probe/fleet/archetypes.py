"""The named payer behaviours a fleet config assigns, their parameters, and a payer's resolved mix.

Every payer starts from the `exemplary` behaviour; each further archetype changes one thing the
way real payer gateways do (see docs/fleet.md). Parameters are pydantic models so a fleet config
with a misspelt or out-of-range parameter fails at load time with the field named.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from probe.fleet.hostile_params import HOSTILE_PARAMS, HostileSpec


class ArchetypeName(enum.StrEnum):
    """Every archetype a payer can be given."""

    EXEMPLARY = "exemplary"
    NO_SMART_CONFIG = "no_smart_config"
    METADATA_AUTH = "metadata_auth"
    HTML_LOGIN = "html_login"
    LEGACY_STU3 = "legacy_stu3"
    R4_400 = "r4_400"
    DSTU2_CONFORMANCE = "dstu2_conformance"
    OIDC_AT_SMART_PATH = "oidc_at_smart_path"
    SMART_MINIMAL = "smart_minimal"
    EVERYTHING_UNSUPPORTED = "everything_unsupported"
    PAGING_LOOP = "paging_loop"
    PAGING_SKIP = "paging_skip"
    PAGING_CROSS_ORIGIN = "paging_cross_origin"
    DANGLING_REFERENCES = "dangling_references"
    CONTAINED_REFERENCES = "contained_references"
    RATE_LIMITED = "rate_limited"
    SLOW = "slow"
    FLAKY = "flaky"
    HUGE_PATIENT = "huge_patient"
    MOVED = "moved"
    EXPIRING_TOKENS = "expiring_tokens"
    SANDBOX_ONLY = "sandbox_only"
    PLAIN_JSON = "plain_json"
    OPEN_DATA = "open_data"
    EXTRA_TYPES = "extra_types"
    CATEGORY_REQUIRED = "category_required"
    CURSOR_PAGING = "cursor_paging"
    LONG_IDS = "long_ids"
    # Hostile servers (probe/fleet/hostile.py): each payer with one gets its own address.
    TRICKLE = "trickle"
    ENDLESS_BODY = "endless_body"
    HUGE_BODY = "huge_body"
    GZIP_BOMB = "gzip_bomb"
    DEEP_JSON = "deep_json"
    REDIRECT_LOOP = "redirect_loop"
    REDIRECT_CROSS_ORIGIN = "redirect_cross_origin"
    NEXT_LINK_ELSEWHERE = "next_link_elsewhere"
    INVALID_UTF8 = "invalid_utf8"
    LYING_LENGTH = "lying_length"
    NEVER_ANSWERS = "never_answers"


class _Params(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class NoParams(_Params):
    """Archetypes without parameters."""


class NoSmartConfigParams(_Params):
    """`.well-known/smart-configuration` answers `status` (an HTML or empty body)."""

    status: int = Field(default=404, ge=400, le=599)


class MetadataAuthParams(_Params):
    """`/metadata` needs a bearer token: unauthenticated calls get `status` with a Tomcat page."""

    status: Literal[401, 403] = 401


class HtmlLoginParams(_Params):
    """`/metadata` (and optionally the SMART document) answer 200 with an HTML login page."""

    smart_config_too: bool = False


class EverythingUnsupportedParams(_Params):
    """`Patient/{id}/$everything` answers `status` with an OperationOutcome."""

    status: int = Field(default=404, ge=400, le=599)


class PagingLoopParams(_Params):
    """The next link of page `after_page` (0-based) points back to page `back_to`."""

    after_page: int = Field(default=1, ge=0)
    back_to: int = Field(default=0, ge=0)

    @model_validator(mode="after")
    def _earlier(self) -> PagingLoopParams:
        if self.back_to > self.after_page:
            raise ValueError("back_to must not be after after_page (a loop goes back)")
        return self


class PagingSkipParams(_Params):
    """The next link of page `at_page` (0-based) jumps over `skip_pages` pages of data."""

    at_page: int = Field(default=0, ge=0)
    skip_pages: int = Field(default=1, ge=1)


class PagingCrossOriginParams(_Params):
    """From page `at_page` on, next links name another loopback host (another origin).

    With `requires_auth` false the continuation token itself authorises the page (like a
    pre-signed URL), so a client that rightly drops its Authorization header still gets data.
    """

    at_page: int = Field(default=0, ge=0)
    requires_auth: bool = False


class DanglingReferencesParams(_Params):
    """A `share` of EOBs point at Practitioner/Organization ids that do not exist.

    Of those missing ids, `error_500_share` answer 500 with a HAPI-2001 OperationOutcome, the rest
    404 (with an OperationOutcome lacking `issue.code`, as real servers send).
    """

    share: float = Field(default=0.5, ge=0, le=1)
    error_500_share: float = Field(default=0.5, ge=0, le=1)


class RateLimitedParams(_Params):
    """Every `every`-th request to this payer answers 429; or, with `limit`, a real limiter:
    a request beyond `limit` answered in the last `window_s` seconds answers 429.

    `style`: ``seconds`` (Retry-After delta-seconds), ``http_date`` (Retry-After HTTP-date),
    ``ratelimit`` (only the draft RateLimit header, no Retry-After) or ``none`` (a bare 429).
    With `limit`, the wait told is the time until the window has room again (at least 1 s),
    not `retry_after`. Payers naming the same `bucket` share one limiter (a platform limiting
    a whole host); without it each payer has its own.
    """

    every: int = Field(default=5, ge=1)
    retry_after: int = Field(default=1, ge=0, le=3600)
    style: Literal["seconds", "http_date", "ratelimit", "none"] = "seconds"
    limit: int | None = Field(default=None, ge=1)
    window_s: float = Field(default=3.0, gt=0, le=3600)
    bucket: str | None = Field(default=None, min_length=1, max_length=64)


class SlowParams(_Params):
    """Each response is delayed by a seeded log-normal latency (median `median_ms`)."""

    median_ms: float = Field(default=150.0, ge=0)
    sigma: float = Field(default=0.5, ge=0, le=3)
    max_ms: float = Field(default=3000.0, ge=0)


class FlakyParams(_Params):
    """A seeded `error_rate` of requests answer `error_status`; a `reset_rate` are reset."""

    error_rate: float = Field(default=0.1, ge=0, le=1)
    reset_rate: float = Field(default=0.05, ge=0, le=1)
    error_status: Literal[500, 502, 503, 504] = 503

    @model_validator(mode="after")
    def _sum(self) -> FlakyParams:
        if self.error_rate + self.reset_rate > 1:
            raise ValueError("error_rate + reset_rate must not exceed 1")
        return self


class HugePatientParams(_Params):
    """Test patient number `patient` (0-based) has at least `resources` resources."""

    resources: int = Field(default=10_000, ge=100, le=200_000)
    patient: int = Field(default=0, ge=0)


class MovedParams(_Params):
    """The directory's base URL redirects (`status`) to a new base, on another host if asked."""

    status: Literal[301, 302, 307, 308] = 301
    new_host: bool = True


class ExpiringTokensParams(_Params):
    """Access tokens live `lifetime_s` seconds or `max_requests` requests, whichever is first."""

    lifetime_s: float = Field(default=5.0, gt=0)
    max_requests: int | None = Field(default=20, ge=1)
    rotate_refresh_tokens: bool = True


class SandboxOnlyParams(_Params):
    """The production base is down (`refused`: nothing listens; `503`: a gateway error page)."""

    production: Literal["refused", "503"] = "refused"


class ExtraTypesParams(_Params):
    """Patients also have MedicationAdministration, MedicationStatement, ServiceRequest,
    Provenance and RelatedPerson resources, declared and searchable; `$everything` is offered
    only with `everything` true (otherwise it answers as `everything_unsupported`)."""

    everything: bool = False


class CategoryRequiredParams(_Params):
    """`Observation` searches without `category` or `code` answer 400; with
    `declare_combination` the CapabilityStatement says so (US Core search-parameter
    combinations), otherwise only the 400 does."""

    declare_combination: bool = True


class CursorPagingParams(_Params):
    """Searches and `$everything` page with opaque `cursor` links; the first
    `leading_empty_pages` pages have no entries, only a fresh next link."""

    leading_empty_pages: int = Field(default=2, ge=0, le=1000)


class LongIdsParams(_Params):
    """Practitioner and Organization ids are `min_length`..`max_length` characters (R4 allows
    64); `in_everything` false leaves them out of `$everything` so clients must read them."""

    min_length: int = Field(default=80, ge=65, le=256)
    max_length: int = Field(default=120, ge=65, le=256)
    in_everything: bool = False

    @model_validator(mode="after")
    def _order(self) -> LongIdsParams:
        if self.min_length > self.max_length:
            raise ValueError("min_length must not exceed max_length")
        return self


PARAMS: dict[ArchetypeName, type[BaseModel]] = {
    ArchetypeName.EXEMPLARY: NoParams,
    ArchetypeName.NO_SMART_CONFIG: NoSmartConfigParams,
    ArchetypeName.METADATA_AUTH: MetadataAuthParams,
    ArchetypeName.HTML_LOGIN: HtmlLoginParams,
    ArchetypeName.LEGACY_STU3: NoParams,
    ArchetypeName.R4_400: NoParams,
    ArchetypeName.DSTU2_CONFORMANCE: NoParams,
    ArchetypeName.OIDC_AT_SMART_PATH: NoParams,
    ArchetypeName.SMART_MINIMAL: NoParams,
    ArchetypeName.EVERYTHING_UNSUPPORTED: EverythingUnsupportedParams,
    ArchetypeName.PAGING_LOOP: PagingLoopParams,
    ArchetypeName.PAGING_SKIP: PagingSkipParams,
    ArchetypeName.PAGING_CROSS_ORIGIN: PagingCrossOriginParams,
    ArchetypeName.DANGLING_REFERENCES: DanglingReferencesParams,
    ArchetypeName.CONTAINED_REFERENCES: NoParams,
    ArchetypeName.RATE_LIMITED: RateLimitedParams,
    ArchetypeName.SLOW: SlowParams,
    ArchetypeName.FLAKY: FlakyParams,
    ArchetypeName.HUGE_PATIENT: HugePatientParams,
    ArchetypeName.MOVED: MovedParams,
    ArchetypeName.EXPIRING_TOKENS: ExpiringTokensParams,
    ArchetypeName.SANDBOX_ONLY: SandboxOnlyParams,
    ArchetypeName.PLAIN_JSON: NoParams,
    ArchetypeName.OPEN_DATA: NoParams,
    ArchetypeName.EXTRA_TYPES: ExtraTypesParams,
    ArchetypeName.CATEGORY_REQUIRED: CategoryRequiredParams,
    ArchetypeName.CURSOR_PAGING: CursorPagingParams,
    ArchetypeName.LONG_IDS: LongIdsParams,
    **{ArchetypeName(name): params for name, params in HOSTILE_PARAMS.items()},
}

# Archetypes that each replace the CapabilityStatement or the SMART document: at most one each.
METADATA_SHAPES = frozenset(
    {
        ArchetypeName.METADATA_AUTH,
        ArchetypeName.HTML_LOGIN,
        ArchetypeName.LEGACY_STU3,
        ArchetypeName.R4_400,
        ArchetypeName.DSTU2_CONFORMANCE,
    }
)
SMART_SHAPES = frozenset(
    {
        ArchetypeName.NO_SMART_CONFIG,
        ArchetypeName.OIDC_AT_SMART_PATH,
        ArchetypeName.SMART_MINIMAL,
    }
)
PAGING_SHAPES = frozenset(
    {ArchetypeName.PAGING_LOOP, ArchetypeName.PAGING_SKIP, ArchetypeName.PAGING_CROSS_ORIGIN}
)
# Hostile archetypes replace the whole server: at most one, and nothing that needs the ASGI app's
# own transport (latency, resets, moves) besides.
HOSTILE = frozenset(ArchetypeName(name) for name in HOSTILE_PARAMS)


class ArchetypeEntry(BaseModel):
    """One archetype of a payer: written as a bare name or as ``{name: {param: value}}``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: ArchetypeName
    params: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        if isinstance(data, str):
            return {"name": data}
        if isinstance(data, dict) and len(data) == 1 and "name" not in data:
            ((name, params),) = data.items()
            return {"name": name, "params": params if params is not None else {}}
        return data

    @model_validator(mode="after")
    def _check_params(self) -> ArchetypeEntry:
        self.parsed()
        return self

    def parsed(self) -> BaseModel:
        """The validated parameter model of this archetype."""
        try:
            return PARAMS[self.name].model_validate(self.params)
        except ValidationError as exc:
            parts = []
            for err in exc.errors():
                where = ".".join(str(p) for p in err["loc"]) or "(params)"
                parts.append(f"{self.name}.{where}: {err['msg']}")
            raise ValueError("; ".join(parts)) from None


@dataclass(frozen=True, slots=True)
class Behaviour:
    """A payer's resolved archetypes: None for each archetype the payer does not have."""

    names: tuple[ArchetypeName, ...]
    no_smart_config: NoSmartConfigParams | None = None
    metadata_auth: MetadataAuthParams | None = None
    html_login: HtmlLoginParams | None = None
    legacy_stu3: bool = False
    r4_400: bool = False
    dstu2_conformance: bool = False
    oidc_at_smart_path: bool = False
    smart_minimal: bool = False
    everything_unsupported: EverythingUnsupportedParams | None = None
    paging_loop: PagingLoopParams | None = None
    paging_skip: PagingSkipParams | None = None
    paging_cross_origin: PagingCrossOriginParams | None = None
    dangling_references: DanglingReferencesParams | None = None
    contained_references: bool = False
    rate_limited: RateLimitedParams | None = None
    slow: SlowParams | None = None
    flaky: FlakyParams | None = None
    huge_patient: HugePatientParams | None = None
    moved: MovedParams | None = None
    expiring_tokens: ExpiringTokensParams | None = None
    sandbox_only: SandboxOnlyParams | None = None
    plain_json: bool = False
    open_data: bool = False
    extra_types: ExtraTypesParams | None = None
    category_required: CategoryRequiredParams | None = None
    cursor_paging: CursorPagingParams | None = None
    long_ids: LongIdsParams | None = None
    hostile: HostileSpec | None = None

    def has(self, name: ArchetypeName) -> bool:
        """True when the payer has this archetype."""
        return name in self.names


def check_combination(names: list[ArchetypeName]) -> None:
    """Raise ValueError for a repeated archetype or two that replace the same document."""
    seen: set[ArchetypeName] = set()
    for name in names:
        if name in seen:
            raise ValueError(f"archetype {name} is listed twice")
        seen.add(name)
    for group, what in (
        (METADATA_SHAPES, "the CapabilityStatement"),
        (SMART_SHAPES, "the SMART configuration"),
        (PAGING_SHAPES, "the paging links"),
    ):
        clash = sorted(seen & group)
        if len(clash) > 1:
            raise ValueError(f"archetypes {', '.join(clash)} all replace {what}; pick one")
    hostile = sorted(seen & HOSTILE)
    if len(hostile) > 1:
        raise ValueError(f"archetypes {', '.join(hostile)} are all hostile servers; pick one")
    transport = sorted(
        seen
        & {
            ArchetypeName.SLOW,
            ArchetypeName.FLAKY,
            ArchetypeName.MOVED,
            ArchetypeName.SANDBOX_ONLY,
            ArchetypeName.RATE_LIMITED,
        }
    )
    if hostile and transport:
        raise ValueError(
            f"hostile archetype {hostile[0]} cannot be combined with {', '.join(transport)}"
        )


def resolve(entries: list[ArchetypeEntry]) -> Behaviour:
    """Build a payer's Behaviour from its (validated) archetype entries."""
    check_combination([e.name for e in entries])
    fields: dict[str, Any] = {}
    for entry in entries:
        if entry.name is ArchetypeName.EXEMPLARY:
            continue
        params = entry.parsed()
        if entry.name in HOSTILE:
            fields["hostile"] = HostileSpec(str(entry.name), params)  # type: ignore[arg-type]
            continue
        fields[str(entry.name)] = True if isinstance(params, NoParams) else params
    extra = fields.get("extra_types")
    if isinstance(extra, ExtraTypesParams) and not extra.everything:
        # The point of the extra types is the fallback: `$everything` fails as in
        # `everything_unsupported` (whose own parameters win when it is listed too).
        fields.setdefault("everything_unsupported", EverythingUnsupportedParams())
    names = tuple(e.name for e in entries) or (ArchetypeName.EXEMPLARY,)
    return Behaviour(names=names, **fields)
