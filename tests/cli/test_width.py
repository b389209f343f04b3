"""Tables follow $COLUMNS and the terminal, not a fixed width; a narrow screen drops the least
useful columns instead of squeezing every column to a few characters."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from datetime import UTC, datetime

import pytest
from rich.console import Console

from probe.cli.drift import NARROW_DROPS, events_table
from probe.cli.width import NO_TERMINAL_WIDTH, fit_columns, output_width
from probe.drift.classify import ChangeKind
from probe.drift.events import DriftEvent
from probe.store.handle import Store
from tests.score.test_commands import populate


def test_columns_wins() -> None:
    assert output_width({"COLUMNS": "80"}) == 80
    assert output_width({"COLUMNS": " 200 "}) == 200


def test_without_a_terminal_or_columns_tables_get_room() -> None:
    code = "from probe.cli.width import output_width; print(output_width())"
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    done = subprocess.run(
        [sys.executable, "-c", code],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=True,
    )
    assert int(done.stdout) == NO_TERMINAL_WIDTH


def _events() -> list[DriftEvent]:
    now = datetime(2026, 6, 1, 8, 0, tzinfo=UTC)
    return [
        DriftEvent(12, 11, 1, "Blue Meadow Health", "production",
                   "https://fhir.bluemeadow.example/r4", ChangeKind.BREAKING,
                   "smart.pkce_methods_removed", "code_challenge_methods_supported", ["S256"], [],
                   "PKCE S256 no longer advertised: apps that need PKCE cannot sign members in",
                   now),
        DriftEvent(12, 11, 2, "Harbor Care Plan", "production",
                   "https://api.harborcare.example/fhir", ChangeKind.NOTABLE,
                   "metadata.software_version", "software.version", "2.1.0", "2.2.0",
                   "the server software version changed", now),
    ]  # fmt: skip


def render(width: int) -> str:
    console = Console(width=width, record=True, file=io.StringIO())
    console.print(fit_columns(events_table(_events()), width, NARROW_DROPS))
    return console.export_text()


def test_drift_at_80_columns_drops_columns_and_keeps_names_whole() -> None:
    text = render(80)
    assert max(map(len, text.splitlines())) <= 80
    header = " ".join(text.split("┡")[0].split())  # the header rows, words joined
    for kept in ("run", "payer", "kind", "change", "before"):
        assert kept in header
    for dropped in ("detected", "endpoint", "reason"):
        assert dropped not in header
    assert "Harbor Care Plan" in text and "breaking" in text and "2.1.0 → 2.2.0" in text
    assert "smart.pkce_" in text  # the change id wraps, it is not cut
    assert all(len(c) >= 10 for row in _cell_widths(text) for c in row)  # none squeezed


def _cell_widths(text: str) -> list[list[str]]:
    """The widths of the cells of each body row of a rendered table (separators │)."""
    rows = [ln for ln in text.splitlines() if ln.startswith("│")]
    return [[c for c in ln.strip("│").split("│")] for ln in rows]


def test_drift_at_200_columns_shows_every_column() -> None:
    text = render(200)
    assert max(map(len, text.splitlines())) <= 200
    for header in ("detected", "run", "payer", "endpoint", "kind", "change", "reason"):
        assert header in text.splitlines()[2]
    assert "https://fhir.bluemeadow.example/r4" in text
    assert "PKCE S256 no longer advertised" in text


def probe_at(columns: int, *argv: str) -> str:
    """`probe ARGV` with standard output a pipe and $COLUMNS set, as in `probe score | less`."""
    done = subprocess.run(
        [sys.executable, "-m", "probe.cli", *argv],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": str(columns)},
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.parametrize("columns", [80, 200])
def test_score_follows_columns_when_piped(columns: int, store: Store, store_url: str) -> None:
    populate(store)
    text = probe_at(columns, "score", "--db", store_url)
    lines = text.splitlines()
    assert max(map(len, lines)) <= columns
    table = "\n".join(lines[: next(i for i, ln in enumerate(lines) if ln.startswith("└"))])
    assert "Good Health" in table  # the payer name whole, on one line
    assert ("Vendor metrics" in table) is (columns == 200)
    assert ("Vendor" in table.split("Vendor metrics")[0]) is (columns == 200)
    if columns == 200:
        assert max(map(len, lines)) > 100  # not the old fixed 80 columns either
