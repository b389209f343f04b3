"""Drift tests use the store fixtures (SQLite and the real PostgreSQL) and a loopback webhook."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from tests.store.conftest import pg_admin, store, store_url  # noqa: F401


@dataclass
class Webhook:
    """A loopback HTTP server recording every POST (path, headers, JSON body)."""

    url: str
    status: int = 204
    received: list[dict[str, Any]] = field(default_factory=list)


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    """A webhook receiver on 127.0.0.1 (answers `status`, 204 unless a test changes it)."""
    hook = Webhook(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length)
            hook.received.append(
                {"path": self.path, "headers": dict(self.headers.items()), "body": json.loads(raw)}
            )
            self.send_response(hook.status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    hook.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/drift-secret-path"
    try:
        yield hook
    finally:
        server.shutdown()
        server.server_close()
