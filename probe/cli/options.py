"""Command-line option types shared by several commands (the database, the scoring window)."""

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
