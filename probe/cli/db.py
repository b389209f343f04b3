"""`probe db ...` (upgrade, current, downgrade) and the `history` command over stored runs.

Errors are printed as one clear line on stderr and exit with status 2, never a traceback.
Passwords in database URLs are never printed.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, NoReturn

import click
import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text
from sqlalchemy import Engine

from probe.store import engine as store_engine
from probe.store.catalog import find_endpoint
from probe.store.errors import StoreError
from probe.store.queries import check_history, document_history, run_history
from probe.store.tables import DocumentKind

db_app = typer.Typer(
    name="db",
    help="Create, inspect and migrate the observation database.",
    no_args_is_help=True,
)

_out = Console(highlight=False, soft_wrap=True)
_err = Console(stderr=True, highlight=False, soft_wrap=True)

DbOption = Annotated[
    str | None,
    typer.Option(
        "--db",
        help="Database URL (default: $PROBE_DATABASE_URL, else sqlite:///probe.db).",
        show_default=False,
    ),
]


def _fail(message: str) -> NoReturn:
    _err.print(Text.assemble(("error: ", "bold red"), message))
    raise typer.Exit(2)


@contextmanager
def _engine(db: str | None) -> Iterator[Engine]:
    """An engine for `db`, disposed afterwards; StoreErrors become a message and exit 2."""
    try:
        engine = store_engine.create_store_engine(db)
    except StoreError as exc:
        _fail(str(exc))
    try:
        yield engine
    except StoreError as exc:
        _fail(str(exc))
    finally:
        engine.dispose()


def _missing_sqlite_file(engine: Engine) -> bool:
    url = engine.url
    database = url.database or ""
    return (
        url.get_backend_name() == "sqlite"
        and database not in ("", ":memory:")
        and not database.startswith("file:")
        and not Path(database).exists()
    )


@db_app.command("upgrade")
def upgrade_command(db: DbOption = None) -> None:
    """Migrate the database to this probe's schema (creates the schema in an empty database)."""
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
def current_command(db: DbOption = None) -> None:
    """Show the database's schema revision and whether it is this probe's head."""
    with _engine(db) as engine:
        name = store_engine.safe_url(engine.url)
        if _missing_sqlite_file(engine):
            _out.print(f"{name}: no database yet; `probe db upgrade` creates it")
            return
        state = store_engine.revision_state(engine)
        if not state.known:
            _fail(str(store_engine.unknown_revision_error(state, engine.url)))
        if state.current is None:
            _out.print(f"{name}: empty (no revision); `probe db upgrade` creates the schema")
        elif state.at_head:
            _out.print(f"{name}: revision {state.current} (head)")
        else:
            _out.print(
                f"{name}: revision {state.current}, behind head {state.head}; "
                "run `probe db upgrade`"
            )


@db_app.command("downgrade")
def downgrade_command(
    revision: Annotated[
        str, typer.Argument(help="Revision to go back to; 'base' drops every probe table.")
    ],
    db: DbOption = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    """Migrate the database back to REVISION (data in dropped tables or columns is lost)."""
    with _engine(db) as engine:
        name = store_engine.safe_url(engine.url)
        if _missing_sqlite_file(engine):
            _fail(f"no database at {engine.url.database}; nothing to downgrade")
        state = store_engine.revision_state(engine)
        if not state.known:
            _fail(str(store_engine.unknown_revision_error(state, engine.url)))
        known = ["base", *store_engine.known_revisions()]
        if revision not in known:
            _fail(f"unknown revision {revision!r}; known revisions: {', '.join(known)}")
        if not yes:
            try:
                confirmed = typer.confirm(
                    f"Downgrade {name} from {state.current or '(empty)'} to {revision}? "
                    "Data in dropped tables is lost",
                    default=False,
                )
            except click.exceptions.Abort:
                confirmed = False
            if not confirmed:
                _fail("downgrade not confirmed (pass --yes to skip the question)")
        store_engine.downgrade(engine, revision)
        _out.print(f"{name}: downgraded from {state.current or '(empty)'} to {revision}")


def history(
    base_url: Annotated[str, typer.Argument(help="FHIR base URL of the endpoint.")],
    check: Annotated[
        str | None, typer.Option("--check", help="Show this check's verdicts run by run.")
    ] = None,
    environment: Annotated[
        str | None, typer.Option("--environment", help="production or sandbox.")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, help="How many runs to show.")] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")] = False,
    db: DbOption = None,
) -> None:
    """Show how an endpoint fared in stored runs, newest first, and when its documents changed."""
    try:
        store = store_engine.open_store(db, migrate=False)
    except StoreError as exc:
        _fail(str(exc))
    with store, store.session() as session:
        endpoint = find_endpoint(session, base_url, environment)
        if endpoint is None:
            where = store_engine.safe_url(store.engine.url)
            _fail(f"no stored observations for {base_url} in {where}")
        runs = run_history(session, endpoint.id, limit=limit)
        verdicts = check_history(session, endpoint.id, check, limit=limit) if check else []
        documents = {
            str(kind): document_history(session, endpoint.id, kind) for kind in DocumentKind
        }
    if as_json:
        data = {
            "base_url": endpoint.base_url,
            "environment": endpoint.environment,
            "runs": [
                {
                    "run_id": r.run_id,
                    "kind": r.kind,
                    "status": r.run_status,
                    "started_at": r.started_at.isoformat(),
                    "checks": r.counts,
                }
                for r in runs
            ],
            "check": [
                {
                    "run_id": v.run_id,
                    "check_id": v.check_id,
                    "status": v.status,
                    "message": v.message,
                    "observed_at": v.observed_at.isoformat(),
                }
                for v in verdicts
            ],
            "documents": {
                kind: [
                    {
                        "content_hash": ver.content_hash,
                        "first_seen": ver.first_seen.isoformat(),
                        "last_seen": ver.last_seen.isoformat(),
                        "sightings": ver.sightings,
                    }
                    for ver in versions
                ]
                for kind, versions in documents.items()
            },
        }
        _out.print_json(json.dumps(data))
        return
    table = Table(title=f"{endpoint.base_url} ({endpoint.environment})")
    for column in ("run", "started", "kind", "run status", "pass", "fail", "warn", "skip", "error"):
        table.add_column(column)
    for r in runs:
        table.add_row(
            str(r.run_id),
            r.started_at.strftime("%Y-%m-%d %H:%M"),
            r.kind,
            r.run_status,
            *(str(r.counts.get(s, 0)) for s in ("pass", "fail", "warn", "skip", "error")),
        )
    _out.print(table)
    if check:
        detail = Table(title=check)
        for column in ("run", "observed", "status", "message"):
            detail.add_column(column)
        for v in verdicts:
            detail.add_row(
                str(v.run_id), v.observed_at.strftime("%Y-%m-%d %H:%M"), v.status, v.message
            )
        _out.print(detail)
    for kind, versions in documents.items():
        if versions:
            _out.print(f"{kind}: {len(versions)} version(s) seen")
            for ver in versions:
                _out.print(
                    f"  {ver.content_hash[:12]}  {ver.first_seen:%Y-%m-%d} .. "
                    f"{ver.last_seen:%Y-%m-%d}  ({ver.sightings} sighting(s))"
                )
