"""What a check looks at (one fetched document) and how a verdict carries its evidence."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, Self

from probe.http.body import Parsed, parse_json
from probe.models import CheckResult, CheckSpec, Exchange, Status


class Observed(Protocol):
    """Anything a check reads that ends in one HTTP exchange."""

    @property
    def exchange(self) -> Exchange:  # pragma: no cover - protocol
        """The final attempt."""
        ...


@dataclass(frozen=True, slots=True)
class DocumentObservation:
    """A document fetch: every attempt (retries included) and the final body parsed as JSON."""

    base_url: str
    attempts: tuple[Exchange, ...]
    parsed: Parsed

    @property
    def exchange(self) -> Exchange:
        """The final attempt."""
        return self.attempts[-1]

    @classmethod
    def of(cls, base_url: str, attempts: list[Exchange], *, max_depth: int) -> Self:
        """The attempts with the final body parsed as JSON (nesting capped at `max_depth`)."""
        return cls(base_url, tuple(attempts), parse_json(attempts[-1], max_depth=max_depth))


def verdict(
    spec: CheckSpec, status: Status, message: str, obs: Observed, **extra: Any
) -> CheckResult:
    """A check result whose evidence is the observation's exchange plus `extra` fields."""
    return CheckResult(spec, status, message, obs.exchange.evidence(**extra))


def skipped(spec: CheckSpec, obs: Observed, why: str) -> CheckResult:
    """A `skip` result: the check could not apply (e.g. there is no document to check)."""
    return verdict(spec, Status.SKIP, f"skipped: {why}", obs)
