"""`probe fleet ...`: serve a simulated payer fleet on loopback for tests, demos and benchmarks."""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from probe.cli.fail import fail
from probe.cli.groups import HelpGroup

fleet_app = typer.Typer(
    cls=HelpGroup,
    help="A simulated fleet of payer FHIR servers on loopback (for tests, demos, benchmarks).",
    no_args_is_help=True,
)


def require_fleet_extra() -> None:
    """Exit 2 saying how to install the fleet's server when starlette or uvicorn is missing."""
    missing = []
    for name in ("starlette", "uvicorn"):
        try:
            importlib.import_module(name)
        except ImportError:
            missing.append(name)
    if missing:
        fail(
            f"the simulated fleet needs {' and '.join(missing)}, which are not installed: "
            "pip install 'probe[fleet]'"
        )


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def refuse_to_overwrite(path: Path, force: bool) -> None:
    """Exit 2 when `path` is a folder, or a file `probe fleet serve` did not write (a curated
    endpoints.yaml, say) and `force` is not given."""
    from probe.fleet.catalog import fleet_generated

    if path.is_dir():
        fail(f"{path} is a directory; give a file name")
    if path.exists() and not force and not fleet_generated(path):
        fail(
            f"{path} exists and was not written by probe fleet serve; not overwriting it "
            "(choose another name, e.g. fleet.yaml, or pass --force)"
        )


@fleet_app.command("serve")
def serve(
    config: Annotated[
        Path | None,
        typer.Option("--config", help="Fleet config YAML (default: one payer per archetype)."),
    ] = None,
    hosts: Annotated[
        int | None,
        typer.Option("--hosts", min=1, max=64, help="Loopback addresses to spread payers over."),
    ] = None,
    port: Annotated[
        int, typer.Option("--port", min=0, max=65535, help="Port (0: pick a free one).")
    ] = 0,
    directory_out: Annotated[
        Path | None,
        typer.Option(
            "--directory-out", help="Write the endpoints directory here (default: stdout)."
        ),
    ] = None,
    secrets_out: Annotated[
        Path | None,
        typer.Option(
            "--secrets-out",
            help="Write the secrets file here (mode 0600; default: NAME.secrets.yaml beside the "
            "directory).",
        ),
    ] = None,
    force: Annotated[
        bool,
        typer.Option(
            "--force", help="Overwrite a directory or secrets file the fleet did not write."
        ),
    ] = False,
) -> None:
    """Serve the fleet until Ctrl-C/SIGTERM; write its directory once it is listening."""
    require_fleet_extra()

    from probe.fleet.app import Fleet
    from probe.fleet.catalog import directory_text, write_secrets
    from probe.fleet.config import FleetConfigError, default_config, load_fleet_config
    from probe.fleet.serve import bind_fleet, serve_until_signal, with_hosts

    try:
        fleet_config = load_fleet_config(config) if config else default_config()
        fleet_config = with_hosts(fleet_config, hosts)
    except FleetConfigError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None
    except ValueError as exc:
        typer.echo(f"fleet config: {exc}", err=True)
        raise typer.Exit(2) from None
    if secrets_out is None and directory_out is not None:
        secrets_out = directory_out.with_name(directory_out.stem + ".secrets.yaml")
    for path in (directory_out, secrets_out):
        if path is not None:
            refuse_to_overwrite(path, force)
    try:
        chosen, sockets = bind_fleet(fleet_config, port or None)
    except OSError as exc:
        typer.echo(f"cannot listen: {exc}", err=True)
        raise typer.Exit(2) from None
    fleet = Fleet(fleet_config, port=chosen)
    secrets_file: str | None = None
    if secrets_out is not None:
        write_secrets(secrets_out, fleet.secrets())
        secrets_file = str(secrets_out.resolve())
    text = directory_text(fleet.directory(secrets_file))

    def ready() -> None:
        if directory_out is not None:
            _write_atomic(directory_out, text)
        else:
            sys.stdout.write(text)
            sys.stdout.flush()
        typer.echo(
            f"fleet: {len(fleet.sites)} payers on {len(fleet.addresses)} host(s) "
            f"{fleet.addresses[0]}..{fleet.addresses[-1]} port {chosen}"
            + (f"; directory {directory_out}" if directory_out else "")
            + (f"; secrets {secrets_out}" if secrets_out else "")
            + "; Ctrl-C stops",
            err=True,
        )

    serve_until_signal(fleet, sockets, ready)
    typer.echo("fleet: stopped", err=True)
