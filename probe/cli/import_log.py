"""`probe import authorizations FILE.csv`: load an authorization log (what probe cannot observe)
into the store. Exit 2 with every problem listed when the file or an endpoint is unusable.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.text import Text

from probe.cli.fail import fail, fail_lines
from probe.cli.groups import HelpGroup
from probe.cli.options import DbOption

import_app = typer.Typer(
    cls=HelpGroup,
    name="import",
    help="Import what probe cannot observe (the authorization log).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
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
    from probe.score.authorizations import (
        AuthorizationImportError,
        import_authorizations,
        read_authorization_csv,
    )
    from probe.store.engine import open_store, safe_url
    from probe.store.errors import StoreError

    try:
        log = read_authorization_csv(file)
    except AuthorizationImportError as exc:
        fail_lines(exc.problems)
    try:
        store = open_store(db)
    except StoreError as exc:
        fail(str(exc))
    with store:
        try:
            with store.session() as session:
                result = import_authorizations(session, log, skip_unknown=skip_unknown)
        except AuthorizationImportError as exc:
            fail_lines(exc.problems)
        except StoreError as exc:
            fail(str(exc))
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
