"""A circuit breaker per host: stop sending requests to a host that keeps failing.

After `threshold` consecutive failures on one host (connection-level failures, or 5xx answers
that are not FHIR OperationOutcomes), the host's circuit opens and stays open for the rest of
the run: every later request to it fails at once with error class ``circuit_open`` and the
reason (what the failures were), without touching the network. Any other answer from the host
resets its count. There is no half-open state: a nightly run does not come back to a host that
went down, the next night does.

A 5xx carrying an OperationOutcome is the application answering (HAPI, for instance, answers
500 for an id it does not know), so it does not count; an HTML 503 from a gateway does.
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime

#: Error classes that say the host itself is not answering properly.
CONNECTION_FAILURES = frozenset(
    {
        "dns",
        "connection_refused",
        "connect_error",
        "connection_reset",
        "tls",
        "timeout",
        "no_response",
        "read_error",
        "protocol_error",
        "content_length_mismatch",
        "transport",
    }
)
DEFAULT_THRESHOLD = 5


@dataclass(frozen=True, slots=True)
class OpenCircuit:
    """A host whose circuit opened: when, and the failures that opened it."""

    host: str
    opened_at: datetime
    failures: tuple[str, ...]

    @property
    def reason(self) -> str:
        """A one-line account, e.g. '5 consecutive failures (connection_refused x5)'."""
        counts = Counter(self.failures)
        parts = ", ".join(f"{name} x{n}" for name, n in counts.most_common())
        return f"{len(self.failures)} consecutive failures ({parts})"

    def to_json(self) -> dict[str, object]:
        """JSON form for summaries and run notes."""
        return {
            "host": self.host,
            "opened_at": self.opened_at.isoformat(),
            "reason": self.reason,
            "failures": list(self.failures),
        }


@dataclass(slots=True)
class _HostState:
    streak: list[str] = field(default_factory=list)
    opened: OpenCircuit | None = None
    refused: int = 0


def failure_name(
    status: int | None,
    error_class: str | None = None,
    content_type: str | None = None,
    body: bytes = b"",
) -> str | None:
    """What counts against the host in one answer ('HTTP 503', 'timeout', ...), else None."""
    if status is None:
        return error_class if error_class in CONNECTION_FAILURES else None
    if status >= 500 and not _is_operation_outcome(content_type, body):
        return f"HTTP {status}"
    return None


def _is_operation_outcome(content_type: str | None, body: bytes) -> bool:
    return "json" in (content_type or "").lower() and b'"OperationOutcome"' in body[:4096]


class CircuitBreaker:
    """Per-host consecutive-failure counting; thread- and task-safe (no awaits inside)."""

    def __init__(self, threshold: int = DEFAULT_THRESHOLD) -> None:
        if threshold < 1:
            raise ValueError("the breaker threshold must be at least 1")
        self.threshold = threshold
        self._hosts: dict[str, _HostState] = {}
        self._lock = threading.Lock()

    def _state(self, host: str) -> _HostState:
        state = self._hosts.get(host)
        if state is None:
            state = self._hosts[host] = _HostState()
        return state

    def refusal(self, host: str) -> OpenCircuit | None:
        """The open circuit of `host` (and count the refused request), or None when closed."""
        with self._lock:
            state = self._hosts.get(host)
            if state is None or state.opened is None:
                return None
            state.refused += 1
            return state.opened

    def record(
        self,
        host: str,
        status: int | None,
        error_class: str | None = None,
        content_type: str | None = None,
        body: bytes = b"",
    ) -> OpenCircuit | None:
        """Count one answer (or failure) from `host`; returns the circuit if this opened it."""
        failure = failure_name(status, error_class, content_type, body)
        with self._lock:
            state = self._state(host)
            if state.opened is not None:
                return None
            if failure is None:
                state.streak.clear()
                return None
            state.streak.append(failure)
            if len(state.streak) < self.threshold:
                return None
            state.opened = OpenCircuit(host, datetime.now(UTC), tuple(state.streak))
            return state.opened

    def open_circuits(self) -> list[OpenCircuit]:
        """Every host whose circuit opened, in the order they opened."""
        with self._lock:
            opened = [s.opened for s in self._hosts.values() if s.opened is not None]
        return sorted(opened, key=lambda c: c.opened_at)

    def refused(self, host: str) -> int:
        """How many requests to `host` were refused by its open circuit."""
        with self._lock:
            state = self._hosts.get(host)
            return 0 if state is None else state.refused
