"""One fleet process of bench/scale.py: `probe fleet serve` on a loopback /24 of its own.

`probe fleet serve` places hosts on 127.0.0.2 upwards, at most 64 of them, and probe's per-host
politeness keys on the host name alone (not the port), so fleet processes on the same
addresses with different ports would look like the same hosts to the crawl. This runs what
`probe fleet serve` runs with host number i at 127.0.SUBNET.(2 + i) instead, so that several
processes (SUBNET 10, 11, ...) serve distinct hosts: 5 processes x 60 hosts = 300 hosts.

    .venv/bin/python bench/scale_fleet.py --config fleet.yaml --subnet 10 \
        --directory-out endpoints.yaml

It writes the directory (and its secrets file beside it) once every server listens, prints
nothing else, and serves until SIGTERM/SIGINT. Loopback only.
"""

from __future__ import annotations

import argparse
import os
import pickle
from http import HTTPStatus
from pathlib import Path
from typing import Any


def main() -> None:
    """Parse options and serve the fleet on 127.0.SUBNET.x until a signal."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--subnet", type=int, required=True, help="third octet, 10-250")
    parser.add_argument("--directory-out", type=Path, required=True)
    parser.add_argument(
        "--record",
        type=Path,
        help="keep every answer (per address, method, target and Accept) and write them here "
        "on the way out, for bench/replay_fleet.py",
    )
    args = parser.parse_args()
    if not 10 <= args.subnet <= 250:
        parser.error("--subnet must be 10-250 (127.0.0.x and 127.0.1.x are the fleet's own)")

    import probe.fleet.sites as sites
    from probe.fleet.app import Fleet
    from probe.fleet.catalog import directory_text, write_secrets
    from probe.fleet.config import load_fleet_config
    from probe.fleet.serve import bind_fleet, serve_until_signal

    subnet = args.subnet

    def host_address(index: int) -> str:
        return f"127.0.{subnet}.{sites.FIRST_HOST + index}"

    # layout() looks host_address up in its module at call time.
    sites.host_address = host_address

    config = load_fleet_config(args.config)
    chosen, sockets = bind_fleet(config, None)
    fleet = Fleet(config, port=chosen)
    secrets_out = args.directory_out.with_name(args.directory_out.stem + ".secrets.yaml")
    write_secrets(secrets_out, fleet.secrets())
    text = directory_text(fleet.directory(str(secrets_out.resolve())))

    def ready() -> None:
        tmp = args.directory_out.with_name(args.directory_out.name + ".tmp")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, args.directory_out)

    recorder = None
    if args.record is not None:
        recorder = Recorder(fleet.app)
        fleet.app = recorder  # type: ignore[assignment]
    serve_until_signal(fleet, sockets, ready)
    if recorder is not None:
        recorder.write(args.record, chosen)


class Recorder:
    """An ASGI layer that keeps each answer the app sends, as the bytes a server would write."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.answers: dict[tuple[str, bytes, bytes, bytes], bytes] = {}

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        """Serve the request and keep the answer."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        target = scope["raw_path"] + (
            b"?" + scope["query_string"] if scope["query_string"] else b""
        )
        accept = next((v for k, v in scope["headers"] if k == b"accept"), b"")
        key = (scope["server"][0], scope["method"].encode(), target, accept)
        head: list[bytes] = []
        body: list[bytes] = []

        async def keeping(message: Any) -> None:
            if message["type"] == "http.response.start":
                status = int(message["status"])
                head.append(f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\n".encode())
                head.extend(k + b": " + v + b"\r\n" for k, v in message["headers"])
            elif message["type"] == "http.response.body":
                body.append(message.get("body", b""))
                if not message.get("more_body"):
                    content = b"".join(body)
                    if not any(h.lower().startswith(b"content-length:") for h in head):
                        head.append(b"content-length: %d\r\n" % len(content))
                    self.answers[key] = b"".join(head) + b"\r\n" + content
            await send(message)

        await self.app(scope, receive, keeping)

    def write(self, path: Path, port: int) -> None:
        """The answers and the port, pickled (a file only this bench writes and reads)."""
        tmp = path.with_name(path.name + ".tmp")
        with tmp.open("wb") as handle:
            pickle.dump({"port": port, "answers": self.answers}, handle)
        os.replace(tmp, path)


if __name__ == "__main__":
    main()
