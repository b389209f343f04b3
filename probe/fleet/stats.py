"""Per-host request accounting: counts, concurrency high-water marks and a header log.

Tests of other layers assert politeness (at most N requests in flight per host) and credential
hygiene (no Authorization header reached another origin) against these numbers. Header logs
are bounded (`max_records` per fleet, oldest dropped first).
"""

from __future__ import annotations

import hashlib
import time
from collections import Counter, deque
from collections.abc import MutableMapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class RequestRecord:
    """One request as the fleet saw it (headers exactly as sent, names lower-cased)."""

    host: str
    port: int
    method: str
    path: str
    query: str
    headers: tuple[tuple[str, str], ...]
    payer: str | None
    status: int | None
    started: float
    duration_ms: float
    reset: bool = False

    def header(self, name: str) -> str | None:
        """The first value of a (case-insensitive) request header, or None."""
        lowered = name.lower()
        return next((v for k, v in self.headers if k == lowered), None)

    @property
    def authorization(self) -> str | None:
        """The Authorization header the client sent, if any."""
        return self.header("authorization")

    def to_json(self) -> dict[str, Any]:
        """A JSON form with credential header values replaced by a short fingerprint."""
        return {
            "host": self.host,
            "port": self.port,
            "method": self.method,
            "path": self.path,
            "query": self.query,
            "payer": self.payer,
            "status": self.status,
            "reset": self.reset,
            "duration_ms": round(self.duration_ms, 1),
            "started": round(self.started, 4),  # the server's clock (perf_counter), seconds
            "headers": [[k, _mask(k, v)] for k, v in self.headers],
        }


def _mask(name: str, value: str) -> str:
    if name not in ("authorization", "cookie", "proxy-authorization"):
        return value
    scheme = value.split(" ", 1)[0] if " " in value else ""
    digest = hashlib.sha256(value.encode()).hexdigest()[:12]
    return f"{scheme} <sha256:{digest}>".strip()


@dataclass(slots=True)
class HostStats:
    """Counters for one loopback address."""

    requests: int = 0
    in_flight: int = 0
    max_concurrent: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    resets: int = 0

    def to_json(self) -> dict[str, Any]:
        """The counters as JSON."""
        return {
            "requests": self.requests,
            "in_flight": self.in_flight,
            "max_concurrent": self.max_concurrent,
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            "resets": self.resets,
        }


class FleetStats:
    """Request counters per host (and per payer), and the bounded log of request headers."""

    def __init__(self, *, log_headers: bool = True, max_records: int = 50_000) -> None:
        self.log_headers = log_headers
        self.hosts: dict[str, HostStats] = {}
        self.payer_requests: Counter[str] = Counter()
        self.payer_in_flight: Counter[str] = Counter()
        self.payer_max_concurrent: Counter[str] = Counter()
        self._records: deque[RequestRecord] = deque(maxlen=max_records)

    def host(self, address: str) -> HostStats:
        """The counters of one address (created empty on first use)."""
        stats = self.hosts.get(address)
        if stats is None:
            stats = self.hosts[address] = HostStats()
        return stats

    def started(self, address: str, payer: str | None) -> float:
        """Count a request in; returns its start time for :meth:`finished`."""
        stats = self.host(address)
        stats.requests += 1
        stats.in_flight += 1
        stats.max_concurrent = max(stats.max_concurrent, stats.in_flight)
        if payer is not None:
            self.payer_requests[payer] += 1
            self.payer_in_flight[payer] += 1
            self.payer_max_concurrent[payer] = max(
                self.payer_max_concurrent[payer], self.payer_in_flight[payer]
            )
        return time.perf_counter()

    def finished(
        self,
        scope: MutableMapping[str, Any],
        address: str,
        port: int,
        payer: str | None,
        status: int | None,
        started: float,
        reset: bool,
    ) -> None:
        """Count a request out and log it."""
        stats = self.host(address)
        stats.in_flight -= 1
        if payer is not None:
            self.payer_in_flight[payer] -= 1
        if reset:
            stats.resets += 1
        elif status is not None:
            stats.statuses[status] += 1
        if not self.log_headers or self._records.maxlen == 0:
            return
        headers = tuple(
            (k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in scope["headers"]
        )
        self._records.append(
            RequestRecord(
                host=address,
                port=port,
                method=scope["method"],
                path=scope["path"],
                query=scope.get("query_string", b"").decode("latin-1"),
                headers=headers,
                payer=payer,
                status=status,
                started=started,
                duration_ms=(time.perf_counter() - started) * 1000,
                reset=reset,
            )
        )

    def records(self, host: str | None = None, payer: str | None = None) -> list[RequestRecord]:
        """Logged requests, oldest first, optionally only those to one host and/or payer."""
        return [
            r
            for r in self._records
            if (host is None or r.host == host) and (payer is None or r.payer == payer)
        ]

    def authorization_by_host(self) -> dict[str, set[str]]:
        """Every distinct Authorization header value each host received."""
        out: dict[str, set[str]] = {}
        for record in self._records:
            value = record.authorization
            if value is not None:
                out.setdefault(record.host, set()).add(value)
        return out

    @property
    def total_requests(self) -> int:
        """Requests counted on all hosts."""
        return sum(h.requests for h in self.hosts.values())

    def reset(self) -> None:
        """Forget every counter and record (in-flight counts are kept)."""
        for stats in self.hosts.values():
            stats.requests = 0
            stats.max_concurrent = stats.in_flight
            stats.statuses.clear()
            stats.resets = 0
        self.payer_requests.clear()
        self.payer_max_concurrent = Counter(+self.payer_in_flight)
        self._records.clear()

    def snapshot(self, host: str | None = None, records: int = 0) -> dict[str, Any]:
        """A JSON-able view: per-host counters (one host or all) and the last `records` records."""
        hosts = {h: s.to_json() for h, s in sorted(self.hosts.items()) if host in (None, h)}
        out: dict[str, Any] = {
            "hosts": hosts,
            "total_requests": sum(v["requests"] for v in hosts.values()),
        }
        if host is None:
            out["payers"] = {
                p: {"requests": n, "max_concurrent": self.payer_max_concurrent[p]}
                for p, n in sorted(self.payer_requests.items())
            }
        if records:
            logged = self.records(host=host)
            out["records"] = [r.to_json() for r in logged[-records:]]
        return out
