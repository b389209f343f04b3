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
    assert (stats["a"]["requests"], stats["a"]["max_in_flight"]) == (6, 2)
    assert stats["a"]["throttled"] == stats["a"]["slowdowns"] == 0
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


def test_waiting_for_the_interval_holds_no_total_slot() -> None:
    """A request sleeping on its host's interval leaves the process-wide slot to others."""
    gate = Politeness(per_host=1, rate=2, total=1)  # host a: one start per 0.5 s
    done: dict[str, float] = {}

    async def request(host: str) -> None:
        async with gate.slot(host):
            done[host] = anyio.current_time()

    async def go() -> float:
        t0 = anyio.current_time()
        async with gate.slot("a"):
            pass
        async with anyio.create_task_group() as tg:
            tg.start_soon(request, "a")  # must wait 0.5 s for its interval
            await anyio.sleep(0.05)
            tg.start_soon(request, "b")  # ready now: it must not queue behind "a"
        return t0

    t0 = anyio.run(go)
    assert done["b"] - t0 < 0.3
    assert done["a"] - t0 >= 0.45


def test_a_slow_host_behind_politeness_is_not_recorded_as_failing() -> None:
    """Issue 18, item 2: requests waiting for a slot expired as `no_response`, unsent, and
    opened the breaker. Twelve requests to one host answering in 0.2 s, one at a time, with a
    1 s deadline: every one is answered, its latency is the server's, its wait is apart."""
    import threading
    import time as clock
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from probe.http.breaker import CircuitBreaker
    from probe.http.fetch import Fetcher, new_client
    from probe.http.guard import AddressGuard
    from probe.http.limits import Limits
    from probe.models import Exchange, ExtractStep

    class Slow(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            clock.sleep(0.2)
            body = b'{"resourceType":"Bundle"}'
            self.send_response(200)
            self.send_header("Content-Type", "application/fhir+json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Slow)
    threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    ).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/Patient"
    results: list[Exchange] = []

    async def go() -> None:
        guard = AddressGuard()
        guard.admit(url)
        breaker = CircuitBreaker(3)
        async with new_client(guard=guard) as client:
            limits = Limits(connect_timeout=1, read_timeout=1, total_timeout=1, max_retries=0)
            fetcher = Fetcher(
                client, limits, gate=Politeness(per_host=1, rate=100), breaker=breaker, guard=guard
            )

            async def one() -> None:
                results.extend(await fetcher.get(url, step=ExtractStep.DISCOVERY))

            async with anyio.create_task_group() as tg:
                for _ in range(12):
                    tg.start_soon(one)

    try:
        anyio.run(go)
    finally:
        server.shutdown()
        server.server_close()
    assert [r.status for r in results] == [200] * 12, [r.error_class for r in results]
    assert max(r.latency_ms for r in results) < 1000
    waits = sorted(r.wait_ms for r in results)
    assert waits[-1] > 1500  # the last waited for eleven others: probe's time, recorded apart
