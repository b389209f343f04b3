"""`probe check BASE_URL`: the discovery suite against one FHIR base URL.

``--format json`` prints the ``check`` JSON contract (docs/contracts.md); ``--format sarif`` a
SARIF 2.1.0 log with one result per failed or warned check.

Exit codes: 0 no required check failed, 1 a required check failed, 2 usage or configuration
error, 130 interrupted.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated

if TYPE_CHECKING:
    from probe.models import Report
import typer
from rich.console import Console

from probe.cli import options_bounds as bounds
from probe.cli.fail import base_url_argument, fail
from probe.cli.options import CaBundleOption, DbOption
from probe.cli.render import print_report, report_json, report_sarif
from probe.cli.width import output_console


def check_command(
    base_url: Annotated[
        str, typer.Argument(help="FHIR base URL, e.g. https://fhir.payer.example/r4")
    ],
    output_format: Annotated[
        str, typer.Option("--format", help="table, json or sarif", case_sensitive=False)
    ] = "table",
    timeout: Annotated[
        float, typer.Option("--timeout", min=0.1, help="seconds allowed per request")
    ] = 20.0,
    ca_bundle: CaBundleOption = None,
    save: Annotated[bool, typer.Option("--save", help="store the run in the database")] = False,
    db: DbOption = None,
    max_body_mb: bounds.MaxBodyMb = bounds.DEFAULT_MAX_BODY_MB,
    max_redirects: bounds.MaxRedirects = bounds.DEFAULT_MAX_REDIRECTS,
    max_retries: bounds.MaxRetries = bounds.DEFAULT_MAX_RETRIES,
    max_json_depth: bounds.MaxJsonDepth = bounds.DEFAULT_MAX_JSON_DEPTH,
    cross_origin_redirects: bounds.CrossOriginRedirects = False,
    breaker_threshold: bounds.BreakerThreshold = bounds.DEFAULT_BREAKER_THRESHOLD,
) -> None:
    """Run the discovery suite against one FHIR base URL."""
    import anyio

    from probe.checks.discovery import run_discovery
    from probe.http.fetch import Fetcher, new_client
    from probe.http.guard import AddressGuard
    from probe.store.engine import open_store
    from probe.store.errors import StoreError
    from probe.store.reports import save_report

    url = base_url_argument(base_url)
    if output_format.lower() not in ("table", "json", "sarif"):
        fail(f"--format must be table, json or sarif, not {output_format!r}")
    limits = bounds.fetch_limits(
        timeout,
        max_body_mb=max_body_mb,
        max_redirects=max_redirects,
        max_retries=max_retries,
        max_json_depth=max_json_depth,
        cross_origin_redirects=cross_origin_redirects,
    )

    async def go() -> Report:
        guard = AddressGuard()
        guard.admit(url)
        async with new_client(verify=ca_bundle or True, guard=guard) as client:
            breaker = bounds.breaker_for(breaker_threshold)
            fetcher = Fetcher(client, limits, breaker=breaker, guard=guard)
            return await run_discovery(fetcher, url)

    try:
        report = anyio.run(go)
    except KeyboardInterrupt:
        raise typer.Exit(130) from None
    if output_format.lower() == "json":
        sys.stdout.write(report_json(report) + "\n")
    elif output_format.lower() == "sarif":
        sys.stdout.write(report_sarif(report) + "\n")
    else:
        print_report(report, output_console())
    if save:
        try:
            with open_store(db) as store:
                run_id = save_report(store, report)
        except StoreError as exc:
            Console(stderr=True).print(f"error: could not save: {exc}", markup=False)
            raise typer.Exit(2) from None
        Console(stderr=True).print(f"saved as run {run_id}", markup=False)
    raise typer.Exit(1 if report.failed_required else 0)
