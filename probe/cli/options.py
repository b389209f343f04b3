"""Command-line option types shared by several commands (the database, the scoring window, a
private CA bundle, the refresh-token store), each checked before the command runs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

DbOption = Annotated[
    str | None,
    typer.Option(
        "--db",
        help="Database URL (default: $PROBE_DATABASE_URL, else sqlite:///probe.db).",
        show_default=False,
    ),
]
WindowOption = Annotated[
    int | None,
    typer.Option(
        "--window",
        help="Scoring window in calendar months (default: the rubric's, 6).",
        show_default=False,
    ),
]
AsOfOption = Annotated[
    str | None,
    typer.Option(
        "--as-of",
        help="Score as of this date (YYYY-MM-DD: the end of that day, UTC) or ISO time "
        "(default: now).",
        show_default=False,
    ),
]
RubricOption = Annotated[
    Path | None,
    typer.Option("--rubric", help="Rubric YAML file (default: the packaged May 2025 rubric)."),
]


def ca_bundle_file(value: str | None) -> str | None:
    """`--ca-bundle`: a readable PEM file of CA certificates; a usage error (exit 2) if not."""
    if value is None:
        return None
    import ssl

    try:
        ssl.create_default_context(cafile=value)
    except FileNotFoundError:
        raise typer.BadParameter(f"{value!r}: no such file") from None
    except (ssl.SSLError, OSError, ValueError, UnicodeError) as exc:
        reason = getattr(exc, "reason", None) or type(exc).__name__
        raise typer.BadParameter(
            f"{value!r} is not a readable PEM bundle of CA certificates ({reason})"
        ) from None
    return value


def token_store_file(value: Path | None) -> Path | None:
    """`--token-store`: a path probe can name and write (UTF-8); a usage error if not."""
    if value is None:
        return None
    try:
        str(value).encode("utf-8")
    except UnicodeEncodeError:
        raise typer.BadParameter("the token store path is not valid UTF-8") from None
    if value.is_dir():
        raise typer.BadParameter(f"{value} is a directory, not a token store file")
    return value


CaBundleOption = Annotated[
    str | None,
    typer.Option(
        "--ca-bundle", help="CA bundle file (PEM) for private CAs", callback=ca_bundle_file
    ),
]
TokenStoreOption = Annotated[
    Path | None,
    typer.Option(
        "--token-store",
        help="YAML file keeping rotated refresh tokens (mode 0600)",
        callback=token_store_file,
    ),
]
