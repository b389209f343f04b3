"""`probe report --html FILE`: one self-contained HTML report (rankings, conformance, scorecards
with evidence, charts over time) that opens without a network. Exit 2 on a bad option or an
unusable store.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.text import Text

from probe.cli.fail import fail
from probe.cli.options import AsOfOption, DbOption, RubricOption, WindowOption
from probe.cli.reading import scored_store, scoring_options


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
    from probe.score.collect import first_authorization, observation_times, score_stored
    from probe.score.inputs import subtract_months
    from probe.score.report_changes import report_changes
    from probe.score.report_conformance import conformance_by_payer
    from probe.score.report_html import history_points, render_report, score_history
    from probe.store.engine import safe_url
    from probe.store.reports import latest_check_results

    scoring = scoring_options(window, as_of, rubric_path)
    rubric, months, moment = scoring.rubric, scoring.window_months, scoring.as_of
    if html.exists() and html.is_dir():
        fail(f"{html} is a directory")
    with scored_store(db) as store, store.session() as session:
        database = safe_url(store.engine.url)
        observed = observation_times(session, moment)
        first_auth = first_authorization(session)
        # Drift events of the window, per payer (probe.drift; docs/drift.md).
        since = subtract_months(moment, months)
        changes = report_changes(session, since=since, until=moment)
        # The newest verdict of each check per endpoint in the window (the Conformance section).
        conformance = conformance_by_payer(latest_check_results(session, since=since, until=moment))
        if first_auth is not None:
            observed.append(first_auth)
        points = history_points(observed, moment)
        history_from = subtract_months(points[0], months)
        card, inputs = score_stored(session, rubric, moment, months, history_from=history_from)
    history = score_history(inputs, rubric, points, window_months=months)
    page = render_report(
        card,
        history,
        generated_at=datetime.now(UTC),
        database=database,
        changes=changes,
        conformance=conformance,
    )
    try:
        html.parent.mkdir(parents=True, exist_ok=True)
        html.write_text(page, encoding="utf-8")
    except OSError as exc:
        fail(f"cannot write {html}: {exc.strerror or exc}")
    Console(stderr=True, highlight=False, soft_wrap=True).print(
        Text(
            f"wrote {html} ({len(page.encode()) / 1024:,.0f} KiB): {len(card.payers)} payer(s), "
            f"{len(card.vendors)} vendor(s), {len(points)} point(s) in time"
        )
    )
