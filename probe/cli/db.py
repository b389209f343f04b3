"""`probe db upgrade|current|downgrade`: create, inspect and migrate the observation database.

Errors are printed as one clear line on stderr and exit with status 2, never a traceback.
Passwords in database URLs are never printed.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from typer.exceptions import Abort

from probe.cli.groups import HelpGroup

if TYPE_CHECKING:
    from sqlalchemy import Engine

from probe.cli.fail import fail
from probe.cli.options import DbOption

db_app = typer.Typer(
    cls=HelpGroup,
    name="db",
    help="Create, inspect and migrate the observation database.",
    no_args_is_help=True,
)

_out = Console(highlight=False, soft_wrap=True)
_err = Console(stderr=True, highlight=False, soft_wrap=True)


@contextmanager
def _engine(db: str | None) -> Iterator[Engine]:
    """An engine for `db`, disposed afterwards; StoreErrors become a message and exit 2."""
    from probe.store import engine as store_engine
    from probe.store.errors import StoreError

    try:
        engine = store_engine.create_store_engine(db)
    except StoreError as exc:
        fail(str(exc))
    try:
        yield engine
    except StoreError as exc:
        fail(str(exc))
    finally:
        engine.dispose()


def can_ask() -> bool:
    """True when a person can answer a question (standard input is a terminal)."""
    return sys.stdin.isatty()


@db_app.command("upgrade")
def upgrade_command(db: DbOption = None) -> None:
    """Migrate the database to this probe's schema (creates the schema in an empty database)."""
    from probe.store import engine as store_engine

    with _engine(db) as engine:
        name = store_engine.safe_url(engine.url)
        before = store_engine.revision_state(engine)
        after = store_engine.require_usable(engine, migrate=True)
        if before.current == after.current:
            _out.print(f"{name}: already at revision {after.current} (head)")
        else:
            _out.print(
                f"{name}: upgraded from {before.current or '(empty)'} to {after.current} (head)"
            )


@db_app.command("current")
def current_command(
    db: DbOption = None,
    exit_code: Annotated[
        bool,
        typer.Option(
            "--exit-code",
            help="Exit 1 unless the database is at this probe's head (no database, an empty "
            "one or one behind head): a deploy script's test before `probe run`.",
        ),
    ] = False,
) -> None:
    """Show the database's schema revision and whether it is this probe's head."""
    from probe.store import engine as store_engine

    with _engine(db) as engine:
        name = store_engine.safe_url(engine.url)
        if store_engine.missing_sqlite_file(engine) is not None:
            _out.print(f"{name}: no database yet; `probe db upgrade` creates it")
            at_head = False
        else:
            state = store_engine.revision_state(engine)
            if not state.known:
                fail(str(store_engine.unknown_revision_error(state, engine.url)))
            at_head = state.at_head
            if state.current is None:
                _out.print(f"{name}: empty (no revision); `probe db upgrade` creates the schema")
            elif state.at_head:
                _out.print(f"{name}: revision {state.current} (head)")
            else:
                _out.print(
                    f"{name}: revision {state.current}, behind head {state.head}; "
                    "run `probe db upgrade`"
                )
    if exit_code and not at_head:
        raise typer.Exit(1)


@db_app.command("downgrade")
def downgrade_command(
    revision: Annotated[
        str, typer.Argument(help="Revision to go back to; 'base' drops every probe table.")
    ],
    db: DbOption = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    """Migrate the database back to REVISION (data in dropped tables or columns is lost)."""
    from probe.store import engine as store_engine

    with _engine(db) as engine:
        name = store_engine.safe_url(engine.url)
        if store_engine.missing_sqlite_file(engine) is not None:
            fail(f"no database at {engine.url.database}; nothing to downgrade")
        state = store_engine.revision_state(engine)
        if not state.known:
            fail(str(store_engine.unknown_revision_error(state, engine.url)))
        known = ["base", *store_engine.known_revisions()]
        if revision not in known:
            fail(f"unknown revision {revision!r}; known revisions: {', '.join(known)}")
        if not yes:
            if not can_ask():
                fail("downgrade drops data: without a terminal to ask on, pass --yes")
            try:
                confirmed = typer.confirm(
                    f"Downgrade {name} from {state.current or '(empty)'} to {revision}? "
                    "Data in dropped tables is lost",
                    default=False,
                )
            except Abort:
                confirmed = False
            if not confirmed:
                fail("downgrade not confirmed (pass --yes to skip the question)")
        store_engine.downgrade(engine, revision)
        _out.print(f"{name}: downgraded from {state.current or '(empty)'} to {revision}")
