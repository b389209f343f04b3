"""Serving a fleet on real loopback sockets: one uvicorn server per address, one event loop.

All servers share one port number on distinct addresses (127.0.0.2, 127.0.0.3, ...), so each
payer host is its own origin and per-host politeness is observable. The sockets are bound here
(not by uvicorn) so that a port already taken on any address is retried with another port.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import socket
import time
from collections.abc import AsyncIterator, Callable, Generator

import anyio
import uvicorn

from probe.fleet.app import Fleet
from probe.fleet.config import FleetConfig
from probe.fleet.hostile import HostileServer
from probe.fleet.sites import hostile_addresses, layout

log = logging.getLogger(__name__)


class _Server(uvicorn.Server):
    """A uvicorn server that leaves signal handling to whoever runs the fleet."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


def _free_port(address: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe_sock:
        probe_sock.bind((address, 0))
        port: int = probe_sock.getsockname()[1]
        return port


def bind_all(addresses: list[str], port: int) -> list[socket.socket]:
    """Listening sockets on every address at `port` (OSError, with none left open, on failure)."""
    sockets: list[socket.socket] = []
    try:
        for address in addresses:
            # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY only on sockets whose proto says TCP
            # (with proto 0, Nagle + delayed ACKs add 40 ms to every response).
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((address, port))
            sock.listen(1024)
            sock.setblocking(False)
    except OSError:
        for sock in sockets:
            sock.close()
        raise
    return sockets


def bind_fleet(
    config: FleetConfig, port: int | None = None, attempts: int = 20
) -> tuple[int, list[socket.socket]]:
    """Pick a port free on all the fleet's addresses (or use `port`) and bind them all.

    The sockets are in address order: the ASGI app's addresses, then the hostile payers'.
    """
    ordinary, sites = layout(config, 0)
    addresses = ordinary + hostile_addresses(sites)
    last: OSError | None = None
    for _ in range(1 if port else attempts):
        chosen = port or _free_port(addresses[0])
        try:
            return chosen, bind_all(addresses, chosen)
        except OSError as exc:
            last = exc
    raise OSError(f"could not bind the fleet's {len(addresses)} address(es): {last}")


def _uvicorn_config(fleet: Fleet, address: str) -> uvicorn.Config:
    return uvicorn.Config(
        fleet.app,
        host=address,
        port=fleet.port,
        log_level="warning",
        log_config=None,
        access_log=False,
        lifespan="off",
        proxy_headers=False,
        server_header=False,
        date_header=False,
        timeout_keep_alive=30,  # longer than clients' idle expiry: no keep-alive races
        timeout_graceful_shutdown=2,
        backlog=1024,
    )


def with_hosts(config: FleetConfig, hosts: int | None) -> FleetConfig:
    """The config with another host count (validated again)."""
    if hosts is None or hosts == config.hosts:
        return config
    data = config.model_dump(mode="json", exclude_defaults=True)
    data["hosts"] = hosts
    return FleetConfig.model_validate(data)


@contextlib.asynccontextmanager
async def running_fleet(
    config: FleetConfig,
    hosts: int | None = None,
    port: int | None = None,
    *,
    clock: Callable[[], float] = time.time,
) -> AsyncIterator[Fleet]:
    """Serve the fleet on loopback for the duration of the block; yields the live Fleet.

    `port` None (or 0) picks a port free on every address, retrying on bind failures. On exit
    (normal, exception or cancellation) every server is stopped and every socket closed.
    """
    config = with_hosts(config, hosts)
    chosen, sockets = bind_fleet(config, port or None)
    fleet = Fleet(config, port=chosen, clock=clock)
    servers = [_Server(_uvicorn_config(fleet, address)) for address in fleet.addresses]
    hostile = HostileServer(fleet)
    ordinary = sockets[: len(servers)]
    try:
        async with anyio.create_task_group() as tg:
            for server, sock in zip(servers, ordinary, strict=True):
                tg.start_soon(server.serve, [sock])
            tg.start_soon(hostile.serve, sockets[len(servers) :])
            try:
                with anyio.fail_after(10):
                    while not all(s.started for s in servers) or not _hostile_up(hostile, fleet):
                        if any(s.should_exit for s in servers):
                            raise RuntimeError("a fleet server failed to start")
                        await anyio.sleep(0.01)
                yield fleet
            finally:
                for server in servers:
                    server.should_exit = True
                hostile.stop()
    finally:
        for sock in sockets:
            sock.close()


def _hostile_up(hostile: HostileServer, fleet: Fleet) -> bool:
    return hostile.started or not fleet.hostile_addresses


def serve_until_signal(
    fleet: Fleet, sockets: list[socket.socket], on_ready: Callable[[], None] | None = None
) -> None:
    """Serve in this thread until SIGINT or SIGTERM (`probe fleet serve` and the benches)."""

    async def main() -> None:
        stop = anyio.Event()

        async def watch_signals() -> None:
            with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                async for _ in signals:
                    stop.set()
                    return

        async with anyio.create_task_group() as tg:
            tg.start_soon(watch_signals)
            await serve_forever(fleet, sockets, stop, on_ready)
            tg.cancel_scope.cancel()

    anyio.run(main)


async def serve_forever(
    fleet: Fleet,
    sockets: list[socket.socket],
    stop: anyio.Event,
    on_ready: Callable[[], None] | None = None,
) -> None:
    """Serve until `stop` is set (the CLI sets it on SIGINT/SIGTERM); `on_ready` once listening."""
    servers = [_Server(_uvicorn_config(fleet, address)) for address in fleet.addresses]
    hostile = HostileServer(fleet)
    try:
        async with anyio.create_task_group() as tg:
            for server, sock in zip(servers, sockets[: len(servers)], strict=True):
                tg.start_soon(server.serve, [sock])
            tg.start_soon(hostile.serve, sockets[len(servers) :])
            while (  # noqa: ASYNC110
                not all(s.started for s in servers) or not _hostile_up(hostile, fleet)
            ) and not stop.is_set():
                await anyio.sleep(0.01)
            if on_ready is not None:
                on_ready()
            await stop.wait()
            for server in servers:
                server.should_exit = True
            hostile.stop()
    finally:
        for sock in sockets:
            sock.close()
