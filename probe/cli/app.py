"""The `probe` command line: parses arguments, calls the layers below, renders their results.

Exit codes: 0 success (no required check failed), 1 a required check failed, 2 usage or
configuration error. Sub-command groups live beside the layer they drive and are added here.
"""

from __future__ import annotations

import sys
from typing import Annotated

import anyio
import typer
from rich.console import Console

import probe.cli.options_credentials as opts
from probe.checks.discovery import run_discovery
from probe.cli import options_bounds as bounds
from probe.cli.db import DbOption, db_app, history
from probe.cli.directory import directory_app
from probe.cli.drift import drift_app
from probe.cli.fleet import fleet_app
from probe.cli.options_credentials import credentials_from_options
from probe.cli.prerelease import prerelease_command
from probe.cli.render import print_report, report_json, sync_json, sync_tables
from probe.cli.run import run_command
from probe.cli.score import import_app, report_command, score_command
from probe.directory.secrets import SecretSource, TokenStore
from probe.http.fetch import Fetcher, new_client
from probe.http.guard import AddressGuard
from probe.models import Report
from probe.store.engine import open_store
from probe.store.errors import StoreError
from probe.store.reports import save_report
from probe.sync.limits import SyncLimits
from probe.sync.result import SyncResult
from probe.sync.session import sync_patient

_SYNC_DEFAULTS = SyncLimits()

app = typer.Typer(
    name="probe",
    help="Conformance prober for US payer FHIR Patient Access APIs (CMS-9115-F).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _root() -> None:
    """Conformance prober for US payer FHIR Patient Access APIs (CMS-9115-F)."""


app.add_typer(db_app, name="db")
app.add_typer(fleet_app, name="fleet")
app.add_typer(directory_app, name="directory")
app.command("run")(run_command)
app.command("history")(history)
app.add_typer(import_app, name="import")
app.command("score")(score_command)
app.command("report")(report_command)
app.command("prerelease")(prerelease_command)
app.add_typer(drift_app, name="drift")


def _fail_usage(message: str) -> typer.Exit:
    Console(stderr=True).print(f"[bold red]error:[/] {message}")
    return typer.Exit(2)


def _check_base_url(value: str) -> str:
    from urllib.parse import urlsplit

    parts = urlsplit(value.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise typer.BadParameter(f"{value!r} is not an absolute http(s) URL")
    return value.strip()


@app.command()
def check(
    base_url: Annotated[
        str, typer.Argument(help="FHIR base URL, e.g. https://fhir.payer.example/r4")
    ],
    output_format: Annotated[
        str, typer.Option("--format", help="table or json", case_sensitive=False)
    ] = "table",
    timeout: Annotated[
        float, typer.Option("--timeout", min=0.1, help="seconds allowed per request")
    ] = 20.0,
    ca_bundle: Annotated[
        str | None, typer.Option("--ca-bundle", help="CA bundle file for private CAs")
    ] = None,
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
    url = _check_base_url(base_url)
    if output_format.lower() not in ("table", "json"):
        raise _fail_usage(f"--format must be table or json, not {output_format!r}")
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
    else:
        print_report(report, Console())
    if save:
        try:
            with open_store(db) as store:
                run_id = save_report(store, report)
        except StoreError as exc:
            Console(stderr=True).print(f"error: could not save: {exc}", markup=False)
            raise typer.Exit(2) from None
        Console(stderr=True).print(f"saved as run {run_id}", markup=False)
    raise typer.Exit(1 if report.failed_required else 0)


@app.command()
def sync(
    base_url: Annotated[str, typer.Argument(help="FHIR base URL")],
    patient: Annotated[str, typer.Option("--patient", help="test patient's FHIR id")],
    label: Annotated[str | None, typer.Option(help="label for reports")] = None,
    token_env: opts.TokenEnv = None,
    refresh_token_env: opts.RefreshTokenEnv = None,
    client_id: opts.ClientId = None,
    client_secret_env: opts.ClientSecretEnv = None,
    auth_method: opts.AuthMethod = "client_secret_basic",
    private_key_env: opts.PrivateKeyEnv = None,
    key_id: opts.KeyId = None,
    algorithm: opts.Algorithm = "RS384",
    scope: opts.Scope = None,
    token_url: opts.TokenUrl = None,
    token_store: opts.TokenStorePath = None,
    page_size: opts.PageSize = 200,
    max_pages: Annotated[int, typer.Option(min=1, help="page cap (finding: page_cap)")] = 500,
    max_references: Annotated[
        int, typer.Option(min=0, help="references fetched at most (reference_cap)")
    ] = _SYNC_DEFAULTS.max_references,
    deadline: Annotated[
        float, typer.Option("--deadline", min=1, help="seconds for the whole sync (deadline)")
    ] = _SYNC_DEFAULTS.deadline_s,
    max_body_mb: bounds.MaxBodyMb = bounds.DEFAULT_MAX_BODY_MB,
    max_redirects: bounds.MaxRedirects = bounds.DEFAULT_MAX_REDIRECTS,
    max_retries: bounds.MaxRetries = bounds.DEFAULT_MAX_RETRIES,
    breaker_threshold: bounds.BreakerThreshold = bounds.DEFAULT_BREAKER_THRESHOLD,
    no_validate: opts.NoValidate = False,
    output_format: Annotated[str, typer.Option("--format", help="table or json")] = "table",
    timeout: Annotated[float, typer.Option(min=0.1, help="seconds per request")] = 20.0,
    ca_bundle: Annotated[str | None, typer.Option(help="CA bundle for private CAs")] = None,
) -> None:
    """Sync one test patient ($everything, paging, fallback, references) and print figures."""
    url = _check_base_url(base_url)
    if output_format.lower() not in ("table", "json"):
        raise _fail_usage(f"--format must be table or json, not {output_format!r}")
    try:
        credentials = credentials_from_options(
            token_env=token_env,
            refresh_token_env=refresh_token_env,
            client_id=client_id,
            client_secret_env=client_secret_env,
            auth_method=auth_method,
            private_key_env=private_key_env,
            key_id=key_id,
            algorithm=algorithm,
            scope=scope,
            token_url=token_url,
        )
    except ValueError as exc:
        raise _fail_usage(str(exc)) from None
    limits = bounds.fetch_limits(
        timeout, max_body_mb=max_body_mb, max_redirects=max_redirects, max_retries=max_retries
    )
    sync_limits = SyncLimits(
        page_size=page_size,
        max_pages=max_pages,
        max_references=max_references,
        deadline_s=deadline,
        validate=not no_validate,
    )

    async def go() -> SyncResult:
        guard = AddressGuard()
        guard.admit(url, token_url)
        async with new_client(verify=ca_bundle or True, guard=guard) as client:
            breaker = bounds.breaker_for(breaker_threshold)
            fetcher = Fetcher(client, limits, breaker=breaker, guard=guard)
            report = await run_discovery(fetcher, url)
            return await sync_patient(
                fetcher,
                report.base_url,
                patient,
                credentials,
                SecretSource(),
                patient_label=label,
                capability=report.documents.get("capability"),
                smart_configuration=report.documents.get("smart_configuration"),
                token_store=TokenStore(token_store) if token_store else None,
                limits=sync_limits,
            )

    try:
        result = anyio.run(go)
    except KeyboardInterrupt:
        raise typer.Exit(130) from None
    if output_format.lower() == "json":
        sys.stdout.write(sync_json(result) + "\n")
    else:
        console = Console()
        for table in sync_tables(result):
            console.print(table)
    raise typer.Exit(0 if result.outcome in ("completed", "partial") else 1)


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
