"""`probe authorize BASE_URL`: walk the SMART patient authorization in headless Chromium.

Exit codes: 0 authorized, 1 any other outcome, 2 usage or configuration error, 130 interrupted.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from probe.cli.fail import base_url_argument, fail, fail_lines
from probe.cli.options import DbOption
from probe.cli.width import output_console

if TYPE_CHECKING:
    from probe.authorize.outcome import AttemptResult

DEFAULT_SCOPE = "launch/patient openid fhirUser offline_access patient/*.read"


def _env(name: str | None, option: str) -> str | None:
    if name is None:
        return None
    value = os.environ.get(name)
    if not value:
        fail(f"{option}: environment variable {name} is not set")
    return value


def _print_table(result: AttemptResult) -> None:
    data = result.to_dict()
    evidence = data["evidence"]
    table = Table(title=f"probe authorize {data['base_url']}", show_header=False)
    table.add_column("what", style="bold")
    table.add_column("value")
    rows: list[tuple[str, object]] = [
        ("outcome", data["outcome"]),
        ("error", data["error"]),
        ("detail", data["detail"]),
        ("identity verification", data["identity_verification_vendor"]),
        ("patient", data["patient"]),
        ("scopes granted", " ".join(data["scopes_granted"])),
        ("refresh token issued", data["refresh_token_issued"]),
        ("redirects", data["redirects"]),
        ("popups", evidence.get("popups")),
        ("duration", f"{data['duration_ms']:.0f} ms"),
    ]
    for row_name, value in rows:
        if value not in (None, ""):
            table.add_row(row_name, str(value))
    for page in evidence.get("pages") or []:
        table.add_row("page", f"{page['host']}  {page['title']}")
    for finding in data["findings"]:
        table.add_row("finding", f"{finding['id']}: {finding['message']}")
    output_console().print(table)


def authorize_command(
    base_url: Annotated[str, typer.Argument(help="FHIR base URL of the payer")],
    client_id: Annotated[str, typer.Option("--client-id", help="the app's OAuth client id")],
    redirect_port: Annotated[
        int,
        typer.Option(
            "--redirect-port",
            min=1,
            max=65535,
            help="loopback port: the redirect URI is http://127.0.0.1:PORT/callback",
        ),
    ],
    client_secret_env: Annotated[
        str | None,
        typer.Option("--client-secret-env", help="environment variable holding the secret"),
    ] = None,
    scope: Annotated[str, typer.Option("--scope", help="scopes to request")] = DEFAULT_SCOPE,
    username_env: Annotated[
        str | None, typer.Option("--username-env", help="variable holding the member username")
    ] = None,
    password_env: Annotated[
        str | None, typer.Option("--password-env", help="variable holding the member password")
    ] = None,
    login_recipe: Annotated[
        Path | None,
        typer.Option("--login-recipe", help="YAML login steps instead of the heuristics"),
    ] = None,
    decline: Annotated[bool, typer.Option("--decline", help="decline at the consent step")] = False,
    interactive: Annotated[
        bool,
        typer.Option("--interactive", help="print the URL for a person and wait for the callback"),
    ] = False,
    token_store: Annotated[
        Path | None,
        typer.Option("--token-store", help="YAML file (mode 0600) for the refresh token"),
    ] = None,
    db: DbOption = None,
    save: Annotated[bool, typer.Option("--save", help="store the attempt in the database")] = False,
    deadline: Annotated[
        float, typer.Option("--deadline", min=1.0, help="seconds allowed for everything")
    ] = 120.0,
    output_format: Annotated[
        str, typer.Option("--format", help="table or json", case_sensitive=False)
    ] = "table",
) -> None:
    """Walk the SMART patient authorization in a real browser and report how it ended."""
    url = base_url_argument(base_url)
    if output_format.lower() not in ("table", "json"):
        fail(f"--format must be table or json, not {output_format!r}")
    if not scope.split():
        fail("--scope must name at least one scope")
    if importlib.util.find_spec("playwright") is None:
        fail("playwright is not installed: pip install 'probe[authorize]'")
    if not interactive and login_recipe is None and (username_env is None or password_env is None):
        fail("give --username-env and --password-env, or --login-recipe, or --interactive")
    secret = _env(client_secret_env, "--client-secret-env")

    import anyio

    from probe.authorize.browser import BrowserUnavailable, Credentials, chromium_path
    from probe.authorize.recipe import RecipeError, load_recipe
    from probe.authorize.session import AuthorizeOptions, AuthorizeSetupError, run_attempt
    from probe.directory.secrets import SecretError, SecretSource, TokenStore

    recipe = None
    if login_recipe is not None:
        try:
            recipe = load_recipe(login_recipe)
        except RecipeError as exc:
            fail_lines(exc.problems)
    credentials = None
    if username_env is not None or password_env is not None:
        username = _env(username_env, "--username-env")
        password = _env(password_env, "--password-env")
        if username is None or password is None:
            fail("give both --username-env and --password-env")
        credentials = Credentials(username, password)
    # The machine after the user's own input: a wrong option or an unset variable is named
    # whether or not this machine has a browser yet.
    if not interactive and chromium_path() is None:
        fail("chromium is not installed: apt-get install chromium")
    options = AuthorizeOptions(
        base_url=url,
        client_id=client_id,
        redirect_port=redirect_port,
        scope=" ".join(scope.split()),
        client_secret=secret,
        credentials=credentials,
        recipe=None if recipe is None else recipe.steps,
        decline=decline,
        interactive=interactive,
        deadline_s=deadline,
    )
    secrets = SecretSource(None if recipe is None else recipe.secrets_file)
    store_file = TokenStore(token_store) if token_store is not None else None

    def announce(authorization_url: str) -> None:
        """Show the authorization URL to the person who will sign in."""
        import webbrowser

        err = Console(stderr=True, highlight=False, soft_wrap=True)
        err.print("Open this URL in a browser and sign in:", markup=False)
        err.print(authorization_url, markup=False)
        # Only where a graphical browser can exist: a console browser would take the terminal.
        graphical = os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
        if graphical or sys.platform == "darwin":
            with contextlib.suppress(webbrowser.Error):
                webbrowser.open(authorization_url)

    async def go() -> AttemptResult:
        """The attempt, under anyio."""
        return await run_attempt(
            options, secrets=secrets, token_store=store_file, announce=announce
        )

    try:
        result = anyio.run(go)
    except KeyboardInterrupt:
        raise typer.Exit(130) from None
    except (AuthorizeSetupError, BrowserUnavailable, SecretError) as exc:
        fail(str(exc))
    if output_format.lower() == "json":
        from probe.cli.machine import contract_json

        sys.stdout.write(contract_json("authorize", result.body()) + "\n")
    else:
        _print_table(result)
    if save:
        _save(db, result)
    raise typer.Exit(0 if result.outcome == "authorized" else 1)


def _save(db: str | None, result: AttemptResult) -> None:
    from datetime import datetime

    from probe.store.engine import open_store
    from probe.store.errors import StoreError
    from probe.store.observed_authorizations import save_observed_attempt

    try:
        with open_store(db) as store:
            row_id = save_observed_attempt(
                store,
                result.base_url,
                str(result.outcome),
                datetime.fromisoformat(result.started_at),
                result.to_dict(),
            )
    except StoreError as exc:
        fail(f"could not save: {exc}")
    Console(stderr=True).print(f"saved as authorization attempt {row_id}", markup=False)
