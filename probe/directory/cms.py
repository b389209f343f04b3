"""The official CMS State Medicaid Agency (SMA) endpoint directory, read exactly as CMS publishes
it (UTF-8 BOM, two header rows, multi-line cells, non-breaking spaces): :func:`import_cms` and
:func:`render_cms`. docs/directory.md describes its columns.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from probe.directory.cells import (
    base_urls_in_cell,
    clean_text,
    is_path_prefix,
    one_line,
    portal_in_cell,
)
from probe.directory.records import (
    ImportFormatError,
    ImportIssue,
    Record,
    add_url,
    build_endpoints,
    norm_header,
    read_records,
    yaml_comment,
)
from probe.directory.schema import (
    Directory,
    Environment,
    LineOfBusiness,
    LinesOfBusiness,
    Payer,
    dump_directory,
)

# --------------------------------------------------------------------------------------------
# The CMS State Medicaid Agency endpoint directory
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CmsColumns:
    """Indexes of the CMS directory's columns this importer reads (None: absent)."""

    state: int
    claims: int
    pdex: int | None
    chip: int | None
    status: int | None
    as_of: int | None
    capability: int | None
    fhir_version: int | None
    sandbox: int | None
    registration: int | None
    names: tuple[str, ...]

    def name(self, index: int) -> str:
        """How reports name a column: its spreadsheet letter and role, e.g. ``"F claims"``."""
        roles = {
            self.state: "state",
            self.claims: "claims",
            self.pdex: "PDex",
            self.chip: "CHIP",
            self.sandbox: "sandbox",
            self.registration: "registration",
        }
        return f"{column_letter(index)} {roles.get(index) or one_line(self.names[index])}"


def column_letter(index: int) -> str:
    """The spreadsheet letter of a 0-based column index: 0 → A, 25 → Z, 26 → AA."""
    letters = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        letters = chr(ord("A") + rest) + letters
    return letters


def _find_cms_columns(records: list[Record], path: Path) -> tuple[CmsColumns, int]:
    """Locate the header row (within the first 5 records) and the columns; the header's index."""
    for index, record in enumerate(records[:5]):
        headers = [norm_header(c) for c in record.cells]
        if "state" not in headers:
            continue
        claims = next((i for i, h in enumerate(headers) if "base url for claims" in h), None)
        if claims is None:
            continue
        group = records[index - 1].cells if index > 0 else []
        section_end = len(headers)
        for i, h in enumerate(headers):
            in_group = i < len(group) and "provider directory" in norm_header(group[i])
            if i > claims and (in_group or h.startswith("provider directory")):
                section_end = i
                break

        def first(test: Any, headers: list[str] = headers, end: int = section_end) -> int | None:
            return next((i for i, h in enumerate(headers[:end]) if test(h)), None)

        columns = CmsColumns(
            state=headers.index("state"),
            claims=claims,
            pdex=first(lambda h: "member health data" in h or "pdex" in h),
            chip=first(lambda h: "chip" in h),
            status=first(lambda h: h.startswith("status")),
            as_of=first(lambda h: h.startswith("information as of")),
            capability=first(lambda h: "capability statement" in h),
            fhir_version=first(lambda h: h.startswith("fhir version")),
            sandbox=first(lambda h: h.startswith("sandbox")),
            registration=first(lambda h: "registration" in h),
            names=tuple(record.cells),
        )
        return columns, index
    raise ImportFormatError(
        f"{path}: not the CMS State Medicaid Agency endpoint directory: no header row with "
        "'State' and 'Production Base URL for Claims Data' in the first 5 rows"
    )


@dataclass
class CmsImport:
    """The result of :func:`import_cms`: the directory, every unusable value, and counts."""

    directory: Directory
    issues: list[ImportIssue]
    rows_read: int
    rows_imported: int
    first_row: int
    last_row: int
    completed_from_capability: list[str] = field(default_factory=list)

    @property
    def rows_not_imported(self) -> int:
        """State rows that gave no endpoint at all."""
        return self.rows_read - self.rows_imported

    @property
    def production_urls(self) -> int:
        """Production base URLs in the directory."""
        return sum(
            1
            for p in self.directory.payers
            for e in p.endpoints
            if e.environment is Environment.PRODUCTION
        )

    @property
    def sandbox_urls(self) -> int:
        """Sandbox base URLs in the directory (endpoints and declared sandbox_url)."""
        return _sandbox_count(self.directory)

    def summary(self, source: str) -> list[str]:
        """Summary lines (counts) for people."""
        return [
            f"CMS SMA endpoint directory {source}: {self.rows_read} state rows "
            f"(file rows {self.first_row}-{self.last_row})",
            f"imported: {len(self.directory.payers)} payers, {self.production_urls} production "
            f"and {self.sandbox_urls} sandbox base URLs "
            f"({len(self.completed_from_capability)} completed from the Capability Statement "
            "link)",
            f"not imported: {self.rows_not_imported} rows without a usable base URL; "
            f"{sum(1 for i in self.issues if i.row_imported)} values ignored in imported rows "
            "(report on stderr)",
        ]


def _sandbox_count(directory: Directory) -> int:
    return sum(
        (e.environment is Environment.SANDBOX) + (e.sandbox_url is not None)
        for p in directory.payers
        for e in p.endpoints
    )


def cms_payer_name(state: str) -> str:
    """The directory name of a state's Medicaid agency.

    ``"Alabama"`` gives ``"Alabama Medicaid (FFS)"``, ``"Guam (GU)"`` ``"Guam Medicaid (FFS)"``.
    """
    state = re.sub(r"\s*\([A-Z]{2}\)\s*$", "", one_line(state))
    return f"{state} Medicaid (FFS)"


def _refine(url: str, capability: list[str]) -> str:
    """`url` made more specific by the one Capability Statement base that extends it, if any.

    `capability` holds the bases of the row's ``.../metadata`` links: the FHIR base is where
    ``metadata`` lives, so a bare host in the claims column (``https://api.x.com``) with a
    Capability Statement at ``https://api.x.com/r4/metadata`` means the base ``.../r4``.
    """
    longer = [c for c in capability if is_path_prefix(url, c)]
    return longer[0] if len(longer) == 1 else url


def import_cms(path: Path) -> CmsImport:
    """Read the CMS State Medicaid Agency endpoint directory into directory entries.

    Raises :class:`ImportFormatError` for a file that cannot be read or is not that directory.
    """
    records = read_records(path)
    columns, header_index = _find_cms_columns(records, path)
    data = [r for r in records[header_index + 1 :] if any(clean_text(c) for c in r.cells)]
    issues: list[ImportIssue] = []
    payers: dict[str, dict[str, Any]] = {}
    completed: list[str] = []
    rows_imported = 0
    source_name = path.name

    for record in data:
        state = one_line(record.get(columns.state))
        row_issues: list[tuple[int | None, str, str]] = []  # column, value, reason
        if not state:
            issues.append(
                ImportIssue(
                    record.row,
                    record.line,
                    "",
                    columns.name(columns.state),
                    "",
                    "no state name",
                    False,
                )
            )
            continue
        portal, portal_rejected = portal_in_cell(record.get(columns.registration))
        row_issues += [(columns.registration, r.value, r.reason) for r in portal_rejected]
        capability = [
            b.url
            for b in base_urls_in_cell(record.get(columns.capability))[0]
            if b.removed[:1] == ("metadata",)
        ]
        production: list[tuple[str, str | None]] = []
        for column in (columns.claims, columns.pdex, columns.chip):
            if column is None:
                continue
            bases, rejected = base_urls_in_cell(record.get(column))
            row_issues += [(column, r.value, r.reason) for r in rejected]
            for base in bases:
                url = _refine(base.url, capability)
                if url != base.url:
                    completed.append(f"{state}: {base.url} -> {url}")
                add_url(production, url, portal)
        sandbox: list[tuple[str, str | None]] = []
        bases, rejected = base_urls_in_cell(record.get(columns.sandbox))
        row_issues += [(columns.sandbox, r.value, r.reason) for r in rejected]
        for base in bases:
            if any(base.url == url for url, _ in production):
                reason = "same as the production base URL: not a separate sandbox"
                row_issues.append((columns.sandbox, base.raw, reason))
            else:
                add_url(sandbox, base.url, portal)

        imported = bool(production or sandbox)
        status = one_line(record.get(columns.status))
        if not imported and not any(c in (columns.claims, columns.pdex) for c, _, _ in row_issues):
            reason = "empty: no production base URL"
            row_issues.insert(
                0, (columns.claims, "", reason + (f" (status {status})" if status else ""))
            )
        row_issues.sort(key=lambda issue: issue[0] or 0)
        for column, value, reason in row_issues:
            assert column is not None
            issues.append(
                ImportIssue(
                    record.row,
                    record.line,
                    state,
                    columns.name(column),
                    value,
                    reason,
                    imported,
                )
            )
        if not imported:
            continue
        rows_imported += 1
        name = cms_payer_name(state)
        details = [f"row {record.row}"]
        if status:
            details.append(f"status {status}")
        version = one_line(record.get(columns.fhir_version))
        if version:
            details.append(f"FHIR {version}")
        as_of = one_line(record.get(columns.as_of))
        if as_of and as_of.upper() != "N/A":
            details.append(f"as of {as_of}")
        source = f"CMS State Medicaid Agency endpoint directory ({source_name}), " + ", ".join(
            details
        )
        entry = payers.setdefault(name, {"sources": [], "production": [], "sandbox": []})
        entry["sources"].append(source)
        for url, p in production:
            add_url(entry["production"], url, p)
        for url, p in sandbox:
            add_url(entry["sandbox"], url, p)

    directory = Directory(
        payers=[
            Payer(
                name=name,
                source=" | ".join(entry["sources"]),
                lines_of_business=LinesOfBusiness(
                    offered=[LineOfBusiness.MEDICAID], supported=[LineOfBusiness.MEDICAID]
                ),
                endpoints=build_endpoints(entry["production"], entry["sandbox"]),
            )
            for name, entry in payers.items()
        ]
    )
    return CmsImport(
        directory=directory,
        issues=issues,
        rows_read=len(data),
        rows_imported=rows_imported,
        first_row=data[0].row if data else 0,
        last_row=data[-1].row if data else 0,
        completed_from_capability=completed,
    )


def render_cms(result: CmsImport, source: str) -> str:
    """The imported directory as YAML (``dump_directory``) under a provenance comment."""
    header = [
        f"# Generated by `probe directory import-cms {source}` from the CMS State Medicaid "
        "Agency endpoint directory; schema in docs/directory.md. Review it before use.",
        *(f"# {line}" for line in result.summary(source)),
    ]
    return "".join(yaml_comment(line) for line in header) + dump_directory(result.directory)
