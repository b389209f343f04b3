"""`probe prerelease STAGING_URL`: test a release candidate end to end, compare it with production.

The candidate gets the full treatment: discovery, the JWKS, and a sync of each test patient.
The baseline is either a live base URL (``--baseline``: discovery and JWKS, no sync, since its
test patients and credentials are production's) or a stored run (``--baseline-run``: its
documents, discovery evidence, key ids and sync jobs, so behaviour such as $everything support,
paging and sync speed is compared too). The change classifier of :mod:`probe.drift.classify`
compares the two; the candidate is scored; the gate decides the exit code.

Score (``--fail-under``): the *prerelease score* is the packaged payer rubric restricted to the
metrics one run of probe can observe (every metric whose sources include ``observed``, except
``sandbox``: the candidate is itself pre-production) — capability_statement,
smart_configuration, refresh_token, request_success, reference_resolution, carin_bb, clinical,
sync_speed and everything, 47 rubric points possible — scored exactly as the rubric scores them.
A metric that had no data in this run (no --patient: every sync metric; refresh_token with a
static bearer token) was not tested: it counts 0 of its points, and the output lists it. The
score is ``round(100 * earned / possible)``: a gate never passes on what it did not test.
``--discovery-only`` gates on the discovery criteria alone (capability_statement and
smart_configuration, 4 points), and the output says so. ``--fail-on breaking`` or ``notable``
without a baseline fails the gate (nothing was compared). The raw rubric total (out of 100, the
configured metrics as not enough data) is reported beside it for reference.

``--format json`` prints the ``prerelease`` JSON contract (docs/contracts.md); ``--format
sarif`` prints a SARIF 2.1.0 log (failed and warned checks, breaking and notable changes).

Exit codes: 0 the gate passed, 1 the gate failed (``--fail-on breaking`` and a breaking change,
``--fail-on notable``, ``--fail-on required`` and a failed required check, or a score below
``--fail-under``), 2 bad usage (one line on stderr, never a traceback).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

if TYPE_CHECKING:
    from probe.prerelease.baseline import Baseline
    from probe.prerelease.run import PrereleaseResult
    from probe.store.handle import Store
import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

import probe.cli.options_credentials as opts
from probe.cli.fail import absolute_url, fail
from probe.cli.machine import contract_json, strict_json
from probe.cli.options import CaBundleOption, DbOption, TokenStoreOption
from probe.cli.options_credentials import credentials_from_options
from probe.cli.reading import read_store
from probe.cli.safe_text import cell, line, safe
from probe.cli.width import output_console

EXIT_PASS = 0
EXIT_GATE_FAILED = 1
EXIT_USAGE = 2

KIND_STYLE = {"breaking": "bold red", "notable": "yellow", "cosmetic": "dim"}

# -- terminal ------------------------------------------------------------------------------------


def print_summary(result: PrereleaseResult, console: Console) -> None:
    """The human summary: verdict, score, changes by kind, breaking changes, gate reasons."""
    from probe.drift.classify import ChangeKind
    from probe.prerelease.report import (
        baseline_line,
        not_tested_lines,
        score_line,
        value_text,
        verdict,
    )

    counts = result.counts
    console.print(
        Text.assemble(
            (
                f"prerelease {verdict(result)}",
                {"PASSED": "bold green", "FAILED": "bold red"}.get(verdict(result), "bold yellow"),
            ),
            f": {safe(result.candidate.report.base_url, one_line=True)}",
        )
    )
    console.print(line(baseline_line(result)))
    console.print(line(score_line(result)))
    for entry in not_tested_lines(result):
        console.print(line(entry), style="yellow")
    report = result.candidate.report
    summary = ", ".join(f"{n} {k}" for k, n in report.summary.items() if n)
    console.print(line(f"checks: {summary}"))
    for sync in result.candidate.syncs:
        console.print(
            line(
                f"sync {sync.patient_label}: {sync.outcome}, "
                f"$everything {sync.everything.support_level}, "
                f"{sum(sync.resources_by_type.values())} resources"
            )
        )
    console.print(line("changes: " + ", ".join(f"{n} {k}" for k, n in counts.items())))
    shown = [c for c in result.changes if c.kind is not ChangeKind.COSMETIC]
    if shown:
        table = Table(title="changes against the baseline (cosmetic ones in the reports)")
        table.add_column("kind", no_wrap=True)
        table.add_column("change", overflow="fold")
        table.add_column("before → after", overflow="fold")
        table.add_column("reason", overflow="fold")
        for c in shown:
            table.add_row(
                Text(str(c.kind), style=KIND_STYLE[str(c.kind)]),
                cell(c.id),
                cell(f"{value_text(c.before, 50)} → {value_text(c.after, 50)}"),
                cell(c.reason),
            )
        console.print(table)
    for reason in result.gate.reasons:
        console.print(line(f"gate: {reason}"))
    if result.saved_run_id is not None:
        console.print(f"saved as run {result.saved_run_id}", markup=False)


# -- the command ---------------------------------------------------------------------------------

_err = Console(stderr=True, highlight=False)


def _writable(path: Path | None, option: str) -> None:
    if path is not None and not path.parent.is_dir():
        fail(f"{option} {path}: the directory {path.parent} does not exist")


def prerelease_command(
    staging_url: Annotated[str, typer.Argument(help="the release candidate's FHIR base URL")],
    baseline_url: Annotated[
        str | None,
        typer.Option("--baseline", help="production base URL, probed live (discovery and JWKS)"),
    ] = None,
    baseline_run: Annotated[
        int | None,
        typer.Option(help="a stored run as the baseline (documents, keys and sync behaviour)"),
    ] = None,
    baseline_endpoint: Annotated[
        str | None,
        typer.Option(help="with --baseline-run: which endpoint of that run (its base URL)"),
    ] = None,
    patient: Annotated[
        list[str] | None, typer.Option("--patient", help="test patient's FHIR id (repeatable)")
    ] = None,
    label: Annotated[str | None, typer.Option(help="label for a single test patient")] = None,
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
    max_pages: Annotated[int, typer.Option(min=1, help="page cap")] = 500,
    no_validate: opts.NoValidate = False,
    timeout: Annotated[float, typer.Option(min=0.1, help="seconds per request")] = 20.0,
    ca_bundle: CaBundleOption = None,
    html: Annotated[Path | None, typer.Option("--html", help="write the HTML report here")] = None,
    markdown: Annotated[
        Path | None, typer.Option("--markdown", help="write the Markdown report here")
    ] = None,
    junit: Annotated[Path | None, typer.Option("--junit", help="write JUnit XML here")] = None,
    fail_under: Annotated[
        int | None,
        typer.Option(min=0, max=100, help="exit 1 when the prerelease score is below this"),
    ] = None,
    fail_on: Annotated[
        list[str] | None,
        typer.Option(help="exit 1 on: breaking, notable (or breaking), required (repeatable)"),
    ] = None,
    slower_percent: Annotated[
        float, typer.Option(min=0, help="a sync this much slower (median, %) ...")
    ] = 50.0,
    slower_seconds: Annotated[
        float, typer.Option(min=0, help="... and this many seconds slower is notable")
    ] = 2.0,
    save: Annotated[
        bool, typer.Option("--save", help="store the candidate as a prerelease run (--db)")
    ] = False,
    db: DbOption = None,
    output_format: Annotated[
        str, typer.Option("--format", help="table, json or sarif (SARIF 2.1.0)")
    ] = "table",
    discovery_only: Annotated[
        bool,
        typer.Option(
            "--discovery-only",
            help="--fail-under gates on the discovery criteria only (no sync expected)",
        ),
    ] = False,
) -> None:
    """Test a release candidate end to end, compare it with production, gate a payer's CI."""
    import anyio

    from probe.drift.settings import DriftThresholds
    from probe.http.limits import Limits
    from probe.prerelease.baseline import PrereleaseError, stored_baseline
    from probe.prerelease.gate import FailOn
    from probe.prerelease.observe import PatientSpec
    from probe.prerelease.report import render_html, render_junit, render_markdown
    from probe.prerelease.run import PrereleaseOptions, run_prerelease, save_candidate
    from probe.store.engine import open_store
    from probe.store.errors import StoreError
    from probe.sync.limits import SyncLimits

    candidate_url = absolute_url(staging_url, "STAGING_URL")
    if baseline_url is not None and baseline_run is not None:
        fail("give --baseline URL or --baseline-run RUN_ID, not both")
    if baseline_endpoint is not None and baseline_run is None:
        fail("--baseline-endpoint needs --baseline-run")
    live_baseline = absolute_url(baseline_url, "--baseline") if baseline_url else None
    if output_format.lower() not in ("table", "json", "sarif"):
        fail(f"--format must be table, json or sarif, not {output_format!r}")
    try:
        gates = tuple(FailOn(v.lower()) for v in fail_on or [])
    except ValueError:
        fail(f"--fail-on takes breaking, notable or required, not {fail_on!r}")
    if any(not p.strip() for p in patient or []):
        fail("--patient needs a test patient's FHIR id, not an empty string")
    if label is not None and len(patient or []) > 1:
        fail("--label names a single --patient; with several, their ids are the labels")
    for path, option in ((html, "--html"), (markdown, "--markdown"), (junit, "--junit")):
        _writable(path, option)
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
    patients = tuple(
        PatientSpec(pid, label if label and len(patient or []) == 1 else pid)
        for pid in patient or []
    )
    store: Store | None = None
    baseline: Baseline | None = None
    try:
        if save:
            store = open_store(db)
        elif baseline_run is not None:
            store = read_store(db)  # only read: never creates a database
        if baseline_run is not None and store is not None:
            baseline = stored_baseline(store, baseline_run, baseline_endpoint)
    except (StoreError, PrereleaseError) as exc:
        if store is not None:
            store.close()
        fail(str(exc))
    options = PrereleaseOptions(
        patients=patients,
        credentials=credentials,
        limits=Limits(
            connect_timeout=min(timeout, 10.0), read_timeout=timeout, total_timeout=timeout * 1.5
        ),
        sync_limits=SyncLimits(page_size=page_size, max_pages=max_pages, validate=not no_validate),
        token_store=token_store,
        verify=ca_bundle or True,
        thresholds=DriftThresholds(slower_percent, slower_seconds),
        fail_under=fail_under,
        fail_on=gates,
        discovery_only=discovery_only,
    )

    async def go() -> PrereleaseResult:
        return await run_prerelease(
            candidate_url, options, baseline_url=live_baseline, baseline=baseline
        )

    try:
        result = anyio.run(go)
        if save and store is not None:
            result.saved_run_id = save_candidate(store, result.candidate)
    except KeyboardInterrupt:
        raise typer.Exit(130) from None
    except StoreError as exc:
        fail(f"could not save the candidate: {exc}")
    finally:
        if store is not None:
            store.close()
    try:
        if markdown is not None:
            markdown.write_text(render_markdown(result), encoding="utf-8")
        if html is not None:
            html.write_text(render_html(result), encoding="utf-8")
        if junit is not None:
            junit.write_text(render_junit(result), encoding="utf-8")
    except OSError as exc:
        fail(f"cannot write the report: {exc.strerror or exc}")
    if output_format.lower() == "json":
        sys.stdout.write(contract_json("prerelease", result.to_json()) + "\n")
    elif output_format.lower() == "sarif":
        from probe import __version__
        from probe.contracts.sarif import prerelease_sarif

        sys.stdout.write(strict_json(prerelease_sarif(result, version=__version__)) + "\n")
    else:
        console = output_console()  # $COLUMNS, the terminal, else 160 (probe/cli/width.py)
        print_summary(result, console)
    raise typer.Exit(EXIT_PASS if result.gate.passed else EXIT_GATE_FAILED)
