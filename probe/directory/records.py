"""What the directory importers share: reading a CSV file into records (line numbers kept), the
issues they report (nothing is dropped silently), endpoints built from cleaned URLs and the
YAML they write.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from probe.directory.cells import clean_text, one_line
from probe.directory.schema import (
    Endpoint,
    Environment,
)

# --------------------------------------------------------------------------------------------
# Reporting
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ImportIssue:
    """A value an import could not use.

    `row` is the record number in the file (header rows count, as a spreadsheet shows it);
    `line` the physical line where that record starts (multi-line cells make them differ).
    `row_imported` is False when nothing at all could be used from the row.
    """

    row: int
    line: int
    payer: str
    column: str
    value: str
    reason: str
    row_imported: bool


class ImportFormatError(Exception):
    """A file that cannot be read or is not the expected directory format."""


@dataclass(frozen=True, slots=True)
class Record:
    """One CSV record: its row number, the line it starts on, and its cells."""

    row: int
    line: int
    cells: list[str]

    def get(self, index: int | None) -> str:
        """The cell at `index`; "" for a missing column or a short row."""
        if index is None or index >= len(self.cells):
            return ""
        return self.cells[index]


def read_records(path: Path) -> list[Record]:
    """Every CSV record of a file, numbered by record and by starting line."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ImportFormatError(f"{path}: cannot read: {exc.strerror or exc}") from None
    if b"\x00" in data:
        raise ImportFormatError(f"{path}: binary data, not a CSV file")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        try:
            text = data.decode("cp1252")
        except UnicodeDecodeError:
            raise ImportFormatError(f"{path}: not UTF-8 or Windows-1252 text") from None
    if not clean_text(text):
        raise ImportFormatError(f"{path}: the file is empty")
    records: list[Record] = []
    reader = csv.reader(io.StringIO(text, newline=""))
    previous = 0
    try:
        for number, cells in enumerate(reader, start=1):
            records.append(Record(number, previous + 1, cells))
            previous = reader.line_num
    except csv.Error as exc:
        raise ImportFormatError(f"{path}:{previous + 1}: not valid CSV: {exc}") from None
    return records


def norm_header(value: str) -> str:
    """A header cell on one line, lower-cased, for matching column names."""
    return one_line(value).lower()


# --------------------------------------------------------------------------------------------
# Endpoint assembly (shared)
# --------------------------------------------------------------------------------------------


def build_endpoints(
    production: Sequence[tuple[str, str | None]], sandbox: Sequence[tuple[str, str | None]]
) -> list[Endpoint]:
    """Endpoints for (url, portal) pairs: one production + one sandbox URL form one endpoint
    (``base_url`` + ``sandbox_url``); otherwise each URL is an endpoint with its environment."""
    if len(production) == 1 and len(sandbox) == 1:
        (base, portal), (sandbox_url, sandbox_portal) = production[0], sandbox[0]
        return [
            Endpoint(base_url=base, sandbox_url=sandbox_url, portal_url=portal or sandbox_portal)
        ]
    out = [Endpoint(base_url=url, portal_url=portal) for url, portal in production]
    out += [
        Endpoint(environment=Environment.SANDBOX, base_url=url, portal_url=portal)
        for url, portal in sandbox
    ]
    return out


def add_url(urls: list[tuple[str, str | None]], url: str, portal: str | None) -> None:
    """Append (url, portal) to `urls` unless the URL is already there."""
    if all(u != url for u, _ in urls):
        urls.append((url, portal))


def yaml_block(data: Any) -> str:
    """`data` as block-style YAML in the order given (as the importers write it)."""
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=100)


def yaml_comment(text: str, width: int = 100) -> str:
    """`text` (starting '# ') wrapped as YAML comment lines."""
    words = text[2:].split()
    lines: list[str] = []
    line = "#"
    for word in words:
        if len(line) + 1 + len(word) > width and line != "#":
            lines.append(line)
            line = "#  "
        line += " " + word
    lines.append(line)
    return "\n".join(lines) + "\n"


def issues_by_row(issues: Iterable[ImportIssue]) -> dict[int, list[ImportIssue]]:
    """Issues grouped by file row (for tests and reports)."""
    out: dict[int, list[ImportIssue]] = {}
    for issue in issues:
        out.setdefault(issue.row, []).append(issue)
    return out
