"""Importing an authorization log (CSV) into the store's ``authorization_attempts`` table.

The authorization success rate and "eligibility errors sent on callback" metrics are computed
from live-mode patient authorizations, which probe cannot observe: they come from the app that
runs the authorizations (Flexpa's own log, in the report). `probe import authorizations FILE`
reads them from a CSV file, one attempt per row:

=================  ========  =====================================================================
column             required  meaning
=================  ========  =====================================================================
endpoint           yes       the FHIR base URL of the endpoint (as in ``endpoints.yaml``)
attempted_at       yes       when the attempt started, ISO 8601 (a time without offset is UTC)
state              yes       Authorized, Exchanged, Revoked, Bounced or Failed (any case)
query_ineligible   no        true when the callback carried ``error=query_ineligible``
id                 no        the log's id of the attempt: re-importing it updates the row
=================  ========  =====================================================================

Aliases: ``base_url`` for endpoint; ``time``, ``timestamp`` or ``created_at`` for attempted_at;
``status`` for state; ``error`` (the callback's error code; ``query_ineligible`` sets the flag)
for query_ineligible; ``attempt_id`` or ``authorization_id`` for id. Other columns are ignored.

Every row is validated before anything is written; problems are reported as ``file:line:
column: why``, all at once, and nothing is imported. Endpoints the store does not know are
problems too (or skipped with ``skip_unknown``). Importing is idempotent: each attempt has a
natural key within its endpoint, the log's ``id`` when given, else a digest of the row's content
and its occurrence in the file, so importing the same file twice (or overlapping exports) adds
nothing.
"""

from __future__ import annotations

import csv
import hashlib
import io
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from urllib.parse import urlsplit

from sqlalchemy import insert, select, tuple_
from sqlalchemy.orm import Session

from probe.score.inputs import as_utc
from probe.store.catalog import find_endpoint, normalize_base_url
from probe.store.tables import AUTHORIZATION_STATES, AuthorizationAttemptRow, utcnow

COLUMNS: dict[str, tuple[str, ...]] = {
    "endpoint": ("endpoint", "base_url", "endpoint_url", "fhir_base_url"),
    "attempted_at": ("attempted_at", "time", "timestamp", "created_at"),
    "state": ("state", "status"),
    "query_ineligible": ("query_ineligible", "error"),
    "id": ("id", "attempt_id", "authorization_id"),
}
"""Each column the importer reads and the header names it accepts for it."""
REQUIRED = ("endpoint", "attempted_at", "state")
SUCCESS_STATES = frozenset({"authorized", "exchanged", "revoked"})
"""States that count as a successful authorization."""
MAX_KEY = 200
_TRUE = frozenset({"true", "t", "yes", "y", "1"})
_FALSE = frozenset({"false", "f", "no", "n", "0", ""})
_CHUNK = 500


class AuthorizationImportError(Exception):
    """An authorization log that cannot be imported; `problems` lists each as 'file:line: why'."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        super().__init__(f"{source}: {len(problems)} problem(s)\n" + "\n".join(problems))


@dataclass(frozen=True, slots=True)
class AttemptRecord:
    """One validated row of the log."""

    line: int
    endpoint: str
    attempted_at: datetime
    state: str
    query_ineligible: bool
    attempt_id: str | None
    key: str


@dataclass(slots=True)
class ParsedLog:
    """The validated rows of a log, and the columns it ignored."""

    source: str
    records: list[AttemptRecord]
    ignored_columns: list[str] = field(default_factory=list)


@dataclass(slots=True)
class ImportResult:
    """What an import did: rows read, inserted, updated, already present, skipped."""

    source: str
    rows: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    skipped_unknown: int = 0
    unknown_endpoints: dict[str, list[int]] = field(default_factory=dict)
    sandbox_rows: int = 0
    by_state: dict[str, int] = field(default_factory=dict)
    endpoints: int = 0
    ignored_columns: list[str] = field(default_factory=list)


def _header_name(raw: str) -> str:
    return raw.strip().lower().replace(" ", "_").replace("-", "_")


def _parse_time(value: str) -> datetime:
    text = value.strip()
    if not text:
        raise ValueError("is empty")
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{text!r} is not an ISO 8601 time (e.g. 2025-05-01T12:30:00Z)") from None
    return as_utc(parsed)


def _parse_endpoint(value: str) -> str:
    text = value.strip()
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{text!r} is not an absolute http(s) FHIR base URL")
    if parts.query or parts.fragment:
        raise ValueError(f"{text!r}: a FHIR base URL has no query or fragment")
    return normalize_base_url(text)


def _parse_flag(value: str, column: str) -> bool:
    text = value.strip().lower()
    if column == "error":
        return text == "query_ineligible"
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError(f"{value.strip()!r} is not true or false")


def _content_key(endpoint: str, at: datetime, state: str, flag: bool, occurrence: int) -> str:
    text = f"{endpoint}|{at.isoformat()}|{state}|{int(flag)}|{occurrence}"
    return "row:" + hashlib.sha256(text.encode()).hexdigest()[:40]


def parse_authorization_csv(text: str, source: str = "<csv>") -> ParsedLog:
    """Validate a whole authorization log; AuthorizationImportError lists every problem."""
    problems: list[str] = []
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except StopIteration:
        raise AuthorizationImportError(
            source, [f"{source}:1: the file is empty; expected a header line"]
        ) from None
    except csv.Error as exc:
        raise AuthorizationImportError(source, [f"{source}:1: CSV syntax: {exc}"]) from None
    names = [_header_name(h) for h in header]
    where: dict[str, tuple[int, str]] = {}
    ignored: list[str] = []
    for index, name in enumerate(names):
        column = next((c for c, aliases in COLUMNS.items() if name in aliases), None)
        if column is None:
            if name:
                ignored.append(header[index].strip())
            continue
        if column in where:
            first = header[where[column][0]].strip()
            problems.append(
                f"{source}:1: {header[index].strip()}: duplicate column for {column} "
                f"(already given as {first!r})"
            )
            continue
        where[column] = (index, name)
    missing = [c for c in REQUIRED if c not in where]
    if missing:
        accepted = "; ".join(f"{c}: {', '.join(COLUMNS[c])}" for c in missing)
        problems.append(f"{source}:1: missing required column(s) {', '.join(missing)} ({accepted})")
    if problems:
        raise AuthorizationImportError(source, problems)

    records: list[AttemptRecord] = []
    ids: dict[tuple[str, str], int] = {}
    occurrences: dict[tuple[str, datetime, str, bool], int] = defaultdict(int)
    line = reader.line_num
    while True:
        start = line + 1
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            problems.append(f"{source}:{start}: CSV syntax: {exc}")
            break
        line = reader.line_num
        if not any(cell.strip() for cell in row):
            continue
        if len(row) > len(header):
            problems.append(f"{source}:{start}: {len(row)} fields but the header has {len(header)}")
            continue

        def cell(column: str, row: list[str] = row) -> str:
            found = where.get(column)
            return row[found[0]] if found is not None and found[0] < len(row) else ""

        row_problems: list[str] = []
        endpoint: str | None = None
        at: datetime | None = None
        state: str | None = None
        flag = False
        try:
            endpoint = _parse_endpoint(cell("endpoint"))
        except ValueError as exc:
            row_problems.append(f"endpoint: {exc}")
        try:
            at = _parse_time(cell("attempted_at"))
        except ValueError as exc:
            row_problems.append(f"attempted_at: {exc}")
        raw_state = cell("state").strip()
        if raw_state.lower() in AUTHORIZATION_STATES:
            state = raw_state.lower()
        else:
            allowed = ", ".join(s.title() for s in AUTHORIZATION_STATES)
            shown = repr(raw_state) if raw_state else "empty"
            row_problems.append(f"state: {shown} is not one of {allowed}")
        if "query_ineligible" in where:
            column_name = where["query_ineligible"][1]
            try:
                flag = _parse_flag(cell("query_ineligible"), column_name)
            except ValueError as exc:
                row_problems.append(f"{column_name}: {exc}")
        if flag and state in SUCCESS_STATES:
            row_problems.append(
                f"query_ineligible: set on a {state} attempt; an ineligible member's "
                "authorization ends Failed (or Bounced)"
            )
        attempt_id = cell("id").strip() or None
        if attempt_id is not None and len(attempt_id) + 3 > MAX_KEY:
            row_problems.append(f"id: longer than {MAX_KEY - 3} characters")
        if attempt_id is not None and endpoint is not None:
            first_line = ids.setdefault((endpoint, attempt_id), start)
            if first_line != start:
                row_problems.append(
                    f"id: {attempt_id!r} appears twice for this endpoint "
                    f"(first on line {first_line})"
                )
        if row_problems or endpoint is None or at is None or state is None:
            problems.extend(f"{source}:{start}: {p}" for p in row_problems)
            continue
        if attempt_id is not None:
            key = f"id:{attempt_id}"
        else:
            content = (endpoint, at, state, flag)
            key = _content_key(endpoint, at, state, flag, occurrences[content])
            occurrences[content] += 1
        records.append(AttemptRecord(start, endpoint, at, state, flag, attempt_id, key))
    if problems:
        raise AuthorizationImportError(source, problems)
    if not records:
        raise AuthorizationImportError(
            source, [f"{source}:2: no authorization rows after the header"]
        )
    return ParsedLog(source, records, ignored)


def read_authorization_csv(path: Path) -> ParsedLog:
    """Read and validate an authorization log file (UTF-8, a BOM is allowed)."""
    source = path.name
    try:
        raw = path.read_bytes()
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise AuthorizationImportError(str(path), [f"{path}: cannot read: {reason}"]) from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise AuthorizationImportError(
            source, [f"{source}:{line}: not UTF-8 text (byte {exc.start})"]
        ) from None
    return parse_authorization_csv(text, source)


def _lines(lines: Sequence[int], limit: int = 5) -> str:
    shown = ", ".join(str(n) for n in lines[:limit])
    return shown + (f" and {len(lines) - limit} more" if len(lines) > limit else "")


def import_authorizations(
    session: Session,
    log: ParsedLog,
    *,
    skip_unknown: bool = False,
    now: datetime | None = None,
) -> ImportResult:
    """Write a validated log into ``authorization_attempts``; idempotent.

    Rows are matched to stored endpoints by base URL (production first). Unknown endpoints raise
    AuthorizationImportError naming each with its lines, unless `skip_unknown`, which skips
    their rows and reports them. A row whose key is already stored is left alone when equal and
    updated when the log now says otherwise (an attempt with an ``id`` that moved on, e.g. from
    Authorized to Revoked). The caller owns the transaction.
    """
    now = now or utcnow()
    result = ImportResult(
        log.source, rows=len(log.records), ignored_columns=list(log.ignored_columns)
    )
    endpoint_ids: dict[str, int] = {}
    sandbox: set[int] = set()
    unknown: dict[str, list[int]] = defaultdict(list)
    for record in log.records:
        if record.endpoint in endpoint_ids or record.endpoint in unknown:
            if record.endpoint in unknown:
                unknown[record.endpoint].append(record.line)
            continue
        row = find_endpoint(session, record.endpoint)
        if row is None:
            unknown[record.endpoint].append(record.line)
            continue
        endpoint_ids[record.endpoint] = row.id
        if row.environment != "production":
            sandbox.add(row.id)
    if unknown and not skip_unknown:
        problems = [
            f"{log.source}:{lines[0]}: endpoint {url} is not in the database "
            f"({len(lines)} row(s), line(s) {_lines(lines)})"
            for url, lines in unknown.items()
        ]
        problems.append(
            f"{log.source}: add these endpoints to endpoints.yaml and run `probe run`, or pass "
            "--skip-unknown-endpoints to import the other rows"
        )
        raise AuthorizationImportError(log.source, problems)
    result.unknown_endpoints = dict(unknown)
    result.skipped_unknown = sum(len(v) for v in unknown.values())
    known = [r for r in log.records if r.endpoint in endpoint_ids]
    result.endpoints = len({r.endpoint for r in known})
    existing = _existing(session, [(endpoint_ids[r.endpoint], r.key) for r in known])
    new_rows: list[dict[str, object]] = []
    for record in known:
        endpoint_id = endpoint_ids[record.endpoint]
        result.by_state[record.state] = result.by_state.get(record.state, 0) + 1
        if endpoint_id in sandbox:
            result.sandbox_rows += 1
        stored = existing.get((endpoint_id, record.key))
        if stored is None:
            new_rows.append(
                {
                    "endpoint_id": endpoint_id,
                    "attempt_key": record.key,
                    "attempted_at": record.attempted_at,
                    "state": record.state,
                    "query_ineligible": record.query_ineligible,
                    "source": log.source[:300],
                    "imported_at": now,
                }
            )
            continue
        if (
            as_utc(stored.attempted_at) == record.attempted_at
            and stored.state == record.state
            and stored.query_ineligible == record.query_ineligible
        ):
            result.unchanged += 1
            continue
        stored.attempted_at = record.attempted_at
        stored.state = record.state
        stored.query_ineligible = record.query_ineligible
        stored.source = log.source[:300]
        stored.imported_at = now
        result.updated += 1
    for start in range(0, len(new_rows), _CHUNK):
        session.execute(insert(AuthorizationAttemptRow), new_rows[start : start + _CHUNK])
    result.inserted = len(new_rows)
    session.flush()
    return result


def _existing(
    session: Session, keys: Iterable[tuple[int, str]]
) -> dict[tuple[int, str], AuthorizationAttemptRow]:
    wanted = sorted(set(keys))
    out: dict[tuple[int, str], AuthorizationAttemptRow] = {}
    for start in range(0, len(wanted), _CHUNK):
        chunk = wanted[start : start + _CHUNK]
        rows = session.scalars(
            select(AuthorizationAttemptRow).where(
                tuple_(
                    AuthorizationAttemptRow.endpoint_id, AuthorizationAttemptRow.attempt_key
                ).in_(chunk)
            )
        )
        for row in rows:
            out[(row.endpoint_id, row.attempt_key)] = row
    return out
