"""Requests do not touch the import system: a failing import inside httpcore (``import sniffio``
on every lock it makes, when sniffio is not installed) searched sys.path each time and cost
about 3 ms of CPU per crawled endpoint. probe depends on sniffio so the import is cached."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from importlib.machinery import ModuleSpec
from types import ModuleType

import anyio

from probe.http.fetch import Fetcher, new_client
from probe.http.guard import AddressGuard
from probe.http.limits import Limits
from probe.models import ExtractStep
from tests.servers import Route, serve


class Recorder:
    """A meta path finder that only records what the import system searched for."""

    def __init__(self) -> None:
        self.searched: list[str] = []

    def find_spec(
        self, name: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        self.searched.append(name)
        return None


def test_requests_make_no_import_searches() -> None:
    routes = {"/r4/metadata": Route(200, b"{}", {"Content-Type": "application/fhir+json"})}
    with serve(routes) as (base, _seen):
        guard = AddressGuard()
        guard.admit(base + "/r4")
        recorder = Recorder()

        async def go() -> list[int | None]:
            async with new_client(guard=guard) as client:
                fetcher = Fetcher(client, Limits(max_retries=0), guard=guard)
                await fetcher.get(base + "/r4/metadata", step=ExtractStep.DISCOVERY)  # warm
                sys.meta_path.insert(0, recorder)
                try:
                    return [
                        (await fetcher.get(base + "/r4/metadata", step=ExtractStep.DISCOVERY))[
                            -1
                        ].status
                        for _ in range(10)
                    ]
                finally:
                    sys.meta_path.remove(recorder)

        statuses = anyio.run(go)
    assert statuses == [200] * 10
    assert recorder.searched == []
