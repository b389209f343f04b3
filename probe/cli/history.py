"""`probe history URL`: how an endpoint fared in stored runs, newest first, and when its documents
changed.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from rich.table import Table

from probe.cli.fail import fail
from probe.cli.machine import contract_json
from probe.cli.options import DbOption
from probe.cli.reading import read_store, require_known_check
from probe.cli.safe_text import cell, line
from probe.cli.width import output_console

_out = output_console(highlight=False, soft_wrap=True)  # sized when the command loads


def history_command(
    base_url: Annotated[str, typer.Argument(help="FHIR base URL of the endpoint.")],
    check: Annotated[
        str | None, typer.Option("--check", help="Show this check's verdicts run by run.")
    ] = None,
    environment: Annotated[
        str | None, typer.Option("--environment", help="production or sandbox.")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, help="How many runs to show.")] = 20,
    output_format: Annotated[
        str, typer.Option("--format", help="text or json.", case_sensitive=False)
    ] = "text",
    as_json: Annotated[
        bool, typer.Option("--json", hidden=True, help="Deprecated: use --format json.")
    ] = False,
    db: DbOption = None,
) -> None:
    """Show how an endpoint fared in stored runs, newest first, and when its documents changed."""
    from probe.store import engine as store_engine
    from probe.store.catalog import find_endpoint
    from probe.store.queries import check_history, document_history, run_history
    from probe.store.tables import DocumentKind

    fmt = "json" if as_json else output_format.lower()
    if fmt == "table":  # what the other commands call their text output
        fmt = "text"
    if fmt not in ("text", "json"):
        fail(f"--format must be text or json, not {output_format!r}")
    store = read_store(db)  # never creates a database
    with store, store.session() as session:
        if check:
            require_known_check(session, check)
        endpoint = find_endpoint(session, base_url, environment)
        if endpoint is None:
            where = store_engine.safe_url(store.engine.url)
            fail(f"no stored observations for {base_url} in {where}")
        runs = run_history(session, endpoint.id, limit=limit)
        verdicts = check_history(session, endpoint.id, check, limit=limit) if check else []
        documents = {
            str(kind): document_history(session, endpoint.id, kind) for kind in DocumentKind
        }
    if fmt == "json":
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
        sys.stdout.write(contract_json("history", data) + "\n")
        return
    table = Table(title=line(f"{endpoint.base_url} ({endpoint.environment})"))
    for column in ("run", "started", "kind", "run status", "pass", "fail", "warn", "skip", "error"):
        table.add_column(column)
    for r in runs:
        table.add_row(
            str(r.run_id),
            r.started_at.strftime("%Y-%m-%d %H:%M"),
            cell(r.kind),
            cell(r.run_status),
            *(str(r.counts.get(s, 0)) for s in ("pass", "fail", "warn", "skip", "error")),
        )
    _out.print(table)
    if check:
        detail = Table(title=line(check))
        for column in ("run", "observed", "status", "message"):
            detail.add_column(column)
        for v in verdicts:
            detail.add_row(
                str(v.run_id),
                v.observed_at.strftime("%Y-%m-%d %H:%M"),
                cell(v.status),
                cell(v.message),
            )
        _out.print(detail)
    for kind, versions in documents.items():
        if versions:
            _out.print(line(f"{kind}: {len(versions)} version(s) seen"))
            for ver in versions:
                _out.print(
                    line(
                        f"  {ver.content_hash[:12]}  {ver.first_seen:%Y-%m-%d} .. "
                        f"{ver.last_seen:%Y-%m-%d}  ({ver.sightings} sighting(s))"
                    )
                )
