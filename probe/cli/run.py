"""`probe run endpoints.yaml`: the nightly crawl command (argument parsing and output only)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

from probe.crawl.options import MAX_SIZED_CONCURRENCY, CrawlOptions

if TYPE_CHECKING:
    from probe.crawl.crawler import CrawlSummary
import typer
from rich.console import Console

from probe.cli import options_bounds as bounds
from probe.cli.options import CaBundleOption, DbOption, TokenStoreOption
from probe.cli.progress import SUMMARY_DROPS, reporter_for, summary_table
from probe.cli.reading import NOTHING_TO_RESUME, resumable_run
from probe.cli.safe_text import line as text_line
from probe.cli.safe_text import safe
from probe.cli.width import fit_columns, output_console
from probe.http.redact import redact_url

EXIT_LOCKED = 3
EXIT_STORE = 4
_CRAWL_DEFAULTS = CrawlOptions()


def run_command(
    ctx: typer.Context,
    directory_file: Annotated[Path, typer.Argument(help="the endpoints directory (YAML)")],
    db: DbOption = None,
    only: Annotated[
        list[str] | None, typer.Option("--only", help="probe only this payer (repeatable)")
    ] = None,
    shard: Annotated[
        str | None, typer.Option(help="I/N: probe the I-th of N stable slices of the directory")
    ] = None,
    concurrency: Annotated[
        int | None,
        typer.Option(
            min=1,
            metavar="N",
            help="endpoints probed at once [default: every host's --per-host lanes, "
            f"{_CRAWL_DEFAULTS.concurrency} to {MAX_SIZED_CONCURRENCY}]",
        ),
    ] = None,
    total_requests: Annotated[
        int,
        typer.Option(
            "--total-requests",
            min=1,
            metavar="N",
            help="requests in flight in the whole crawl (per-host limits still apply)",
        ),
    ] = _CRAWL_DEFAULTS.total_requests,
    per_host: Annotated[
        int, typer.Option(min=1, help="requests in flight per host")
    ] = _CRAWL_DEFAULTS.per_host,
    rate: Annotated[
        float,
        typer.Option(
            min=0.01,
            help="request starts per second per host (a ceiling: slower when a host throttles)",
        ),
    ] = _CRAWL_DEFAULTS.rate,
    timeout: Annotated[float, typer.Option(min=0.1, help="seconds per request")] = 20.0,
    no_sync: Annotated[bool, typer.Option("--no-sync", help="discovery only")] = False,
    no_portal: Annotated[bool, typer.Option("--no-portal", help="skip developer portals")] = False,
    browsers: Annotated[
        int, typer.Option("--browsers", min=1, help="browser authorizations at once")
    ] = _CRAWL_DEFAULTS.browsers,
    resume: Annotated[
        bool, typer.Option("--resume", help="finish the last interrupted run instead of a new one")
    ] = False,
    workers: Annotated[
        int,
        typer.Option(
            min=1, max=64, metavar="N", help="worker processes on this machine sharing the run"
        ),
    ] = 1,
    join: Annotated[
        int | None,
        typer.Option(
            metavar="RUN",
            help="join running run RUN as one more worker (any machine sharing the database)",
        ),
    ] = None,
    join_pipe: Annotated[
        bool,
        typer.Option(
            "--join-pipe",
            hidden=True,
            help="join the run whose id `probe run --workers` writes on standard input",
        ),
    ] = False,
    lease: Annotated[
        float,
        typer.Option(
            min=1,
            metavar="SECONDS",
            help="how long a worker's claim on a host lasts unrenewed (a dead worker's hosts "
            "are taken over after it)",
        ),
    ] = _CRAWL_DEFAULTS.lease,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="validate and list what would be probed")
    ] = False,
    token_store: TokenStoreOption = None,
    ca_bundle: CaBundleOption = None,
    notify_webhook: Annotated[
        str | None, typer.Option(help="POST the run's new drift events (JSON) to this URL")
    ] = None,
    drift_slower_percent: Annotated[
        float, typer.Option(min=0, help="drift: a sync this much slower (median, %) ...")
    ] = 50.0,
    drift_slower_seconds: Annotated[
        float, typer.Option(min=0, help="... and this many seconds slower is notable")
    ] = 2.0,
    endpoint_deadline: Annotated[
        float,
        typer.Option(min=1, help="seconds for everything about one endpoint (endpoint_deadline)"),
    ] = _CRAWL_DEFAULTS.endpoint_deadline,
    max_pages: Annotated[
        int, typer.Option(min=1, help="pages per sync (page_cap)")
    ] = _CRAWL_DEFAULTS.sync_limits.max_pages,
    max_references: Annotated[
        int, typer.Option(min=0, help="references fetched per sync (reference_cap)")
    ] = _CRAWL_DEFAULTS.sync_limits.max_references,
    max_body_mb: bounds.MaxBodyMb = bounds.DEFAULT_MAX_BODY_MB,
    max_redirects: bounds.MaxRedirects = bounds.DEFAULT_MAX_REDIRECTS,
    max_retries: bounds.MaxRetries = bounds.DEFAULT_MAX_RETRIES,
    cross_origin_redirects: bounds.CrossOriginRedirects = False,
    breaker_threshold: bounds.BreakerThreshold = bounds.DEFAULT_BREAKER_THRESHOLD,
    store_down_limit: Annotated[
        float,
        typer.Option(
            min=1, help="seconds the database may stay unreachable before the run stops (resumable)"
        ),
    ] = _CRAWL_DEFAULTS.store_down_limit,
) -> None:
    """Crawl every endpoint of a directory into the store (the nightly job), then detect drift."""
    from probe.cli.run_workers import (
        PoolReporter,
        WorkerPool,
        finish_pooled,
        pooled_line,
        wait_for_run_id,
    )

    err = Console(stderr=True)
    if (join is not None or join_pipe) and (resume or workers > 1):
        err.print("error: --join cannot be combined with --resume or --workers", markup=False)
        raise typer.Exit(2)
    # The other workers start before this process's own imports: they import and load the
    # directory while this process does the same and registers the run. When this process
    # finds an option or the directory wrong it reports, and they exit without a word.
    pool = WorkerPool(ctx, workers if not dry_run else 1)
    pool.spawn()

    import contextlib

    import anyio
    from sqlalchemy.exc import SQLAlchemyError

    from probe.cli.malloc import limit_malloc_arenas
    from probe.crawl.crawler import crawl, in_shard, parse_shard, unknown_names
    from probe.crawl.options import CrawlOptions
    from probe.directory.lean import load_lean_directory, select_refs
    from probe.directory.schema import DirectoryError
    from probe.directory.secrets import SecretSource
    from probe.drift.notify import validate_webhook_url
    from probe.drift.settings import DriftSettings, DriftThresholds
    from probe.store.engine import open_store
    from probe.store.errors import RunLockHeld, StoreError
    from probe.store.tables import RunStatus
    from probe.sync.limits import SyncLimits

    limit_malloc_arenas()  # before any thread starts: memory flat in the directory's size

    def refuse(lines: list[object], highlight: bool | None = None) -> NoReturn:
        if join_pipe and wait_for_run_id() is None:
            raise typer.Exit(0)  # worker 1 read the same file and reports
        for text in lines:
            err.print(text, highlight=highlight, markup=False)
        raise typer.Exit(2)

    try:
        try:  # drift options (docs/drift.md)
            webhook = validate_webhook_url(notify_webhook) if notify_webhook else None
            shard_spec = parse_shard(shard) if shard else None
        except ValueError as exc:
            refuse([f"error: {exc}"])
        try:
            directory = load_lean_directory(directory_file)  # held small: probe.directory.lean
        except DirectoryError as exc:
            refuse([text_line(problem) for problem in exc.problems], highlight=False)
        missing = unknown_names(directory, only or [])
        if missing:
            refuse([f"error: --only names no payer in the directory: {', '.join(missing)}"])
    except BaseException:
        pool.finish(err)  # not told a run: they exit as soon as their input closes
        raise
    chosen = select_refs(directory, only or [], lambda ref: in_shard(ref, shard_spec))
    if dry_run:
        for ref in chosen:
            t = directory.target(ref)
            sync_note = ""
            if t.endpoint.credentials and t.environment == t.endpoint.environment:
                sync_note = f"\tsync: {len(t.endpoint.test_patients)} patient(s)"
            name = safe(t.payer.name, one_line=True)
            typer.echo(f"{name}\t{t.environment}\t{safe(redact_url(t.base_url))}{sync_note}")
        typer.echo(f"{len(chosen)} endpoints would be probed")
        return
    if join_pipe:  # ready: wait for worker 1 to register the run
        from probe.sync.session import warm_up_validation

        warm_up_validation()  # its one-time build runs during the wait, not after it
        join = wait_for_run_id()
        if join is None:
            raise typer.Exit(0)  # worker 1 stopped before its run existed, and says why
    secrets_file = None
    if directory.secrets_file:
        secrets_file = (directory_file.parent / directory.secrets_file).resolve()
    options = CrawlOptions(
        concurrency=concurrency or _CRAWL_DEFAULTS.concurrency,
        size_to_hosts=concurrency is None,
        per_host=per_host,
        rate=rate,
        total_requests=total_requests,
        limits=bounds.fetch_limits(
            timeout,
            total=timeout * 1.5,
            max_body_mb=max_body_mb,
            max_redirects=max_redirects,
            max_retries=max_retries,
            cross_origin_redirects=cross_origin_redirects,
        ),
        sync_limits=SyncLimits(max_pages=max_pages, max_references=max_references),
        # A worker `--workers` started writes its output nowhere: no table to keep outcomes for.
        keep_outcomes=0 if join_pipe else _CRAWL_DEFAULTS.keep_outcomes,
        endpoint_deadline=endpoint_deadline,
        breaker_threshold=breaker_threshold,
        store_down_limit=store_down_limit,
        sync=not no_sync,
        portal=not no_portal,
        browsers=browsers,
        directory_dir=directory_file.parent.resolve(),
        lease=lease,
        token_store=token_store,
        verify=ca_bundle or True,
        drift=DriftSettings(
            observe_keys=True,
            thresholds=DriftThresholds(drift_slower_percent, drift_slower_seconds),
            webhook_url=webhook,
        ),
    )
    console = output_console()  # $COLUMNS, the terminal, else 160 (cron and journald logs)
    try:
        store = open_store(db)
    except StoreError as exc:
        err.print(f"error: {exc}", markup=False)
        raise typer.Exit(EXIT_STORE) from None
    lock_name = "nightly" if shard_spec is None else f"nightly:{shard_spec[0]}/{shard_spec[1]}"
    reporter = reporter_for(err)
    try:
        # A joining worker shares a run whose first worker holds the lock.
        with store, store.run_lock(lock_name) if join is None else contextlib.nullcontext():
            if resume and resumable_run(store) is None:
                err.print(NOTHING_TO_RESUME, markup=False)
                return

            async def go() -> CrawlSummary:
                return await crawl(
                    store,
                    directory,
                    chosen,
                    options,
                    PoolReporter(reporter, pool) if workers > 1 else reporter,
                    secrets=SecretSource(secrets_file),
                    resume=resume,
                    handle_signals=True,
                    join=join,
                )

            try:
                summary = anyio.run(go)
                if workers > 1:  # this worker's table while the others finish their shares
                    print_outcomes(console, summary)
            finally:
                pool.finish(err)  # the other workers: awaited, or stopped if this one was
            if workers > 1:
                summary = finish_pooled(store, summary)
                whole_run = pooled_line(store, summary.run_id)
    except RunLockHeld as exc:
        err.print(f"error: {exc}", markup=False)
        raise typer.Exit(EXIT_LOCKED) from None
    except (StoreError, SQLAlchemyError) as exc:
        err.print(f"error: the store failed: {exc}", markup=False)
        raise typer.Exit(EXIT_STORE) from None
    if workers == 1 and not join_pipe:
        print_outcomes(console, summary)
    console.print(
        f"run {summary.run_id} {summary.status}: {summary.probed} probed"
        + (f" by this worker ({summary.claims.hosts} hosts)" if join or workers > 1 else "")
        + (f", {summary.skipped_done} already done" if summary.resumed else "")
        + ("" if summary.ended_run else "; another worker records the end of the run"),
        markup=False,
    )
    if workers > 1:
        console.print(whole_run, markup=False)
    for drift_line in summary.drift.lines() if summary.drift else []:  # drift: detection, webhook
        console.print(text_line(drift_line))
    for circuit in summary.open_circuits:  # hosts the breaker stopped (docs/hostile.md)
        console.print(f"circuit open for {circuit.host}: {circuit.reason}", markup=False)
    from probe.cli.quick_exit import skip_teardown

    skip_teardown()  # the store is closed and the summary printed: no interpreter teardown
    if summary.store_error is not None:
        err.print(
            f"error: {summary.store_error}; endpoints not written are not marked done: "
            "`probe run --resume` finishes the run once the database is back",
            markup=False,
        )
        raise typer.Exit(EXIT_STORE)
    if summary.status is RunStatus.INTERRUPTED:
        err.print("interrupted: `probe run --resume` finishes it", markup=False)
        raise typer.Exit(130)
    if summary.status is RunStatus.FAILED:
        raise typer.Exit(EXIT_STORE)


def print_outcomes(console: Console, summary: CrawlSummary) -> None:
    """The table of this worker's outcomes (those most in need of attention, at most
    `keep_outcomes`), and how many of its endpoints it leaves out."""
    console.print(fit_columns(summary_table(summary.outcomes), console.width, SUMMARY_DROPS))
    if summary.probed > len(summary.outcomes):  # the rest is in the store, not in memory
        console.print(
            f"(the table lists {len(summary.outcomes)} of {summary.probed} endpoints, those "
            "with errors and failed required checks first; "
            "`probe history` and `probe report` read them all from the store)",
            markup=False,
        )
