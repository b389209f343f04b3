"""What the scoring engine reads: each payer's raw metric inputs, with time and evidence.

Everything probe *observes* (and everything *imported*, such as the authorization log) is a
sequence of :class:`Sample` values, each stamped with the moment it was observed and the evidence
that backs it (run, request, sync-job or check ids), so the engine can keep only what falls in
the scoring :class:`Window`. What is *configured* in ``endpoints.yaml`` (organization status,
lines of business, `EndpointFacts` of :mod:`probe.directory.schema`, the portal URL)
carries no time and always counts.

These types are plain frozen dataclasses with no I/O: tests build them by hand, and
``probe.score.collect`` builds them from the observation store.
"""

from __future__ import annotations

import calendar
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from fractions import Fraction
from typing import Generic, Literal, TypeVar

from probe.directory.schema import EndpointFacts, LineOfBusiness, OrganizationStatus

T = TypeVar("T")

EverythingLevel = Literal["paged", "limited", "unsupported"]
"""How `$everything` behaved: supported with proper paging, supported but limited, or not."""

_EVERYTHING_ORDER: dict[str, int] = {"unsupported": 0, "limited": 1, "paged": 2}


def as_utc(moment: datetime) -> datetime:
    """`moment` as an aware UTC datetime (a naive value is taken to be UTC already)."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def subtract_months(moment: datetime, months: int) -> datetime:
    """`moment` minus `months` calendar months, the day clamped to the target month's length.

    2025-08-31 minus 6 months is 2025-02-28; the time of day and timezone are kept.
    """
    if months < 0:
        raise ValueError("months must not be negative")
    index = moment.year * 12 + (moment.month - 1) - months
    year, month0 = divmod(index, 12)
    day = min(moment.day, calendar.monthrange(year, month0 + 1)[1])
    return moment.replace(year=year, month=month0 + 1, day=day)


@dataclass(frozen=True, slots=True)
class Window:
    """The closed time interval ``[start, end]`` whose observations count (both ends included)."""

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        object.__setattr__(self, "start", as_utc(self.start))
        object.__setattr__(self, "end", as_utc(self.end))
        if self.start > self.end:
            raise ValueError(f"window starts ({self.start}) after it ends ({self.end})")

    @classmethod
    def ending(cls, as_of: datetime, months: int) -> Window:
        """The `months` calendar months ending at `as_of` (see :func:`subtract_months`)."""
        end = as_utc(as_of)
        return cls(subtract_months(end, months), end)

    def contains(self, moment: datetime) -> bool:
        """True when `moment` lies in ``[start, end]`` (a naive value is taken to be UTC)."""
        return self.start <= as_utc(moment) <= self.end

    def to_json(self) -> dict[str, str]:
        """JSON form: ISO 8601 start and end."""
        return {"start": self.start.isoformat(), "end": self.end.isoformat()}


@dataclass(frozen=True, slots=True)
class Sample(Generic[T]):
    """One observed value with the moment it was observed and the evidence behind it."""

    at: datetime
    value: T
    evidence: tuple[str, ...] = ()


def in_window(samples: Iterable[Sample[T]], window: Window) -> list[Sample[T]]:
    """The samples observed inside `window`, in their original order."""
    return [s for s in samples if window.contains(s.at)]


def evidence_of(samples: Iterable[Sample[T]]) -> tuple[str, ...]:
    """The evidence pointers of `samples`, de-duplicated, in first-seen order."""
    seen: dict[str, None] = {}
    for sample in samples:
        for item in sample.evidence:
            seen.setdefault(item, None)
    return tuple(seen)


@dataclass(frozen=True, slots=True)
class RateInput:
    """A success rate's raw counts: `successes` out of `attempts`."""

    successes: int
    attempts: int
    evidence: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.attempts < 0 or self.successes < 0:
            raise ValueError("counts must not be negative")
        if self.successes > self.attempts:
            raise ValueError(f"{self.successes} successes out of only {self.attempts} attempts")

    @property
    def percent(self) -> Fraction | None:
        """The exact success percentage (0-100), or None when there were no attempts."""
        if self.attempts == 0:
            return None
        return Fraction(self.successes * 100, self.attempts)

    def __add__(self, other: RateInput) -> RateInput:
        return RateInput(
            self.successes + other.successes,
            self.attempts + other.attempts,
            _merge(self.evidence, other.evidence),
        )

    @classmethod
    def total(cls, rates: Iterable[RateInput]) -> RateInput:
        """The sum of `rates` (zero attempts when there are none)."""
        out = cls(0, 0)
        for rate in rates:
            out = out + rate
        return out


@dataclass(frozen=True, slots=True)
class AuthCounts:
    """Live-mode patient authorizations by final state, as in the authorization log.

    The success rate is ``(authorized + exchanged + revoked) / (that + failed)``: ``bounced``
    attempts (the patient left before finishing) are excluded, as the report says.
    ``query_ineligible_flags`` counts callbacks that carried a structured eligibility error
    (``error=query_ineligible``); those authorizations are also counted in ``failed``.
    """

    authorized: int = 0
    exchanged: int = 0
    revoked: int = 0
    failed: int = 0
    bounced: int = 0
    query_ineligible_flags: int = 0

    def __post_init__(self) -> None:
        for name in self.__dataclass_fields__:
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative")

    @property
    def successes(self) -> int:
        """Authorizations that reached Authorized, Exchanged or Revoked."""
        return self.authorized + self.exchanged + self.revoked

    @property
    def attempts(self) -> int:
        """Every attempt except bounced ones."""
        return self.successes + self.failed

    def rate(self, evidence: tuple[str, ...] = ()) -> RateInput:
        """These counts as a :class:`RateInput`."""
        return RateInput(self.successes, self.attempts, evidence)

    def __add__(self, other: AuthCounts) -> AuthCounts:
        return AuthCounts(
            self.authorized + other.authorized,
            self.exchanged + other.exchanged,
            self.revoked + other.revoked,
            self.failed + other.failed,
            self.bounced + other.bounced,
            self.query_ineligible_flags + other.query_ineligible_flags,
        )


@dataclass(frozen=True, slots=True)
class RefreshInput:
    """Refresh-token behaviour: was one issued, and the longest authorization period in days.

    `issued` None means probe never saw a token response; `max_days` None means unknown.
    """

    issued: bool | None = None
    max_days: float | None = None

    def __post_init__(self) -> None:
        if self.max_days is not None and self.max_days < 0:
            raise ValueError("max_days must not be negative")


PortalContact = Literal["portal", "email"]
"""How configuration details or client credentials were obtained: a portal, or by email."""


@dataclass(frozen=True, slots=True)
class PayerInputs:
    """Every metric's raw input for one payer (its production endpoint), with evidence.

    Observed and imported inputs are tuples of :class:`Sample`; the engine keeps the samples
    inside the scoring window. Configured inputs (status, lines of business, `facts`, portal,
    `sandbox_declared`) have no time and always count.

    Fields by metric:

    * status: `organization_status`
    * sandbox: `sandbox_checks` (sandbox endpoint answered ``/metadata``), `sandbox_declared`
    * capability_statement: `capability_checks`; smart_configuration: `smart_checks`
    * auth_success and eligibility_errors: `authorizations` (imported), and
      ``facts.eligibility_errors_on_callback``
    * refresh_token: `refresh` (observed token responses), ``facts.refresh_token_max_days``
    * inactive_member_access: ``facts.inactive_member_access_months``, `inactive_access_available`
    * portal_opt_in: ``facts.member_portal_opt_in_required``
    * lines_of_business: `lines_offered`, `lines_supported`
    * request_success: `requests` (steps everything/individual/pagination/retry);
      reference_resolution: `references`
    * carin_bb and clinical: `resources_available` (types that got a 200 in one observation;
      an empty set means requests were made and none got a 200)
    * sync_speed: `sync_durations_s` (completed minus created, sampled at creation)
    * everything: `everything`
    * developer_portal: `portal_url`, `portal_contact`, `portal_checks`
    """

    name: str
    vendor: str | None = None
    lives: int | None = None
    organization_status: OrganizationStatus = OrganizationStatus.NONE
    production_endpoint: bool = True
    lines_offered: frozenset[LineOfBusiness] = frozenset()
    lines_supported: frozenset[LineOfBusiness] = frozenset()
    facts: EndpointFacts = field(default_factory=EndpointFacts)
    inactive_access_available: bool | None = None
    portal_url: str | None = None
    portal_contact: PortalContact | None = None
    portal_checks: tuple[Sample[bool], ...] = ()
    sandbox_declared: bool | None = None
    sandbox_checks: tuple[Sample[bool], ...] = ()
    capability_checks: tuple[Sample[bool], ...] = ()
    smart_checks: tuple[Sample[bool], ...] = ()
    authorizations: tuple[Sample[AuthCounts], ...] = ()
    refresh: tuple[Sample[RefreshInput], ...] = ()
    requests: tuple[Sample[RateInput], ...] = ()
    references: tuple[Sample[RateInput], ...] = ()
    resources_available: tuple[Sample[frozenset[str]], ...] = ()
    sync_durations_s: tuple[Sample[float], ...] = ()
    everything: tuple[Sample[EverythingLevel], ...] = ()

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("a payer needs a name")
        if self.lives is not None and self.lives < 0:
            raise ValueError("lives must not be negative")
        for sample in self.sync_durations_s:
            if sample.value < 0:
                raise ValueError(f"negative sync duration {sample.value} s")


def best_everything(levels: Iterable[EverythingLevel]) -> EverythingLevel | None:
    """The best `$everything` level among `levels` (None when there are none)."""
    best: EverythingLevel | None = None
    for level in levels:
        if best is None or _EVERYTHING_ORDER[level] > _EVERYTHING_ORDER[best]:
            best = level
    return best


def _merge(a: tuple[str, ...], b: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(dict.fromkeys((*a, *b)))


def iter_values(samples: Iterable[Sample[T]]) -> Iterator[T]:
    """The values of `samples`."""
    return (s.value for s in samples)
