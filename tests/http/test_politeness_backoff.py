"""Adaptive politeness: a host that throttles is slowed down, paused and recorded, on a recorded
clock (time only moves when the gate sleeps), so every assertion is about order and spacing."""

from __future__ import annotations

import itertools
from collections.abc import Awaitable, Callable, Sequence

import anyio
import httpx
import pytest

from probe.http.fetch import Fetcher
from probe.http.limits import Limits
from probe.http.politeness import Politeness, rate_limit_info
from probe.models import ExtractStep


class Clock:
    """A clock that moves only when someone sleeps on it (and by `latency` per answer)."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += max(seconds, 0.0)
        await anyio.sleep(0)


def gate_on(clock: Clock, **kwargs: float) -> Politeness:
    options: dict[str, float] = {"per_host": 2, "rate": 10, "total": 8, **kwargs}
    return Politeness(
        per_host=int(options.pop("per_host")),
        rate=options.pop("rate"),
        total=int(options.pop("total")),
        clock=clock,
        sleep=clock.sleep,
        **options,  # type: ignore[arg-type]
    )


async def send(
    gate: Politeness,
    clock: Clock,
    host: str = "a",
    status: int = 200,
    headers: Sequence[tuple[str, str]] = (),
) -> float:
    """One request through the gate; returns when it started."""
    async with gate.slot(host) as held:
        started = clock()
        held.answered(status, headers)
    return started


def run(body: Callable[[], Awaitable[list[float]]]) -> list[float]:
    return [round(t, 6) for t in anyio.run(body)]


def test_starts_are_spaced_by_the_rate() -> None:
    clock = Clock()
    gate = gate_on(clock)

    async def go() -> list[float]:
        return [await send(gate, clock) for _ in range(4)]

    assert run(go) == [0.0, 0.1, 0.2, 0.3]


def test_a_429_halves_the_pace_and_another_halves_it_again_down_to_the_floor() -> None:
    clock = Clock()
    gate = gate_on(clock, floor_rate=2.0)  # slowest by itself: 0.5 s apart

    async def go() -> list[float]:
        starts = [await send(gate, clock), await send(gate, clock)]
        starts.append(await send(gate, clock, status=429))  # at 0.2: 10/s -> 5/s
        starts += [await send(gate, clock), await send(gate, clock, status=429)]  # -> 2.5/s
        starts += [await send(gate, clock), await send(gate, clock, status=503)]  # -> 2/s
        starts.append(await send(gate, clock))
        return starts

    assert run(go) == [0.0, 0.1, 0.2, 0.4, 0.6, 1.0, 1.4, 1.9]
    stats = gate.stats()["a"]
    assert stats["throttled"] == 3 and stats["slowdowns"] == 3
    assert stats["slowest_interval_ms"] == stats["interval_ms"] == 500
    pace = gate.report()["a"]
    assert [e.status for e in pace.events] == [429, 429, 503]
    assert [e.signal for e in pace.events] == ["status"] * 3
    assert pace.ceiling_rate == 10 and pace.final_rate == 2.0


def test_answers_to_requests_sent_before_a_slow_down_slow_it_down_once() -> None:
    clock = Clock()
    gate = gate_on(clock)

    both_sent = anyio.Event()
    answers: list[anyio.Event] = [anyio.Event(), anyio.Event()]

    async def request(i: int) -> None:
        async with gate.slot("a") as held:
            if i == 1:
                both_sent.set()
            await both_sent.wait()  # both in flight, sent at the old pace
            if i == 1:
                await answers[0].wait()
            held.answered(429, ())
            answers[i].set()

    async def go() -> list[float]:
        async with anyio.create_task_group() as tg:
            tg.start_soon(request, 0)
            tg.start_soon(request, 1)
        return [await send(gate, clock), await send(gate, clock)]

    starts = run(go)
    assert starts[1] - starts[0] == pytest.approx(0.2)  # halved once, not twice
    assert gate.stats()["a"]["throttled"] == 2 and gate.stats()["a"]["slowdowns"] == 1


def test_retry_after_pauses_every_request_to_the_host_and_no_other_host() -> None:
    clock = Clock()
    gate = gate_on(clock)

    async def go() -> list[float]:
        throttled = await send(gate, clock, status=429, headers=[("Retry-After", "3")])
        other = await send(gate, clock, host="b")  # another host: not paused
        next_one = await send(gate, clock)  # a different request to the throttled host
        return [throttled, other, next_one]

    throttled, other, next_one = run(go)
    assert other == throttled  # b went at once
    assert next_one >= throttled + 3.0  # a waited for the Retry-After
    assert gate.stats()["a"]["paused_ms"] == 3000
    assert gate.stats()["b"]["throttled"] == 0
    assert gate.report()["a"].events[0].signal == "retry-after"
    assert gate.notes() and gate.notes()[0].startswith("a throttled probe")
    assert len(gate.notes()) == 1  # b is not mentioned


def test_a_request_already_waiting_is_held_back_by_a_later_pause() -> None:
    """A request that reserved its start before the 429 came re-reserves after the pause."""
    clock = Clock()
    gate = gate_on(clock, per_host=2)
    starts: dict[str, float] = {}

    async def waiter() -> None:
        async with gate.slot("a"):
            starts["waiter"] = clock()

    async def go() -> list[float]:
        async with anyio.create_task_group() as tg, gate.slot("a") as first:
            tg.start_soon(waiter)  # reserves 0.1 and sleeps on the clock
            await anyio.sleep(0)
            first.answered(429, [("Retry-After", "5")])
        return [starts["waiter"]]

    assert run(go)[0] >= 5.0


def test_the_pace_recovers_after_good_answers_but_never_past_the_rate() -> None:
    clock = Clock()
    gate = gate_on(clock, recover_after=3)

    async def go() -> list[float]:
        await send(gate, clock, status=429)  # 10/s -> 5/s
        return [await send(gate, clock) for _ in range(20)]

    starts = run(go)
    gaps = [round(b - a, 6) for a, b in itertools.pairwise(starts)]
    assert gaps[0] == pytest.approx(0.2)
    assert gaps == sorted(gaps, reverse=True)  # never slower again
    assert min(gaps) == pytest.approx(0.1)  # back at the ceiling, never faster
    assert gate.stats()["a"]["interval_ms"] == 100


def test_an_advertised_policy_sets_the_pace_before_any_429() -> None:
    clock = Clock()
    gate = gate_on(clock)  # ceiling 10/s; the host says 10 requests per 3 s

    async def go() -> list[float]:
        starts = [await send(gate, clock, headers=[("RateLimit-Policy", "10;w=3")])]
        starts += [await send(gate, clock) for _ in range(2)]
        return starts

    starts = run(go)
    assert starts[2] - starts[1] == pytest.approx(0.3)
    assert gate.stats()["a"]["throttled"] == 0


def test_a_policy_looser_than_the_rate_never_speeds_past_it() -> None:
    clock = Clock()
    gate = gate_on(clock)

    async def go() -> list[float]:
        return [
            await send(gate, clock, headers=[("RateLimit-Policy", '"burst";q=500;w=3')])
            for _ in range(3)
        ]

    assert run(go) == [0.0, 0.1, 0.2]


def test_an_exhausted_quota_pauses_the_host_until_its_reset() -> None:
    clock = Clock()
    gate = gate_on(clock)

    async def go() -> list[float]:
        first = await send(gate, clock, headers=[("RateLimit", "limit=10, remaining=0, reset=4")])
        return [first, await send(gate, clock)]

    first, second = run(go)
    assert second - first >= 4.0
    assert gate.report()["a"].events[0].signal == "ratelimit"


def test_a_remaining_quota_is_spread_over_the_time_to_its_reset() -> None:
    clock = Clock()
    gate = gate_on(clock)

    async def go() -> list[float]:
        headers = [("X-RateLimit-Remaining", "4"), ("X-RateLimit-Reset", "2")]
        return [await send(gate, clock, headers=headers), await send(gate, clock)]

    first, second = run(go)
    assert second - first == pytest.approx(0.5)  # 4 requests left for 2 s


@pytest.mark.parametrize(
    ("headers", "remaining", "reset", "policy"),
    [
        ([("RateLimit", "limit=100, remaining=0, reset=7")], 0, 7.0, None),
        ([("RateLimit", '"default";r=3;t=9, "daily";r=50;t=3600')], 3, 9.0, None),
        ([("RateLimit-Policy", '"burst";q=100;w=60, "daily";q=1000;w=86400')], None, None, 86.4),
        ([("RateLimit-Policy", "10;w=3"), ("RateLimit-Remaining", "2")], 2, None, 0.3),
        ([("RateLimit-Remaining", "5"), ("RateLimit-Reset", "12")], 5, 12.0, None),
        ([("X-RateLimit-Remaining", "0"), ("X-RateLimit-Reset", "1000000030")], 0, 30.0, None),
        ([("x-ratelimit-remaining", "1"), ("x-ratelimit-reset", "1000000005000")], 1, 5.0, None),
        ([("RateLimit", "nonsense"), ("RateLimit-Policy", "w=3")], None, None, None),
        ([("Content-Type", "application/fhir+json")], None, None, None),
    ],
)
def test_rate_limit_headers(
    headers: list[tuple[str, str]], remaining: int | None, reset: float | None, policy: float | None
) -> None:
    info = rate_limit_info(headers, wall=1_000_000_000.0)
    assert info.remaining == remaining
    assert info.reset_s == (pytest.approx(reset) if reset is not None else None)
    assert info.policy_interval == (pytest.approx(policy) if policy is not None else None)


def test_the_fetcher_tells_the_gate_and_the_whole_host_waits_for_retry_after() -> None:
    """Through the Fetcher: a 429 with Retry-After on one URL holds back another URL on the
    same host (sent after the pause), not a URL on another host."""
    clock = Clock()
    gate = gate_on(clock)
    sent: list[tuple[str, float]] = []

    def answer(request: httpx.Request) -> httpx.Response:
        sent.append((f"{request.url.host}{request.url.path}", clock()))
        if len(sent) == 1:
            return httpx.Response(429, headers={"Retry-After": "2"})
        return httpx.Response(200, json={"resourceType": "Bundle"})

    async def go() -> None:
        async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as client:
            fetcher = Fetcher(client, Limits(max_retries=0), gate=gate, sleep=clock.sleep)
            for url in ("http://a.example/metadata", "http://b.example/x", "http://a.example/y"):
                await fetcher.get(url, step=ExtractStep.DISCOVERY)

    anyio.run(go)
    assert sent[0] == ("a.example/metadata", 0.0)  # throttled
    assert sent[1] == ("b.example/x", 0.0)  # another host: at once
    assert sent[2][0] == "a.example/y" and sent[2][1] >= 2.0  # the same host: after the pause
    assert gate.stats()["a.example"]["throttled"] == 1
    assert gate.stats()["a.example"]["paused_ms"] == 2000
    assert gate.stats()["b.example"]["throttled"] == 0


def test_the_retry_of_an_exhausted_quota_waits_for_its_reset() -> None:
    """A 429 carrying only the draft RateLimit header: the retry waits for its reset."""
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    def answer(request: httpx.Request) -> httpx.Response:
        if not waits:
            return httpx.Response(429, headers={"RateLimit": "limit=10, remaining=0, reset=3"})
        return httpx.Response(200, json={"resourceType": "Bundle"})

    async def go() -> list[int | None]:
        async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as client:
            fetcher = Fetcher(client, Limits(max_retries=1), sleep=sleep)
            attempts = await fetcher.get("http://a.example/metadata", step=ExtractStep.DISCOVERY)
        return [e.status for e in attempts]

    assert anyio.run(go) == [429, 200]
    assert waits == [3.0]
