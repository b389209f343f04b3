"""`probe score`: rank payers and vendors from the observation store as of a moment.

Over the rubric's window; ``--payer NAME`` or ``--details`` expand payers into per-metric rows
with the evidence behind each (runs, failed requests, check results, sync jobs,
authorizations). ``--format json`` prints the whole scorecard, ``--format csv`` one row per payer
per metric.

Exit codes: 0 success; 2 a bad option, an unusable database or rubric, or nothing to score.
Errors are one clear message on stderr (never a traceback).
"""

from __future__ import annotations

import csv
import difflib
import io
import json
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from probe.cli.fail import fail
from probe.cli.machine import contract_json
from probe.cli.options import AsOfOption, DbOption, RubricOption, WindowOption
from probe.cli.reading import scored_store, scoring_options
from probe.cli.safe_text import cell, line, safe
from probe.cli.width import fit_columns, output_console
from probe.models import finite_json

if TYPE_CHECKING:
    from probe.score.engine import Scorecard
    from probe.score.inputs import PayerInputs
    from probe.score.results import PayerScore

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


def _find_payer(card: Scorecard, inputs: Sequence[PayerInputs], name: str) -> PayerScore:
    wanted = name.casefold()
    for ranked in card.payers:
        if ranked.score.payer.casefold() == wanted:
            return ranked.score
    for excluded in card.excluded:
        if excluded.payer.casefold() == wanted:
            fail(f"{excluded.payer} is not scored: {excluded.reason}")
    names = [p.name for p in inputs]
    close = difflib.get_close_matches(name, names, n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    fail(f"no payer named {name!r} in the database{hint}")


# -- rendering --------------------------------------------------------------------------------


def _card_json(card: Scorecard, database: str, only: str | None) -> dict[str, Any]:
    from probe.score.collect import evidence_summary
    from probe.score.rubric import NOT_ENOUGH_DATA

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
            _write_safe_row(
                writer,
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
                    json.dumps(
                        finite_json(m.input_value), sort_keys=True, default=str, allow_nan=False
                    ),
                    m.expected,
                    m.comment,
                    " ".join(m.evidence),
                    m.evidence_total,
                ],
            )
    return buffer.getvalue()


def _write_safe_row(writer: Any, row: list[Any]) -> None:
    writer.writerow([safe(v) if isinstance(v, str) else v for v in row])


def _header(card: Scorecard, database: str) -> Text:
    return Text.assemble(
        (safe(card.rubric, one_line=True), "bold"),
        f"  as of {card.as_of:%Y-%m-%d %H:%M} UTC",
        f"  window {card.window.start:%Y-%m-%d} .. {card.window.end:%Y-%m-%d}",
        (f"  {database}", "dim"),
    )


def payers_table(card: Scorecard) -> Table:
    """The payer ranking: totals, category points, vendor-metric subtotal, metrics without data."""
    table = Table(title="Payers", title_justify="left")
    table.add_column("Rank", justify="right")
    table.add_column("Payer", overflow="fold", min_width=20)
    table.add_column("Vendor", overflow="fold", min_width=12)
    table.add_column("Total", justify="right")
    categories = card.payers[0].score.categories if card.payers else ()
    for category in categories:
        table.add_column(line(category.title.split(" ")[0]), justify="right")
    table.add_column("Vendor metrics", justify="right")
    table.add_column("No data", justify="right")
    for ranked in card.payers:
        s = ranked.score
        missing = sum(1 for m in s.metrics if m.not_enough_data)
        flags = f" ({', '.join(s.flags)})" if s.flags else ""
        table.add_row(
            str(ranked.rank),
            cell(s.payer + flags),
            cell(s.vendor or ""),
            f"{s.total}/{s.max_total}",
            *(f"{c.points}/{c.max_points}" for c in s.categories),
            f"{s.vendor_points}/{s.vendor_max}",
            cell(str(missing), "yellow") if missing else "0",
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
    table.add_column("Payers", overflow="fold", min_width=24)
    table.add_column("Comment", overflow="fold", min_width=28)
    for ranked in card.vendors:
        v = ranked.score
        value = (
            cell("not enough data", "yellow")
            if v.score is None
            else cell(f"{v.score:g}/{v.max_points}")
        )
        table.add_row(
            "-" if ranked.rank is None else str(ranked.rank),
            cell(v.vendor),
            value,
            cell(", ".join(v.payers)),
            cell(v.comment),
        )
    return table


def metrics_table(rank: int, s: PayerScore) -> Table:
    """One payer's per-metric rows: points, outcome, input, comment and evidence."""
    from probe.score.report_html import metric_view

    table = Table(
        title=line(f"#{rank} {s.payer}: {s.total}/{s.max_total}"),
        title_justify="left",
        show_lines=False,
    )
    table.add_column("Metric", overflow="fold", min_width=16)
    table.add_column("Points", justify="right")
    table.add_column("Outcome", overflow="fold", min_width=14)
    table.add_column("Input", overflow="fold", min_width=12)
    table.add_column("Comment", overflow="fold", min_width=28)
    table.add_column("Evidence", overflow="fold")
    for m in s.metrics:
        view = metric_view(m)
        if m.not_enough_data:
            outcome = cell("not enough data", "yellow")
            if m.outcome_label and m.outcome_label.casefold() != "not enough data":
                outcome.append(safe(f" ({m.outcome_label})"))
        else:
            outcome = cell(m.outcome_label or m.outcome)
        style = "green" if m.points == m.max_points else ("yellow" if m.not_enough_data else "red")
        table.add_row(
            cell(m.metric_id),
            cell(f"{m.points}/{m.max_points}", style),
            outcome,
            cell(view["input"]),
            cell(m.comment),
            cell(view["evidence"]),
        )
    return table


def _narrow_drops(card: Scorecard) -> list[str]:
    """The payer table's columns a narrow screen gives up, least useful first (rank, payer,
    total and no-data stay)."""
    categories = card.payers[0].score.categories if card.payers else ()
    return ["Vendor metrics", "Vendor", *(c.title.split(" ")[0] for c in reversed(categories))]


def print_tables(
    card: Scorecard, database: str, console: Console, expand: Sequence[PayerScore]
) -> None:
    """The table output of ``probe score``."""
    console.print(_header(card, database))
    if card.payers:
        console.print(
            fit_columns(payers_table(card), console.width, _narrow_drops(card), ("Payer",))
        )
    else:
        console.print("No payer was scored (all excluded).")
    if card.vendors:
        console.print(fit_columns(vendors_table(card), console.width, ("Comment",), ("Vendor",)))
    missing = not_enough_data_lines(card)
    if missing:
        console.print(
            cell(
                "Not enough data in the window (points are the rubric's not-enough-data "
                "points, shown in brackets; --payer NAME or --details explains each):",
                "bold",
            )
        )
        for entry in missing:
            console.print(cell(entry))
    ranks = {r.score.payer: r.rank for r in card.payers}
    for s in expand:
        table = metrics_table(ranks[s.payer], s)
        console.print(fit_columns(table, console.width, ("Evidence", "Input")))
    if card.excluded:
        console.print(cell("Excluded:", "bold"))
        for ex in card.excluded:
            console.print(cell(f"  {ex.payer}: {ex.reason}"))
    if card.notes:
        console.print(cell("Notes:", "bold"))
        for note in card.notes:
            console.print(cell(f"  - {note}"))


def _console() -> Console:
    """Standard output, as wide as probe/cli/width.py says ($COLUMNS, the terminal, else 160)."""
    return output_console(highlight=False)


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
        fail(f"--format must be one of {', '.join(FORMATS)}, not {output_format!r}")
    from probe.score.collect import score_stored
    from probe.store.engine import safe_url

    scoring = scoring_options(window, as_of, rubric_path)
    with scored_store(db) as store, store.session() as session:
        database = safe_url(store.engine.url)
        card, inputs = score_stored(session, scoring.rubric, scoring.as_of, scoring.window_months)
    chosen = _find_payer(card, inputs, payer) if payer is not None else None
    only = chosen.payer if chosen is not None else None
    if fmt == "json":
        sys.stdout.write(contract_json("score", _card_json(card, database, only)) + "\n")
        return
    if fmt == "csv":
        sys.stdout.write(scorecard_csv(card, only))
        return
    expand = [chosen] if chosen is not None else []
    if details:
        expand = [r.score for r in card.payers]
    print_tables(card, database, _console(), expand)
