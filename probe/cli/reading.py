"""Reading the store for the commands that only read it (score, report, history, drift): the
moment, rubric and window scored, and the store opened at this probe's schema; every failure is
one message and exit 2. A command that only reads never creates a database: on a missing one
they all say :data:`NO_DATABASE`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import TYPE_CHECKING

from probe.cli.fail import fail, fail_lines

if TYPE_CHECKING:  # the store and the rubric are imported when a command runs, not at --help
    from sqlalchemy.orm import Session

    from probe.score.rubric import Rubric
    from probe.store.handle import Store


def parse_as_of(value: str | None, now: datetime | None = None) -> datetime:
    """`--as-of`: a date is the end of that day in UTC; a time without offset is UTC."""
    from probe.score.inputs import as_utc

    if value is None:
        return now or datetime.now(UTC)
    text = value.strip()
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            return datetime.combine(day, time.max, tzinfo=UTC)
        return as_utc(datetime.fromisoformat(text))
    except ValueError:
        raise ValueError(
            f"--as-of {value!r} is not a date (YYYY-MM-DD) or an ISO 8601 time"
        ) from None


@dataclass(frozen=True, slots=True)
class ScoringOptions:
    """What to score: the rubric, the window in months and the moment."""

    rubric: Rubric
    window_months: int
    as_of: datetime


def scoring_options(
    window: int | None, as_of: str | None, rubric_path: Path | None
) -> ScoringOptions:
    """`--window`, `--as-of` and `--rubric` checked and loaded; exit 2 with a message if not."""
    from probe.score.rubric import RubricError, load_rubric

    try:
        moment = parse_as_of(as_of)
    except ValueError as exc:
        fail(str(exc))
    try:
        rubric = load_rubric(rubric_path)
    except RubricError as exc:
        fail_lines(exc.problems)
    months = rubric.window_months if window is None else window
    if not 1 <= months <= 120:
        fail(f"--window must be between 1 and 120 months, not {months}")
    return ScoringOptions(rubric, months, moment)


#: What every read-only command says when there is no database (exit 2).
NO_DATABASE = "no database at {path} (run probe run or probe demo first)"


def read_store(db: str | None) -> Store:
    """The existing store at `db`, at this probe's schema, for a command that only reads it;
    exit 2 with one message when there is no database (never creating one) or it is unusable."""
    from probe.store.engine import create_store_engine, missing_sqlite_file, open_store
    from probe.store.errors import StoreError

    try:
        engine = create_store_engine(db)
    except StoreError as exc:
        fail(str(exc))
    try:
        missing = missing_sqlite_file(engine)
    finally:
        engine.dispose()
    if missing is not None:
        fail(NO_DATABASE.format(path=missing))
    try:
        return open_store(db, migrate=False)
    except StoreError as exc:
        fail(str(exc))


@contextmanager
def scored_store(db: str | None) -> Iterator[Store]:
    """The store at this probe's schema, holding payers to score; exit 2 with a message if not."""
    from probe.score.collect import scored_payer_count
    from probe.store.engine import safe_url

    store = read_store(db)
    try:
        with store.session() as session:
            payers = scored_payer_count(session)
        if payers == 0:
            database = safe_url(store.engine.url)
            fail(f"no payers in {database}; crawl a directory first (probe run endpoints.yaml)")
        yield store
    finally:
        store.close()


def require_known_check(session: Session, check_id: str) -> None:
    """Exit 2 saying there is no such check unless `check_id` is one probe runs or one the store
    holds a verdict of (the closest ids suggested)."""
    import difflib

    from sqlalchemy import select

    from probe.checks import discovery, portal
    from probe.drift.keys import JWKS
    from probe.store.tables import CheckResultRow

    known = {spec.id for spec in (*discovery.catalog(), *portal.SPECS, JWKS)}
    if check_id in known:
        return
    stored = set(session.scalars(select(CheckResultRow.check_id).distinct()))
    if check_id in stored:
        return
    close = difflib.get_close_matches(check_id, sorted(known | stored), n=3, cutoff=0.6)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    fail(f"no such check: {check_id!r}{hint}")


#: What `probe run --resume` says when no run was interrupted (it starts none; exit 0).
NOTHING_TO_RESUME = (
    "nothing to resume: no interrupted nightly run in this database; "
    "`probe run DIRECTORY` starts a new one"
)


def resumable_run(store: Store) -> int | None:
    """The nightly run `probe run --resume` would finish (runs whose process is gone marked
    interrupted first), or None when there is nothing to resume."""
    from probe.store.runs import latest_resumable_run
    from probe.store.tables import RunKind

    store.mark_stale_runs_interrupted()
    return latest_resumable_run(store.engine, RunKind.NIGHTLY)
