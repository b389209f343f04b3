"""Answers recorded from a fleet process (bench/scale_fleet.py --record), served again cheaply.

bench/scale.py's CPU-bound crawls share the machine's two cores with the fleet that answers
them, where a real payer's servers spend their own CPU elsewhere. This serves, on the same
addresses and port, the exact bytes the fleet sent for each (address, method, target, Accept),
from a table in memory: one asyncio protocol per connection and httptools' parser, no ASGI, no
routing, no documents built. A request not in the table gets a 404 and is counted; the count
is written to `--misses-out` on the way out (bench/scale.py reports it: it must be 0).

    .venv/bin/python bench/replay_fleet.py --recording fleet-0.pickle --misses-out m.json

Loopback only; serves until SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import pickle
import signal
import socket
from pathlib import Path
from typing import Any

import httptools

NOT_FOUND = (
    b"HTTP/1.1 404 Not Found\r\ncontent-type: text/plain\r\ncontent-length: 9\r\n\r\nNot Found"
)
Key = tuple[bytes, bytes, bytes]  # method, target, Accept (one table per address)


class Replay(asyncio.Protocol):
    """One client connection: each request answered from the table, in order."""

    def __init__(self, table: dict[Key, bytes], misses: list[int]) -> None:
        self.table = table
        self.misses = misses
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.url = b""
        self.accept = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Keep the transport."""
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        """Feed the parser; a malformed request closes the connection."""
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            if self.transport is not None:
                self.transport.close()

    def on_message_begin(self) -> None:
        """A new request."""
        self.url = b""
        self.accept = b""

    def on_url(self, url: bytes) -> None:
        """The request target (may come in parts)."""
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        """Keep the Accept header: the fleet's answers were recorded per Accept."""
        if name.lower() == b"accept":
            self.accept = value

    def on_message_complete(self) -> None:
        """Write the recorded answer (or a 404, counted)."""
        key = (self.parser.get_method(), self.url, self.accept)
        answer = self.table.get(key)
        if answer is None:
            self.misses[0] += 1
            answer = NOT_FOUND
        if self.transport is not None:
            self.transport.write(answer)
            if not self.parser.should_keep_alive():
                self.transport.close()


async def serve(data: dict[str, Any]) -> int:
    """Listen on every address of the recording at its port until a signal; the misses."""
    port: int = data["port"]
    by_address: dict[str, dict[Key, bytes]] = {}
    for (address, *key), answer in data["answers"].items():
        by_address.setdefault(address, {})[tuple(key)] = answer
    loop = asyncio.get_running_loop()
    misses = [0]
    servers = []
    for address, table in by_address.items():
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((address, port))
        servers.append(
            await loop.create_server(
                functools.partial(Replay, table, misses), sock=sock, backlog=1024
            )
        )
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print("ready", flush=True)
    await stop.wait()
    for server in servers:
        server.close()
    return misses[0]


def main() -> None:
    """Parse options and serve."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--recording", type=Path, required=True)
    parser.add_argument("--misses-out", type=Path)
    args = parser.parse_args()
    data = pickle.loads(args.recording.read_bytes())  # noqa: S301 (written by this bench)
    misses = asyncio.run(serve(data))
    if args.misses_out is not None:
        args.misses_out.write_text(json.dumps({"misses": misses}))


if __name__ == "__main__":
    main()
