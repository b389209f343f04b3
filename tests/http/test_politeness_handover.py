"""A host handed from one worker to another keeps the pace the first came to (issue 17 with
adaptive politeness): the pace is read from one gate and adopted by another, within bounds."""

from __future__ import annotations

import itertools

import anyio

from tests.http.test_politeness_backoff import Clock, gate_on, run, send


def test_the_pace_a_throttled_host_came_to_is_read_and_adopted_within_bounds() -> None:
    clock = Clock()
    first = gate_on(clock, floor_rate=1.0)  # 10/s ceiling, 1/s floor
    second = gate_on(clock, floor_rate=1.0)
    assert first.host_pace("a") == 0.1  # a host not seen: the configured interval

    async def go() -> list[float]:
        await send(first, clock, status=429)  # halved: 0.2 s apart
        await send(first, clock, status=429)  # again: 0.4 s apart
        paced = first.host_pace("a")
        second.adopt_pace("a", paced)
        starts = [await send(second, clock) for _ in range(3)]
        return [paced, *[b - a for a, b in itertools.pairwise(starts)]]

    paced, *gaps = run(go)
    assert paced == 0.4
    assert gaps == [0.4, 0.4]  # the second worker starts at the first one's pace
    assert second.stats()["a"]["slowest_interval_ms"] == 400


def test_adopted_pace_is_clamped_and_never_speeds_a_host_up() -> None:
    clock = Clock()
    gate = gate_on(clock, floor_rate=1.0)
    gate.adopt_pace("fast", 0.01)  # faster than --rate: the rate stays the ceiling
    gate.adopt_pace("slow", 60.0)  # slower than the floor: the floor
    assert gate.host_pace("fast") == 0.1
    assert gate.host_pace("slow") == 1.0
    gate.adopt_pace("slow", 0.2)  # a faster pace from elsewhere does not undo a slower one
    assert gate.host_pace("slow") == 1.0


def test_a_pause_counts_in_the_pace_handed_on() -> None:
    clock = Clock()
    gate = gate_on(clock)

    async def go() -> float:
        await send(gate, clock, status=429, headers=[("retry-after", "5")])
        return gate.host_pace("a")

    assert anyio.run(go) >= 4.9  # the next holder must not start before the pause ends
