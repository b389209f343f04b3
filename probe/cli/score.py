"""`probe score`, `probe report --html` and `probe import authorizations`.

* ``probe score`` ranks payers and vendors from the observation store as of a moment, over the
  rubric's window; ``--payer NAME`` or ``--details`` expand payers into per-metric rows with the
  evidence behind each (runs, failed requests, check results, sync jobs, authorizations).
  ``--format json`` prints the whole scorecard, ``--format csv`` one row per payer per metric.
* ``probe report --html FILE`` writes one self-contained HTML report (rankings, scorecards,
  charts over time) that opens without a network.
* ``probe import authorizations FILE.csv`` loads an authorization log into the store.

Exit codes: 0 success; 2 a bad option, an unusable database, rubric or file, or nothing to
score. Errors are one clear message on stderr (never a traceback).
"""

from __future__ import annotations

import csv
import difflib
import io
import json
import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text
from sqlalchemy import select

from probe.cli.db import DbOption
from probe.score.authorizations import (
    AuthorizationImportError,
    import_authorizations,
    read_authorization_csv,
)
from probe.score.collect import (
    collect_inputs,
    evidence_summary,
    first_authorization,
    observation_times,
)
from probe.score.engine import PayerScore, Scorecard, score
from probe.score.inputs import PayerInputs, Window, as_utc, subtract_months
from probe.score.report_changes import report_changes
from probe.score.report_html import (
    ReportError,
    history_points,
    metric_view,
    render_report,
    score_history,
)
from probe.score.rubric import NOT_ENOUGH_DATA, Rubric, RubricError, load_rubric
from probe.store.engine import create_store_engine, open_store, safe_url
from probe.store.errors import StoreError
from probe.store.handle import Store
from probe.store.tables import PayerRow

FORMATS = ("table", "json", "csv")
CSV_COLUMNS = (
    "rank",
    "payer",
    "vendor",
    "total",
    "max_total",
    "metric",
    "title",
    "category",
    "points",
    "max_points",
    "outcome",
    "outcome_label",
    "not_enough_data",
    "input",
    "expected",
    "comment",
    "evidence",
    "evidence_total",
)
"""The columns of ``probe score --format csv``: one row per payer per metric."""

import_app = typer.Typer(
    name="import",
    help="Import what probe cannot observe (the authorization log).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

WindowOption = Annotated[
    int | None,
    typer.Option(
        "--window",
        help="Scoring window in calendar months (default: the rubric's, 6).",
        show_default=False,
    ),
]
AsOfOption = Annotated[
    str | None,
    typer.Option(
        "--as-of",
        help="Score as of this date (YYYY-MM-DD: the end of that day, UTC) or ISO time "
        "(default: now).",
        show_default=False,
    ),
]
RubricOption = Annotated[
    Path | None,
    typer.Option("--rubric", help="Rubric YAML file (default: the packaged May 2025 rubric)."),
]


def _fail(message: str) -> NoReturn:
    """Print `message` (plain text) on stderr and exit 2."""
    Console(stderr=True, highlight=False, soft_wrap=True).print(
        Text.assemble(("error: ", "bold red"), message)
    )
    raise typer.Exit(2)


def _fail_lines(lines: Sequence[str], limit: int = 100) -> NoReturn:
    err = Console(stderr=True, highlight=False, soft_wrap=True)
    for line in lines[:limit]:
        err.print(Text(line))
    if len(lines) > limit:
        err.print(Text(f"... and {len(lines) - limit} more problem(s)"))
    raise typer.Exit(2)


def parse_as_of(value: str | None, now: datetime | None = None) -> datetime:
    """`--as-of`: a date is the end of that day in UTC; a time without offset is UTC."""
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


def _missing_sqlite_file(db: str | None) -> str | None:
    """The path of a SQLite database file that does not exist, else None."""
    try:
        engine = create_store_engine(db)
    except StoreError as exc:
        _fail(str(exc))
    try:
        url = engine.url
        database = url.database or ""
        if (
            url.get_backend_name() == "sqlite"
            and database not in ("", ":memory:")
            and not database.startswith("file:")
            and not Path(database).exists()
        ):
            return database
        return None
    finally:
        engine.dispose()


@contextmanager
def _open_for_reading(db: str | None) -> Iterator[Store]:
    """The store, at this probe's schema, for reading; exit 2 with a message otherwise."""
    missing = _missing_sqlite_file(db)
    if missing is not None:
        _fail(f"no database at {missing}; crawl a directory first (probe run endpoints.yaml)")
    try:
        store = open_store(db, migrate=False)
    except StoreError as exc:
        _fail(str(exc))
    try:
        yield store
    finally:
        store.close()


def _rubric(path: Path | None) -> Rubric:
    try:
        return load_rubric(path)
    except RubricError as exc:
        _fail_lines(exc.problems)


@dataclass(frozen=True, slots=True)
class Scoring:
    """What the score and report commands computed: the card, the inputs and where from."""

    card: Scorecard
    inputs: list[PayerInputs]
    rubric: Rubric
    window_months: int
    database: str


def _check_window(window: int | None, rubric: Rubric) -> int:
    months = rubric.window_months if window is None else window
    if not 1 <= months <= 120:
        _fail(f"--window must be between 1 and 120 months, not {months}")
    return months


def _payer_count(store: Store) -> int:
    with store.session() as session:
        names = session.scalars(select(PayerRow.source))
        return sum(1 for source in names if (source or "") != "ad-hoc")


def compute(
    store: Store,
    rubric: Rubric,
    as_of: datetime,
    window_months: int,
    *,
    history_from: datetime | None = None,
) -> tuple[Scorecard, list[PayerInputs]]:
    """Collect inputs (from `history_from`, default the window start) and score as of `as_of`."""
    window = Window.ending(as_of, window_months)
    start = window.start if history_from is None else min(window.start, history_from)
    with store.session() as session:
        inputs = collect_inputs(session, Window(start, window.end))
    card = score(inputs, rubric, as_of=as_of, window_months=window_months)
    return card, inputs


def _find_payer(card: Scorecard, inputs: Sequence[PayerInputs], name: str) -> PayerScore:
    wanted = name.casefold()
    for ranked in card.payers:
        if ranked.score.payer.casefold() == wanted:
            return ranked.score
    for excluded in card.excluded:
        if excluded.payer.casefold() == wanted:
            _fail(f"{excluded.payer} is not scored: {excluded.reason}")
    names = [p.name for p in inputs]
    close = difflib.get_close_matches(name, names, n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    _fail(f"no payer named {name!r} in the database{hint}")


# -- rendering --------------------------------------------------------------------------------


def _card_json(card: Scorecard, database: str, only: str | None) -> dict[str, Any]:
    data = card.to_json()
    data["database"] = database
    for payer in data["payers"]:
        payer["not_enough_data"] = [
            m["metric"] for m in payer["metrics"] if m["outcome"] == NOT_ENOUGH_DATA
        ]
        for metric in payer["metrics"]:
            metric["not_enough_data"] = metric["outcome"] == NOT_ENOUGH_DATA
            metric["evidence_summary"] = evidence_summary(metric["evidence"])
    if only is not None:
        data["payers"] = [p for p in data["payers"] if p["payer"] == only]
    return data


def scorecard_csv(card: Scorecard, only: str | None = None) -> str:
    """One CSV row per payer per metric (see :data:`CSV_COLUMNS`)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for ranked in card.payers:
        s = ranked.score
        if only is not None and s.payer != only:
            continue
        for m in s.metrics:
            writer.writerow(
                [
                    ranked.rank,
                    s.payer,
                    s.vendor or "",
                    s.total,
                    s.max_total,
                    m.metric_id,
                    m.title,
                    m.category,
                    m.points,
                    m.max_points,
                    m.outcome,
                    m.outcome_label,
                    "true" if m.not_enough_data else "false",
                    json.dumps(m.input_value, sort_keys=True, default=str),
                    m.expected,
                    m.comment,
                    " ".join(m.evidence),
                    m.evidence_total,
                ]
            )
    return buffer.getvalue()


def _header(card: Scorecard, database: str) -> Text:
    return Text.assemble(
        (card.rubric, "bold"),
        f"  as of {card.as_of:%Y-%m-%d %H:%M} UTC",
        f"  window {card.window.start:%Y-%m-%d} .. {card.window.end:%Y-%m-%d}",
        (f"  {database}", "dim"),
    )


def payers_table(card: Scorecard) -> Table:
    """The payer ranking: totals, category points, vendor-metric subtotal, metrics without data."""
    table = Table(title="Payers", title_justify="left")
    table.add_column("Rank", justify="right")
    table.add_column("Payer", overflow="fold")
    table.add_column("Vendor", overflow="fold")
    table.add_column("Total", justify="right")
    categories = card.payers[0].score.categories if card.payers else ()
    for category in categories:
        table.add_column(category.title.split(" ")[0], justify="right")
    table.add_column("Vendor metrics", justify="right")
    table.add_column("No data", justify="right")
    for ranked in card.payers:
        s = ranked.score
        missing = sum(1 for m in s.metrics if m.not_enough_data)
        flags = f" ({', '.join(s.flags)})" if s.flags else ""
        table.add_row(
            str(ranked.rank),
            Text(s.payer + flags),
            Text(s.vendor or ""),
            f"{s.total}/{s.max_total}",
            *(f"{c.points}/{c.max_points}" for c in s.categories),
            f"{s.vendor_points}/{s.vendor_max}",
            Text(str(missing), "yellow") if missing else "0",
        )
    return table


def not_enough_data_lines(card: Scorecard) -> list[str]:
    """One line per payer with metrics that had not enough data in the window."""
    lines = []
    for ranked in card.payers:
        s = ranked.score
        missing = [f"{m.metric_id} ({m.points})" for m in s.metrics if m.not_enough_data]
        if missing:
            lines.append(f"  {s.payer}: {', '.join(missing)}")
    return lines


def vendors_table(card: Scorecard) -> Table:
    """The vendor ranking, out of the rubric's vendor denominator."""
    table = Table(
        title=f"Vendors (median over Live production payers, out of {card.vendor_denominator})",
        title_justify="left",
    )
    for name, justify in (("Rank", "right"), ("Vendor", "left"), ("Score", "right")):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    table.add_column("Payers", overflow="fold")
    table.add_column("Comment", overflow="fold")
    for ranked in card.vendors:
        v = ranked.score
        value = (
            Text("not enough data", "yellow")
            if v.score is None
            else Text(f"{v.score:g}/{v.max_points}")
        )
        table.add_row(
            "-" if ranked.rank is None else str(ranked.rank),
            Text(v.vendor),
            value,
            Text(", ".join(v.payers)),
            Text(v.comment),
        )
    return table


def metrics_table(rank: int, s: PayerScore) -> Table:
    """One payer's per-metric rows: points, outcome, input, comment and evidence."""
    table = Table(
        title=f"#{rank} {s.payer}: {s.total}/{s.max_total}", title_justify="left", show_lines=False
    )
    table.add_column("Metric", overflow="fold")
    table.add_column("Points", justify="right")
    table.add_column("Outcome", overflow="fold")
    table.add_column("Input", overflow="fold")
    table.add_column("Comment", overflow="fold")
    table.add_column("Evidence", overflow="fold")
    for m in s.metrics:
        view = metric_view(m)
        if m.not_enough_data:
            outcome = Text("not enough data", "yellow")
            if m.outcome_label and m.outcome_label.casefold() != "not enough data":
                outcome.append(f" ({m.outcome_label})")
        else:
            outcome = Text(m.outcome_label or m.outcome)
        style = "green" if m.points == m.max_points else ("yellow" if m.not_enough_data else "red")
        table.add_row(
            Text(m.metric_id),
            Text(f"{m.points}/{m.max_points}", style),
            outcome,
            Text(view["input"]),
            Text(m.comment),
            Text(view["evidence"]),
        )
    return table


def print_tables(
    card: Scorecard, database: str, console: Console, expand: Sequence[PayerScore]
) -> None:
    """The table output of ``probe score``."""
    console.print(_header(card, database))
    if card.payers:
        console.print(payers_table(card))
    else:
        console.print("No payer was scored (all excluded).")
    if card.vendors:
        console.print(vendors_table(card))
    missing = not_enough_data_lines(card)
    if missing:
        console.print(
            Text(
                "Not enough data in the window (points are the rubric's not-enough-data "
                "points, shown in brackets; --payer NAME or --details explains each):",
                "bold",
            )
        )
        for line in missing:
            console.print(Text(line))
    ranks = {r.score.payer: r.rank for r in card.payers}
    for s in expand:
        console.print(metrics_table(ranks[s.payer], s))
    if card.excluded:
        console.print(Text("Excluded:", "bold"))
        for ex in card.excluded:
            console.print(Text(f"  {ex.payer}: {ex.reason}"))
    if card.notes:
        console.print(Text("Notes:", "bold"))
        for note in card.notes:
            console.print(Text(f"  - {note}"))


def _console() -> Console:
    """Standard output; tables are 160 columns wide when not on a terminal (unless $COLUMNS)."""
    console = Console(highlight=False)
    if not console.is_terminal and not os.environ.get("COLUMNS"):
        console = Console(highlight=False, width=160)
    return console


# -- commands ---------------------------------------------------------------------------------


def _prepare(
    db: str | None, window: int | None, as_of: str | None, rubric_path: Path | None
) -> tuple[Rubric, int, datetime]:
    try:
        moment = parse_as_of(as_of)
    except ValueError as exc:
        _fail(str(exc))
    rubric = _rubric(rubric_path)
    months = _check_window(window, rubric)
    return rubric, months, moment


def score_command(
    db: DbOption = None,
    output_format: Annotated[
        str, typer.Option("--format", help="table, json or csv.", case_sensitive=False)
    ] = "table",
    window: WindowOption = None,
    as_of: AsOfOption = None,
    rubric_path: RubricOption = None,
    payer: Annotated[
        str | None,
        typer.Option("--payer", help="Expand this payer into per-metric rows (with evidence)."),
    ] = None,
    details: Annotated[
        bool, typer.Option("--details", help="Expand every payer into per-metric rows.")
    ] = False,
) -> None:
    """Rank payers and vendors on the State of the Payer rubric from stored observations."""
    fmt = output_format.lower()
    if fmt not in FORMATS:
        _fail(f"--format must be one of {', '.join(FORMATS)}, not {output_format!r}")
    rubric, months, moment = _prepare(db, window, as_of, rubric_path)
    with _open_for_reading(db) as store:
        database = safe_url(store.engine.url)
        if _payer_count(store) == 0:
            _fail(f"no payers in {database}; crawl a directory first (probe run endpoints.yaml)")
        card, inputs = compute(store, rubric, moment, months)
    chosen = _find_payer(card, inputs, payer) if payer is not None else None
    only = chosen.payer if chosen is not None else None
    if fmt == "json":
        sys.stdout.write(json.dumps(_card_json(card, database, only), indent=2) + "\n")
        return
    if fmt == "csv":
        sys.stdout.write(scorecard_csv(card, only))
        return
    expand = [chosen] if chosen is not None else []
    if details:
        expand = [r.score for r in card.payers]
    print_tables(card, database, _console(), expand)


def report_command(
    html: Annotated[
        Path,
        typer.Option("--html", help="Write the report to this HTML file.", dir_okay=False),
    ],
    db: DbOption = None,
    window: WindowOption = None,
    as_of: AsOfOption = None,
    rubric_path: RubricOption = None,
) -> None:
    """Write a self-contained HTML report: rankings, scorecards with evidence, charts over time."""
    rubric, months, moment = _prepare(db, window, as_of, rubric_path)
    if html.exists() and html.is_dir():
        _fail(f"{html} is a directory")
    with _open_for_reading(db) as store:
        database = safe_url(store.engine.url)
        if _payer_count(store) == 0:
            _fail(f"no payers in {database}; crawl a directory first (probe run endpoints.yaml)")
        with store.session() as session:
            observed = observation_times(session, moment)
            first_auth = first_authorization(session)
            # Drift events of the window, per payer (probe.drift; docs/drift.md).
            changes = report_changes(session, since=subtract_months(moment, months), until=moment)
        if first_auth is not None:
            observed.append(first_auth)
        points = history_points(observed, moment)
        history_from = subtract_months(points[0], months)
        card, inputs = compute(store, rubric, moment, months, history_from=history_from)
    history = score_history(inputs, rubric, points, window_months=months)
    try:
        page = render_report(
            card, history, generated_at=datetime.now(UTC), database=database, changes=changes
        )
    except ReportError as exc:
        _fail(str(exc))
    try:
        html.parent.mkdir(parents=True, exist_ok=True)
        html.write_text(page, encoding="utf-8")
    except OSError as exc:
        _fail(f"cannot write {html}: {exc.strerror or exc}")
    Console(stderr=True, highlight=False, soft_wrap=True).print(
        Text(
            f"wrote {html} ({len(page.encode()) / 1e6:.1f} MB): {len(card.payers)} payer(s), "
            f"{len(card.vendors)} vendor(s), {len(points)} point(s) in time"
        )
    )


@import_app.command("authorizations")
def import_authorizations_command(
    file: Annotated[
        Path,
        typer.Argument(help="The authorization log (CSV: endpoint, attempted_at, state, ...)."),
    ],
    db: DbOption = None,
    skip_unknown: Annotated[
        bool,
        typer.Option(
            "--skip-unknown-endpoints",
            help="Import the rows of known endpoints and report the others (default: refuse).",
        ),
    ] = False,
) -> None:
    """Load live-mode authorization attempts (authorization success and eligibility errors)."""
    try:
        log = read_authorization_csv(file)
    except AuthorizationImportError as exc:
        _fail_lines(exc.problems)
    try:
        store = open_store(db)
    except StoreError as exc:
        _fail(str(exc))
    with store:
        try:
            with store.session() as session:
                result = import_authorizations(session, log, skip_unknown=skip_unknown)
        except AuthorizationImportError as exc:
            _fail_lines(exc.problems)
        except StoreError as exc:
            _fail(str(exc))
        database = safe_url(store.engine.url)
    out = Console(highlight=False, soft_wrap=True)
    states = ", ".join(f"{state} {n}" for state, n in sorted(result.by_state.items()))
    out.print(
        Text(
            f"{result.source}: {result.rows} row(s) for {result.endpoints} endpoint(s) into "
            f"{database}: {result.inserted} new, {result.updated} updated, "
            f"{result.unchanged} already imported ({states})"
        )
    )
    err = Console(stderr=True, highlight=False, soft_wrap=True)
    if result.skipped_unknown:
        err.print(
            Text(f"skipped {result.skipped_unknown} row(s) of endpoints not in the database:")
        )
        for url, lines in result.unknown_endpoints.items():
            shown = ", ".join(str(n) for n in lines[:5]) + (" ..." if len(lines) > 5 else "")
            err.print(Text(f"  {url}: {len(lines)} row(s), line(s) {shown}"))
    if result.sandbox_rows:
        err.print(
            Text(
                f"note: {result.sandbox_rows} row(s) are for sandbox endpoints; only live "
                "(production) authorizations are scored"
            )
        )
    if result.ignored_columns:
        err.print(Text(f"note: ignored column(s): {', '.join(result.ignored_columns)}"))
