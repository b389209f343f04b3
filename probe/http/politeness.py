"""Per-host politeness that adapts to what each host says, plus a total concurrency cap.

A host gets at most `per_host` requests in flight and request starts at least one *interval*
apart; the whole process has at most `total` requests in flight. A request waiting for its
host's interval does not hold one of the `total` slots: those go to requests ready to send.

The interval starts at ``1 / rate`` and never gets shorter (`rate` and `per_host` are hard
ceilings). It gets longer when the host asks (see docs/crawl.md, "Adaptive politeness"):

- a 429 or 503 answer halves the host's pace (twice the interval it actually saw), down to
  `floor_rate` (a sixteenth of `rate` unless given); only one halving per round trip: answers
  to requests sent before the last slow-down say nothing about the new pace;
- ``Retry-After`` (on such an answer) pauses the whole host until it has passed, every request
  to it, not only the one retried (at most `max_pause` seconds);
- rate-limit headers are honoured whenever a host sends them: ``RateLimit-Policy`` (IETF
  httpapi draft, ``10;w=3`` or ``"name";q=10;w=3``) sets a lasting minimum interval ``w / q``;
  the remaining quota and its reset (``RateLimit: remaining=…, reset=…`` or ``"name";r=…;t=…``,
  ``RateLimit-Remaining``/``-Reset``, ``X-RateLimit-Remaining``/``-Reset``) spread what is
  left over the time to the reset, or pause the host until the reset when nothing is left;
- after `recover_after` answers in a row without throttling at the slowed pace, the pace steps
  back up by a quarter, never past `rate`.

Every throttling answer, slow-down and pause is recorded per host (:meth:`Politeness.stats`,
:meth:`Politeness.report`, :meth:`Politeness.notes`), so a run shows when a payer throttled it.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import anyio

#: Answers that say "too fast": the host's pace is halved.
THROTTLE_STATUSES = frozenset({429, 503})
#: The slowest pace the back-off reaches by itself is the rate divided by this (four halvings:
#: 0.625 requests/s at the default 10); a server's own Retry-After, reset or policy can still
#: ask for longer waits.
FLOOR_DIVISOR = 16
#: Answers in a row without throttling, at the slowed pace, before it steps back up.
DEFAULT_RECOVER_AFTER = 30
#: How much one recovery step speeds the pace up (interval divided by it).
RECOVERY_STEP = 1.25
#: The longest pause a Retry-After or a reset imposes on a host (seconds).
DEFAULT_MAX_PAUSE = 60.0
#: Throttle events kept per host (all are counted).
_KEPT_EVENTS = 20
#: Weight of the newest start-to-start gap in the pace a host actually saw.
_SPACING_WEIGHT = 0.3


@dataclass(frozen=True, slots=True)
class ThrottleEvent:
    """One time a host told probe to slow down, and what probe did about it."""

    at: datetime
    status: int
    #: ``retry-after``, ``ratelimit`` (a remaining quota of 0), or ``status`` (neither header).
    signal: str
    #: Seconds the whole host was paused for (0 when it was not).
    paused_s: float
    #: The host's pace before and after, in requests per second.
    rate_before: float
    rate_after: float

    def describe(self) -> str:
        """One line, e.g. '02:41:07 429 (retry-after): paused 2 s, 10/s -> 5/s'."""
        what = f"{self.at:%H:%M:%S} {self.status or 'quota'} ({self.signal})"
        parts = []
        if self.paused_s > 0:
            parts.append(f"paused {self.paused_s:g} s")
        if self.rate_after < self.rate_before:
            parts.append(f"{_rate(self.rate_before)}/s -> {_rate(self.rate_after)}/s")
        return f"{what}: {', '.join(parts) or 'no change'}"


@dataclass(frozen=True, slots=True)
class HostPace:
    """How one host was paced over a run (see :meth:`Politeness.report`)."""

    requests: int
    #: Requests per second between its first and last start (None with fewer than 2 requests).
    effective_rate: float | None
    ceiling_rate: float
    slowest_rate: float
    final_rate: float
    throttled: int
    slowdowns: int
    paused_s: float
    events: tuple[ThrottleEvent, ...]


@dataclass(frozen=True, slots=True)
class RateLimitInfo:
    """What a response's rate-limit headers say; None where a header is absent or unreadable."""

    remaining: int | None = None
    reset_s: float | None = None
    #: Seconds per request under the strictest advertised policy (window / quota).
    policy_interval: float | None = None


@dataclass(slots=True)
class _Host:
    slots: anyio.Semaphore
    interval: float
    next_start: float = 0.0
    last_sent: float | None = None
    first_start: float | None = None
    spacing: float | None = None
    paused_until: float = 0.0
    policy_interval: float = 0.0
    budget_interval: float = 0.0
    budget_until: float = 0.0
    #: Bumped whenever the pace changes: a request that reserved its start earlier re-reserves.
    epoch: int = 0
    last_change: float = -math.inf
    good: int = 0
    in_flight: int = 0
    max_in_flight: int = 0
    requests: int = 0
    throttled: int = 0
    slowdowns: int = 0
    paused_s: float = 0.0
    slowest_interval: float = 0.0
    events: list[ThrottleEvent] = field(default_factory=list)

    def pace(self, now: float) -> float:
        """The interval in force at `now`: the adaptive one, the policy's, the quota's."""
        budget = self.budget_interval if now < self.budget_until else 0.0
        return max(self.interval, self.policy_interval, budget)


class _Slot:
    """One request's hold on its host: tell the gate what the host answered."""

    __slots__ = ("_gate", "_host", "started")

    def __init__(self, gate: Politeness, host: _Host, started: float) -> None:
        self._gate = gate
        self._host = host
        self.started = started

    def answered(self, status: int, headers: Sequence[tuple[str, str]]) -> None:
        """Adapt the host's pace to this answer (its status and rate-limit headers)."""
        self._gate._answered(self._host, self.started, status, headers)


class Politeness:
    """A HostGate: adaptive per-host concurrency and rate limits plus a global concurrency cap.

    `floor_rate` is the slowest the back-off goes by itself (default: `rate` / 16); `clock` and
    `sleep` are seams for tests (default: anyio's clock and sleep).
    """

    def __init__(
        self,
        *,
        per_host: int = 2,
        rate: float = 5.0,
        total: int = 32,
        floor_rate: float | None = None,
        recover_after: int = DEFAULT_RECOVER_AFTER,
        max_pause: float = DEFAULT_MAX_PAUSE,
        clock: Callable[[], float] | None = None,
        sleep: Callable[[float], Awaitable[None]] | None = None,
    ) -> None:
        floor = rate / FLOOR_DIVISOR if floor_rate is None else floor_rate
        if per_host < 1 or total < 1 or rate <= 0 or floor <= 0:
            raise ValueError("per_host and total must be >= 1, rate and floor_rate > 0")
        self.per_host = per_host
        self.interval = 1.0 / rate
        self.floor_interval = max(self.interval, 1.0 / floor)
        self.recover_after = max(1, recover_after)
        self.max_pause = max_pause
        self._clock = clock or anyio.current_time
        self._sleep = sleep or anyio.sleep
        self._total = anyio.CapacityLimiter(total)
        self._hosts: dict[str, _Host] = {}

    def _host(self, host: str) -> _Host:
        state = self._hosts.get(host)
        if state is None:
            state = self._hosts[host] = _Host(
                anyio.Semaphore(self.per_host), self.interval, slowest_interval=self.interval
            )
        return state

    @asynccontextmanager
    async def slot(self, host: str) -> AsyncIterator[_Slot]:
        """Hold one request slot for `host`, waiting for concurrency, pace and any pause.

        The slot's ``answered(status, headers)`` lets the host's answer adapt its pace.
        """
        state = self._host(host)
        async with state.slots:
            while True:
                now = self._clock()
                start = self.reserve(state, now)
                epoch = state.epoch
                if start > now:
                    await self._sleep(start - now)
                if state.epoch == epoch:
                    break
                # The host slowed down or paused while this request waited: reserve again.
            async with self._total:
                started = self._clock()
                self._sent(state, started)
                state.in_flight += 1
                state.max_in_flight = max(state.max_in_flight, state.in_flight)
                try:
                    yield _Slot(self, state, started)
                finally:
                    state.in_flight -= 1

    @staticmethod
    def reserve(state: _Host, now: float) -> float:
        """Reserve the host's next start at or after `now` (and any pause); returns it."""
        start = max(now, state.next_start, state.paused_until)
        state.next_start = start + state.pace(start)
        return start

    def _sent(self, state: _Host, started: float) -> None:
        """A request to the host starts now: count it, and track the pace the host sees."""
        state.requests += 1
        if state.first_start is None:
            state.first_start = started
        if state.last_sent is not None:
            gap = min(max(started - state.last_sent, 0.0), self.floor_interval)
            state.spacing = (
                gap
                if state.spacing is None
                else _SPACING_WEIGHT * gap + (1 - _SPACING_WEIGHT) * state.spacing
            )
        state.last_sent = started

    def _answered(
        self, state: _Host, started: float, status: int, headers: Sequence[tuple[str, str]]
    ) -> None:
        now = self._clock()
        info = rate_limit_info(headers)
        was = state.pace(now)
        if info.policy_interval is not None:
            state.policy_interval = info.policy_interval
        pause = 0.0
        signal = "status"
        if status in THROTTLE_STATUSES:
            told = retry_after_seconds(_header(headers, "retry-after"))
            if told is not None:
                pause, signal = told, "retry-after"
        if info.remaining is not None and info.reset_s is not None:
            if info.remaining <= 0:
                if pause == 0.0:
                    pause, signal = info.reset_s, "ratelimit"
            else:
                state.budget_interval = info.reset_s / info.remaining
                state.budget_until = now + info.reset_s
        if state.pace(now) > was:  # the host's headers ask for a slower pace: keep to it now
            state.slowest_interval = max(state.slowest_interval, state.pace(now))
            self._repace(state, now)
        throttled = status in THROTTLE_STATUSES
        if not throttled and pause <= 0:
            if state.interval > self.interval and started > state.last_change:
                state.good += 1
                if state.good >= self.recover_after:
                    state.interval = max(self.interval, state.interval / RECOVERY_STEP)
                    self._changed(state, now)
            return
        before = 1.0 / state.pace(now)
        changed = False
        if throttled:
            state.throttled += 1
            if started > state.last_change:  # news about the current pace, not an older one
                seen = max(state.interval, state.spacing or 0.0)
                slower = min(self.floor_interval, 2.0 * seen)
                if slower > state.interval:
                    state.interval = slower
                    state.slowdowns += 1
                    changed = True
        pause = min(max(pause, 0.0), self.max_pause)
        if pause > 0 and now + pause > state.paused_until:
            state.paused_s += now + pause - max(now, state.paused_until)
            state.paused_until = now + pause
            changed = True
        if changed:
            self._changed(state, now)
        state.slowest_interval = max(state.slowest_interval, state.pace(now))
        event = ThrottleEvent(
            at=datetime.now(UTC),
            status=status if throttled else 0,
            signal=signal,
            paused_s=round(pause, 3),
            rate_before=before,
            rate_after=1.0 / state.pace(now),
        )
        if len(state.events) < _KEPT_EVENTS:
            state.events.append(event)

    @classmethod
    def _changed(cls, state: _Host, now: float) -> None:
        """The host's adaptive pace changed at `now` (slowed down, paused or recovered)."""
        state.good = 0
        state.last_change = now
        cls._repace(state, now)

    @staticmethod
    def _repace(state: _Host, now: float) -> None:
        """Requests waiting on the old pace reserve again: the next one a whole interval after
        the last request sent (or after a pause)."""
        state.epoch += 1
        base = state.last_sent if state.last_sent is not None else now
        state.next_start = max(state.paused_until, base + state.pace(now))

    def host_pace(self, host: str) -> float:
        """Seconds between request starts in force for `host` now, waits for a pause included
        (the configured interval for a host not seen)."""
        state = self._hosts.get(host)
        if state is None:
            return self.interval
        now = self._clock()
        return max(state.pace(now), state.paused_until - now)

    def adopt_pace(self, host: str, interval: float) -> None:
        """Start `host` at a pace another worker came to (it throttled them): never faster than
        the configured rate nor slower than the floor; a slower pace here is kept."""
        state = self._host(host)
        adopted = min(max(interval, self.interval), self.floor_interval)
        if adopted > state.interval:
            state.interval = adopted
            state.slowest_interval = max(state.slowest_interval, adopted)
            self._changed(state, self._clock())

    def stats(self) -> dict[str, dict[str, int]]:
        """Per host: requests made, the most in flight at once, throttling answers (429/503),
        slow-downs, milliseconds paused, and the slowest and final intervals in milliseconds."""
        now = math.inf  # the lasting pace: a quota's budget runs out by the reset
        return {
            host: {
                "requests": s.requests,
                "max_in_flight": s.max_in_flight,
                "throttled": s.throttled,
                "slowdowns": s.slowdowns,
                "paused_ms": round(s.paused_s * 1000),
                "slowest_interval_ms": round(s.slowest_interval * 1000),
                "interval_ms": round(s.pace(now) * 1000),
            }
            for host, s in sorted(self._hosts.items())
        }

    def report(self) -> dict[str, HostPace]:
        """Per host: its pace over the run (effective, ceiling, slowest, final) and events."""
        now = math.inf  # the lasting pace: a quota's budget runs out by the reset
        out: dict[str, HostPace] = {}
        for host, s in sorted(self._hosts.items()):
            span = (s.last_sent or 0.0) - (s.first_start or 0.0)
            effective = (s.requests - 1) / span if s.requests > 1 and span > 0 else None
            out[host] = HostPace(
                requests=s.requests,
                effective_rate=effective,
                ceiling_rate=1.0 / self.interval,
                slowest_rate=1.0 / s.slowest_interval,
                final_rate=1.0 / s.pace(now),
                throttled=s.throttled,
                slowdowns=s.slowdowns,
                paused_s=s.paused_s,
                events=tuple(s.events),
            )
        return out

    def notes(self) -> list[str]:
        """One line per host that throttled probe or limited its pace (for the run's note)."""
        lines = []
        for host, pace in self.report().items():
            if not pace.events and pace.slowest_rate >= pace.ceiling_rate:
                continue
            what = f"{pace.throttled} throttling answer(s)" if pace.throttled else "rate limits"
            first = f", first at {pace.events[0].at:%H:%M:%S} UTC" if pace.events else ""
            paused = f", paused {pace.paused_s:.1f} s" if pace.paused_s else ""
            lines.append(
                f"{host} throttled probe ({what}{first}): paced {_rate(pace.ceiling_rate)}/s "
                f"down to {_rate(pace.slowest_rate)}/s{paused}, ended at "
                f"{_rate(pace.final_rate)}/s"
            )
        return lines


def _rate(value: float) -> str:
    return f"{value:.3g}"


def _header(headers: Sequence[tuple[str, str]], name: str) -> str | None:
    for key, value in headers:
        if key.lower() == name:
            return value
    return None


def retry_after_seconds(value: str | None, now: datetime | None = None) -> float | None:
    """Parse a Retry-After header given as delta-seconds or an HTTP-date; None when absent/bad."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    if math.isnan(seconds) or math.isinf(seconds):
        return None
    return max(0.0, seconds)


_PARAM = re.compile(r'^\s*([A-Za-z0-9_.*-]+)\s*=\s*"?([^";]*)"?\s*$')


def _items(value: str) -> list[tuple[str, dict[str, str]]]:
    """A structured-field list, loosely: each item's bare value and its ``;key=value`` params."""
    items = []
    for raw in value.split(","):
        parts = raw.split(";")
        head = parts[0].strip().strip('"')
        params = {}
        for part in parts[1:]:
            match = _PARAM.match(part)
            if match:
                params[match.group(1).lower()] = match.group(2).strip()
        items.append((head, params))
    return items


def _number(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        value = float(text.strip().strip('"'))
    except ValueError:
        return None
    return None if math.isnan(value) or math.isinf(value) or value < 0 else value


def _reset_seconds(value: float | None, wall: float) -> float | None:
    """A reset given as delta-seconds, or as a Unix time (seconds or milliseconds)."""
    if value is None:
        return None
    if value > 1e12:
        value = value / 1000 - wall
    elif value > 1e9:
        value = value - wall
    return max(0.0, value)


def rate_limit_info(headers: Sequence[tuple[str, str]], wall: float | None = None) -> RateLimitInfo:
    """Read the rate-limit headers of a response (the IETF draft's and the X- ones).

    ``RateLimit-Policy``: ``10;w=3`` (older drafts) or ``"default";q=10;w=3`` (newer), several
    comma-separated; the strictest gives `policy_interval`. ``RateLimit``: ``limit=10,
    remaining=0, reset=3`` (draft 7) or ``"default";r=0;t=3`` (draft 8 on); else
    ``RateLimit-Remaining``/``RateLimit-Reset``, else ``X-RateLimit-Remaining``/``-Reset``
    (a reset over 10^9 is a Unix time).
    """
    if not any(k.lower().startswith(("ratelimit", "x-ratelimit")) for k, _ in headers):
        return RateLimitInfo()
    wall = time.time() if wall is None else wall
    policy_interval: float | None = None
    policy = _header(headers, "ratelimit-policy")
    if policy:
        for head, params in _items(policy):
            quota = _number(params.get("q")) or _number(head)
            window = _number(params.get("w"))
            if quota and window:
                step = window / quota
                policy_interval = step if policy_interval is None else max(policy_interval, step)
    remaining: float | None = None
    reset: float | None = None
    combined = _header(headers, "ratelimit")
    if combined:
        fields = _dictionary(combined)
        if "remaining" in fields or "reset" in fields:  # draft 7: limit=, remaining=, reset=
            remaining, reset = _number(fields.get("remaining")), _number(fields.get("reset"))
        else:  # draft 8 on: "policy";r=remaining;t=reset, the tightest of several
            for _, params in _items(combined):
                left, until = _number(params.get("r")), _number(params.get("t"))
                if left is not None and (remaining is None or left < remaining):
                    remaining, reset = left, until
    if remaining is None:
        for prefix in ("ratelimit-", "x-ratelimit-"):
            remaining = _number(_first(_header(headers, prefix + "remaining")))
            reset = _number(_first(_header(headers, prefix + "reset")))
            if remaining is not None:
                break
    return RateLimitInfo(
        remaining=int(remaining) if remaining is not None else None,
        reset_s=_reset_seconds(reset, wall),
        policy_interval=policy_interval,
    )


def _dictionary(value: str) -> dict[str, str]:
    """``key=value, key=value`` as a dict with lower-case keys (unreadable members skipped)."""
    fields = {}
    for member in value.split(","):
        match = _PARAM.match(member)
        if match:
            fields[match.group(1).lower()] = match.group(2).strip()
    return fields


def _first(value: str | None) -> str | None:
    """The first item of a possibly comma-separated header value, without its parameters."""
    if value is None:
        return None
    return value.split(",")[0].split(";")[0]
