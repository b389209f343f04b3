"""Ending a command with a clear message on stderr and an exit code, never a traceback."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NoReturn
from urllib.parse import urlsplit

import typer
from rich.console import Console
from rich.text import Text

from probe.cli.safe_text import safe

EXIT_USAGE = 2


def _stderr() -> Console:
    return Console(stderr=True, highlight=False, soft_wrap=True)


def fail(message: str, code: int = EXIT_USAGE) -> NoReturn:
    """Print ``error: message`` (plain text, never markup, control characters and known secrets
    replaced) on stderr and exit with `code`."""
    _stderr().print(Text.assemble(("error: ", "bold red"), safe(message)))
    raise typer.Exit(code)


def fail_lines(lines: Sequence[str], limit: int = 100) -> NoReturn:
    """Print each problem on its own line (at most `limit`, then a count) and exit 2."""
    err = _stderr()
    for line in lines[:limit]:
        err.print(Text(safe(line)))
    if len(lines) > limit:
        err.print(Text(f"... and {len(lines) - limit} more problem(s)"))
    raise typer.Exit(EXIT_USAGE)


def absolute_url(value: str, option: str) -> str:
    """`value` stripped when it is an absolute http(s) URL; otherwise exit 2 naming `option`."""
    text = value.strip()
    try:
        parts = urlsplit(text)
        host = parts.hostname
    except ValueError:
        host = None
        parts = None
    if parts is None or parts.scheme not in ("http", "https") or not host:
        fail(f"{option}: {value!r} is not an absolute http(s) URL")
    if parts.username is not None or parts.password is not None:
        fail(f"{option}: a URL must not carry a user name or password (use credentials options)")
    return text


def base_url_argument(value: str) -> str:
    """A BASE_URL argument stripped; a usage error (exit 2) unless an absolute http(s) URL."""
    text = value.strip()
    try:
        parts = urlsplit(text)
        ok = parts.scheme in ("http", "https") and bool(parts.hostname)
    except ValueError:
        ok = False
    if not ok:
        raise typer.BadParameter(f"{safe(repr(value))} is not an absolute http(s) URL")
    if "@" in urlsplit(text).netloc:
        raise typer.BadParameter(
            "a base URL must not carry a user name or password (credentials go in options or "
            "endpoints.yaml secret references)"
        )
    return text
