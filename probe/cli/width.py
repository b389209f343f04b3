"""How wide the tables on standard output are, and which columns a narrow screen gives up.

One rule for every command: ``$COLUMNS`` when set; else the width of the terminal the command
runs in (standard output's, or standard error's or input's when output goes to a pipe, as in
``probe drift | less``); else, with no terminal at all (cron, journald, CI logs),
:data:`NO_TERMINAL_WIDTH` columns. On a narrow screen a table drops its least useful columns
(each table names them, least useful first) rather than squeezing every column to a few
characters.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.table import Table

#: Columns of a table printed where no terminal is attached at all (a cron job's log).
NO_TERMINAL_WIDTH = 160
#: The narrowest a column is allowed to get before a droppable column is given up for it.
MIN_COLUMN = 8


def output_width(environ: dict[str, str] | None = None) -> int:
    """The width tables on standard output get: $COLUMNS, else the terminal's, else 160."""
    env = os.environ if environ is None else environ
    columns = env.get("COLUMNS", "").strip()
    if columns.isdigit() and int(columns) > 0:
        return int(columns)
    for fd in (1, 2, 0):
        try:
            return max(os.get_terminal_size(fd).columns, 20)
        except (OSError, ValueError):
            continue
    return NO_TERMINAL_WIDTH


def output_console(**kwargs: Any) -> Console:
    """A console on standard output, :func:`output_width` wide (keyword arguments as rich's)."""
    return Console(width=output_width(), **kwargs)


def _needed(column: Any) -> int:
    """The least width a column should keep: its min_width, its header's longest word, and its
    longest cell (no-wrap columns) or longest word (columns that crop words rather than fold)."""
    words = str(column.header).split() or [""]
    least = max(max(map(len, words)), column.min_width or 0)
    if column.overflow == "fold" and not column.no_wrap:
        return max(least, MIN_COLUMN)
    for value in column.cells:
        text = str(value)
        least = max(least, len(text) if column.no_wrap else max(map(len, text.split() or [""])))
    return least


def table_width(table: Table) -> int:
    """The least width `table` needs with each column at its :func:`_needed` width."""
    columns = table.columns
    edges = 2 if table.box is not None and table.show_edge else 0
    padding = table.padding[1] + table.padding[3]
    separators = len(columns) - 1 if table.box is not None else 0
    return sum(_needed(c) + padding for c in columns) + separators + edges


def fit_columns(
    table: Table, width: int, droppable: Sequence[str], whole: Sequence[str] = ()
) -> Table:
    """`table` without the columns of `droppable` (headers, least useful first) that a screen
    `width` columns wide has no room for; the same table when it fits. The columns of `whole`
    (identifiers, names) are kept unbroken when the columns kept leave room for that.

    A column's ``min_width`` is read as the narrowest it is readable at; once the columns are
    chosen rich shares the width out (a forced minimum can push a table past the screen, where
    rich crops it).
    """
    for header in droppable:
        if table_width(table) <= width:
            break
        table.columns[:] = [c for c in table.columns if str(c.header) != header]
    for column in table.columns:
        if str(column.header) in whole and not column.no_wrap:
            column.no_wrap = True
            column.no_wrap = table_width(table) <= width
    for column in table.columns:
        column.min_width = None
    return table
