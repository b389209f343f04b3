"""Politeness: per-host concurrency, minimum interval between starts, total cap."""

from __future__ import annotations

import anyio
import pytest

from probe.http.politeness import Politeness


def test_per_host_concurrency_and_interval() -> None:
    gate = Politeness(per_host=2, rate=50, total=10)
    starts: dict[str, list[float]] = {"a": [], "b": []}

    async def request(host: str) -> None:
        async with gate.slot(host):
            starts[host].append(anyio.current_time())
            await anyio.sleep(0.03)

    began: list[float] = []

    async def go() -> None:
        began.append(anyio.current_time())
        async with anyio.create_task_group() as tg:
            for _ in range(6):
                tg.start_soon(request, "a")
                tg.start_soon(request, "b")

    anyio.run(go)
    stats = gate.stats()
    assert stats["a"] == {"requests": 6, "max_in_flight": 2}
    assert stats["b"]["max_in_flight"] == 2
    # 50 requests/s: the sixth start on a host comes at least 5 intervals after the first could.
    # (A lower bound only: a slow machine makes it later, never earlier.)
    assert max(starts["a"]) - began[0] >= 5 * 0.02


def test_total_cap_spans_hosts() -> None:
    gate = Politeness(per_host=5, rate=1000, total=3)
    in_flight = 0
    peak = 0

    async def request(host: str) -> None:
        nonlocal in_flight, peak
        async with gate.slot(host):
            in_flight += 1
            peak = max(peak, in_flight)
            await anyio.sleep(0.01)
            in_flight -= 1

    async def go() -> None:
        async with anyio.create_task_group() as tg:
            for i in range(20):
                tg.start_soon(request, f"h{i % 5}")

    anyio.run(go)
    assert peak == 3


def test_invalid_settings() -> None:
    with pytest.raises(ValueError):
        Politeness(per_host=0)
