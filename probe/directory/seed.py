"""Seeding ``endpoints.yaml`` from ``payers.csv`` (columns payer, base_url, sandbox_url, vendor,
portal_url, source): rows naming the same payer are merged into one entry
(:func:`seed_from_csv`, :func:`render_seed`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from probe.directory.cells import (
    _base_or_none,
    base_urls_in_cell,
    clean_text,
    clean_vendor,
    one_line,
    portal_in_cell,
)
from probe.directory.cms import _sandbox_count
from probe.directory.records import (
    ImportFormatError,
    ImportIssue,
    Record,
    add_url,
    build_endpoints,
    norm_header,
    read_records,
    yaml_block,
    yaml_comment,
)
from probe.directory.schema import (
    Directory,
    Payer,
)

# --------------------------------------------------------------------------------------------
# payers.csv: seeding endpoints.yaml
# --------------------------------------------------------------------------------------------

SEED_COLUMNS = ("payer", "base_url", "sandbox_url", "vendor", "portal_url", "source")
_QUALIFIER = re.compile(r"\s*\(([^()]*)\)\s*$")
_NAME_NOISE = frozenset({"of", "the", "inc", "healthcare", "corp", "corporation", "co", "llc"})


def payer_key(name: str) -> str:
    """A matching key for payer names: case, punctuation, 'of'/'Inc.'/'Healthcare' ignored and
    'Blue Cross Blue Shield' spelled 'BCBS' (so "Blue Cross Blue Shield of Minnesota" and
    "BCBS Minnesota", "Cigna" and "Cigna Healthcare" match)."""
    text = re.sub(r"blue\s*cross\s*(and\s*)?blue\s*shield", "bcbs", name.casefold())
    return " ".join(t for t in re.findall(r"[a-z0-9]+", text) if t not in _NAME_NOISE)


@dataclass
class SeedPayer:
    """One payer of a seed: the merged entry (or None when no row gave a base URL)."""

    name: str
    rows: list[int]
    names: list[str]
    payer: Payer | None
    portal: str | None
    notes: list[str]


@dataclass
class Seed:
    """The result of :func:`seed_from_csv`."""

    payers: list[SeedPayer]
    issues: list[ImportIssue]
    rows_read: int

    @property
    def directory(self) -> Directory:
        """The payers that have endpoints, as a Directory."""
        return Directory(payers=[p.payer for p in self.payers if p.payer is not None])

    def summary(self, source: str) -> list[str]:
        """Summary lines (counts) for people."""
        directory = self.directory
        endpoints = sum(len(p.endpoints) for p in directory.payers)
        missing = [p for p in self.payers if p.payer is None]
        return [
            f"payers.csv {source}: {self.rows_read} rows naming {len(self.payers)} payers",
            f"seeded: {len(directory.payers)} payers, {endpoints} endpoints, "
            f"{_sandbox_count(directory)} sandbox base URLs",
            f"not seeded: {len(missing)} payers without a usable base URL; "
            f"{sum(1 for i in self.issues if i.row_imported)} values ignored (report on stderr)",
        ]


def _group_rows(records: list[Record]) -> dict[str, list[Record]]:
    """Rows per payer: same key, or a name with a trailing qualifier ("Aetna (v2 ...)") whose
    bare name matches another row's name."""
    keys = {payer_key(r.get(0)) for r in records}
    groups: dict[str, list[Record]] = {}
    for record in records:
        name = one_line(record.get(0))
        key = payer_key(name)
        match = _QUALIFIER.search(name)
        if match:
            bare = payer_key(name[: match.start()])
            if bare in keys and bare != key:
                key = bare
        groups.setdefault(key, []).append(record)
    return groups


def seed_from_csv(path: Path) -> Seed:
    """Merge the rows of a payers.csv into one directory entry per payer.

    Raises :class:`ImportFormatError` for a file that cannot be read or lacks the columns.
    """
    records = read_records(path)
    header = [norm_header(c) for c in records[0].cells]
    missing = [c for c in ("payer", "base_url", "sandbox_url") if c not in header]
    if missing:
        raise ImportFormatError(
            f"{path}:1: not a payers.csv: missing column(s) {', '.join(missing)} "
            f"(expected {', '.join(SEED_COLUMNS)})"
        )
    index = {name: header.index(name) if name in header else None for name in SEED_COLUMNS}
    rows = [
        Record(r.row, r.line, [r.get(index[c]) for c in SEED_COLUMNS])
        for r in records[1:]
        if any(clean_text(c) for c in r.cells)
    ]
    issues = [
        ImportIssue(r.row, r.line, "", "payer", "", "no payer name", False)
        for r in rows
        if not one_line(r.get(0))
    ]
    rows = [r for r in rows if one_line(r.get(0))]
    seeded: list[SeedPayer] = []
    for key, group in _group_rows(rows).items():
        seeded.append(_seed_payer(key, group, issues))
    seeded.sort(key=lambda p: (p.name.casefold(), p.name))
    issues.sort(key=lambda i: i.row)
    return Seed(payers=seeded, issues=issues, rows_read=len(rows))


def _seed_payer(group_key: str, group: list[Record], issues: list[ImportIssue]) -> SeedPayer:
    names = [one_line(r.get(0)) for r in group]
    name = next((n for n in names if payer_key(n) == group_key), names[0])
    found: list[tuple[Record, list[str], list[str], str | None]] = []
    pending: list[tuple[Record, str, str, str]] = []  # record, column, value, reason
    for record in group:
        portal, rejected = portal_in_cell(record.get(4))
        pending += [(record, "portal_url", r.value, r.reason) for r in rejected]
        prod_bases, rejected = base_urls_in_cell(record.get(1))
        pending += [(record, "base_url", r.value, r.reason) for r in rejected]
        sandbox_bases, rejected = base_urls_in_cell(record.get(2))
        pending += [(record, "sandbox_url", r.value, r.reason) for r in rejected]
        portal_base = _base_or_none(portal)
        kept_sandboxes: list[str] = []
        for base in sandbox_bases:
            if base.url == portal_base:
                reason = "the developer portal (a web page), not a FHIR base URL"
                pending.append((record, "sandbox_url", base.raw, reason))
            else:
                kept_sandboxes.append(base.url)
        found.append((record, [b.url for b in prod_bases], kept_sandboxes, portal))

    sandbox_only = {u for _, prods, sbs, _ in found for u in sbs if u not in prods}
    production: list[tuple[str, str | None]] = []
    sandbox: list[tuple[str, str | None]] = []
    used_rows: set[int] = set()
    for record, prods, sbs, portal in found:
        for url in prods:
            used_rows.add(record.row)
            if url in sandbox_only:
                others = sorted({r.row for r, p, s, _ in found if url in s and url not in p})
                rows = ", ".join(map(str, others))
                reason = f"row {rows} lists it as a sandbox: used as a sandbox, not production"
                pending.append((record, "base_url", url, reason))
                add_url(sandbox, url, portal)
            else:
                add_url(production, url, portal)
        for url in sbs:
            used_rows.add(record.row)
            if url in prods and url not in sandbox_only:
                reason = "same as this row's production base URL: kept as production only"
                pending.append((record, "sandbox_url", url, reason))
            elif url not in prods:
                add_url(sandbox, url, portal)

    vendors: list[tuple[str, str]] = []
    for record in group:
        raw = one_line(record.get(3))
        cleaned = clean_vendor(raw) if raw else None
        if cleaned and all(cleaned != v for v, _ in vendors):
            vendors.append((cleaned, raw))
    notes: list[str] = []
    if len(vendors) > 1:
        notes.append("vendors differ between rows: " + "; ".join(v for v, _ in vendors))
    sources: list[str] = []
    for record in group:
        src = one_line(record.get(5))
        if src and src not in sources:
            sources.append(src)
    sources += [f"vendor: {raw}" for cleaned, raw in vendors[:1] if raw != cleaned]

    has_urls = bool(production or sandbox)
    for record, column, value, reason in pending:
        row_used = record.row in used_rows
        issues.append(ImportIssue(record.row, record.line, name, column, value, reason, row_used))
    for record in group:
        if record.row not in used_rows and not any(
            p[0] is record and p[1] in ("base_url", "sandbox_url") for p in pending
        ):
            issues.append(
                ImportIssue(
                    record.row,
                    record.line,
                    name,
                    "base_url",
                    "",
                    "empty: no base URL known",
                    False,
                )
            )
    portal = next((p for *_, p in found if p), None)
    payer = None
    if has_urls:
        payer = Payer(
            name=name,
            vendor=vendors[0][0] if vendors else None,
            source=" | ".join(sources) or None,
            endpoints=build_endpoints(production, sandbox),
        )
    return SeedPayer(
        name=name,
        rows=[r.row for r in group],
        names=names,
        payer=payer,
        portal=portal,
        notes=notes,
    )


SEED_HEADER = """\
# endpoints.yaml: the payer directory probe crawls (payers and their FHIR base URLs).
# Schema, field by field, with a full example: docs/directory.md.
# Check it with `probe directory validate endpoints.yaml`.
#
# {provenance}
# Rows of the CSV naming the same payer are merged into one entry with distinct endpoints;
# `source` keeps every row's public source (joined with " | "), and the vendor as the CSV
# wrote it when the clean name differs. Lives and organization_status are unknown, so unset.
# The comment above each payer names its CSV rows (row 1 is the header).
#
# Never write secrets in this file: credentials name an environment variable ({{env: NAME}})
# or a key of the file named by `secrets_file` ({{secret: KEY}}).
"""


def render_seed(seed: Seed, source: str, provenance: str | None = None) -> str:
    """The seed as commented YAML (deterministic: same CSV, same text).

    Loads with :func:`probe.directory.schema.load_directory` to ``seed.directory``.
    """
    provenance = provenance or (
        f"Generated by `probe directory seed {source}`; review it by hand before use."
    )
    out = [SEED_HEADER.format(provenance=provenance), "\nversion: 1\n"]
    with_payers = [p for p in seed.payers if p.payer is not None]
    out.append("payers:\n" if with_payers else "payers: []\n")
    for entry in with_payers:
        assert entry.payer is not None
        rows = ", ".join(map(str, entry.rows))
        label = "rows" if len(entry.rows) > 1 else "row"
        comment = f"# CSV {label} {rows}"
        if len(set(entry.names)) > 1:
            comment += ": " + "; ".join(dict.fromkeys(entry.names))
        out.append("\n" + yaml_comment(comment))
        for note in entry.notes:
            out.append(yaml_comment(f"# {note}"))
        data = entry.payer.model_dump(mode="json", exclude_defaults=True, exclude_none=True)
        out.append(yaml_block([data]))
    missing = [p for p in seed.payers if p.payer is None]
    if missing:
        out.append("\n# Payers in the CSV without a usable base URL yet (add them when known):\n")
        for entry in missing:
            rows = ", ".join(map(str, entry.rows))
            portal = f": developer portal {entry.portal}" if entry.portal else ""
            out.append(f"# - {entry.name} (CSV row {rows}){portal}\n")
    return "".join(out)
