"""Server-supplied text made safe for the terminal and for JSON output.

Whatever a server sends (a ``software.name`` full of escape sequences, OSC 8 hyperlinks, rich
markup, bidi overrides, an echoed token) is shown as inert text: known secrets and
``Bearer``/``Basic`` credentials are replaced, control characters become U+FFFD, and rich never
reads it as markup.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rich.markup import escape
from rich.text import Text

from probe.http.redact import scrub_secrets
from probe.http.text import printable


def safe(value: object, *, one_line: bool = False) -> str:
    """`value` as plain text fit to print: no known secret, no control character.

    With `one_line`, line breaks and tabs are replaced too (table cells, log lines).
    """
    return printable(scrub_secrets(str(value)), one_line=one_line)


def safe_markup(value: object) -> str:
    """`value` as :func:`safe` text, escaped for embedding in a rich markup string."""
    return escape(safe(value))


def cell(value: object, style: str = "") -> Text:
    """A rich ``Text`` of `value` (never read as markup) for a table cell or a printed line."""
    return Text(safe(value), style=style)


def line(value: object, style: str = "") -> Text:
    """A rich ``Text`` of `value` on one line (line breaks replaced), never read as markup."""
    return Text(safe(value, one_line=True), style=style)


def safe_json(value: Any) -> Any:
    """A copy of JSON data with every string (keys too) made :func:`safe`."""
    if isinstance(value, str):
        return safe(value)
    if isinstance(value, Mapping):
        return {safe(k) if isinstance(k, str) else k: safe_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [safe_json(v) for v in value]
    return value
