"""Importing httpx without its own command-line client, which probe never runs.

``import httpx`` also imports ``httpx._main`` (the ``httpx`` console script) when its optional
dependencies are installed, as they are beside probe's CLI: click, pygments and rich's syntax
highlighting, progress bars and tables, about 40 ms of a command's start-up on an idle 2-core
machine (more than httpx itself). httpx imports it inside ``try``/``except ImportError`` and
defines a stub ``main`` when it is missing: :func:`import_httpx` makes it missing for that one
import. Nothing else changes: ``httpx._main`` can still be imported explicitly later.
"""

from __future__ import annotations

import sys


def import_httpx() -> None:
    """Import httpx now, without ``httpx._main`` (a no-op once httpx is imported)."""
    if "httpx" in sys.modules or "httpx._main" in sys.modules:
        return
    sys.modules["httpx._main"] = None  # type: ignore[assignment]  # "import halted": ImportError
    try:
        import httpx  # noqa: F401
    finally:
        if sys.modules.get("httpx._main", False) is None:
            del sys.modules["httpx._main"]
