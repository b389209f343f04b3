"""`probe sync BASE_URL --patient ID`: sync one test patient and print its figures.

Exit codes: 0 the sync completed (or partially), 1 it got no data, 2 usage error, 130 interrupted.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated

from probe.cli.options import CaBundleOption, TokenStoreOption
from probe.sync.limits import SyncLimits

if TYPE_CHECKING:
    from probe.sync.result import SyncResult
import typer

import probe.cli.options_credentials as opts
from probe.cli import options_bounds as bounds
from probe.cli.fail import base_url_argument, fail
from probe.cli.options_credentials import credentials_from_options

_SYNC_DEFAULTS = SyncLimits()


def sync_command(
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
    token_store: TokenStoreOption = None,
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
    ca_bundle: CaBundleOption = None,
) -> None:
    """Sync one test patient ($everything, paging, fallback, references) and print figures."""
    from probe.cli.quick_exit import pause_gc, skip_teardown

    pause_gc()  # a bounded one-shot sync: reference counting frees its pages (see quick_exit)
    from probe.cli.lean_imports import import_httpx

    import_httpx()  # before probe.http: without httpx's own CLI (click, pygments; ~40 ms)
    import anyio

    from probe.directory.secrets import SecretSource, TokenStore
    from probe.http.fetch import Fetcher, new_client
    from probe.http.guard import AddressGuard
    from probe.sync.limits import SyncLimits
    from probe.sync.session import sync_with_discovery, warm_up_validation

    url = base_url_argument(base_url)
    if output_format.lower() not in ("table", "json"):
        fail(f"--format must be table or json, not {output_format!r}")
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
        fail(str(exc))
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

    def while_the_server_works() -> None:
        """Called once the discovery documents are in (the patient's first request went out
        with them): the validator's warm-up, and the output's modules imported while the server
        prepares its answer rather than after it."""
        if not no_validate:
            warm_up_validation()
        import probe.cli.render  # noqa: F401

    async def go() -> SyncResult:
        guard = AddressGuard()
        guard.admit(url, token_url)
        async with new_client(verify=ca_bundle or True, guard=guard) as client:
            breaker = bounds.breaker_for(breaker_threshold)
            fetcher = Fetcher(client, limits, breaker=breaker, guard=guard)
            # The two documents the sync reads (without discovery's checks: none is printed)
            # are fetched while `$everything` is already on its way. The validator's one-time
            # build (about 60 ms of CPU, mostly holding the GIL) starts once they are in: the
            # patient's first request is out by then, and the build runs while the server
            # prepares its answer instead of delaying the requests.
            return await sync_with_discovery(
                fetcher,
                url,
                patient,
                credentials,
                SecretSource(),
                on_documents=while_the_server_works,
                patient_label=label,
                token_store=TokenStore(token_store) if token_store else None,
                limits=sync_limits,
            )

    try:
        result = anyio.run(go)
    except KeyboardInterrupt:
        raise typer.Exit(130) from None
    from probe.cli.render import sync_json, sync_tables

    if output_format.lower() == "json":
        sys.stdout.write(sync_json(result) + "\n")
    else:
        from rich.console import Console

        console = Console()
        for table in sync_tables(result):
            console.print(table)
    skip_teardown()  # nothing left to write: the process ends once output is flushed
    raise typer.Exit(0 if result.outcome in ("completed", "partial") else 1)
