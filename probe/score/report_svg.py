"""Charts for the HTML report, drawn here as inline SVG: no script, no library, no network.

Each chart is one payer's series against the median of every scored payer over the same
points in time. It carries a ``<title>`` and a ``<desc>`` that say in words what it shows (the
first and last values, the median), text labels for its scale and dates, and a ``<title>`` on
each point that browsers show on hover. A ``None`` value is a gap in the line (not enough data
at that point).
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from html import escape

from markupsafe import Markup

WIDTH = 300
HEIGHT = 96
MAX_DOTS = 16
"""Up to this many points in time, each point is a dot with its value on hover; beyond, only
the line and its last point (the page stays small with two years of nightly runs)."""
_LEFT, _RIGHT, _TOP, _BOTTOM = 40, 44, 8, 16


@dataclass(frozen=True, slots=True)
class Series:
    """One line of a chart: a name, a value per point in time (None: no data) and its role."""

    name: str
    values: tuple[float | None, ...]
    role: str = "payer"  # "payer" (solid) or "median" (dashed)


def median_series(rows: Sequence[Sequence[float | None]]) -> tuple[float | None, ...]:
    """The median at each point over the rows that have a value there (None when none has)."""
    if not rows:
        return ()
    out: list[float | None] = []
    for column in zip(*rows, strict=True):
        present = [v for v in column if v is not None]
        out.append(float(statistics.median(present)) if present else None)
    return tuple(out)


def _number(value: float, unit: str) -> str:
    text = f"{value:.0f}" if abs(value) >= 10 or value == int(value) else f"{value:.2g}"
    return f"{text}{unit}"


def _segments(points: Sequence[tuple[int, int] | None]) -> list[list[tuple[int, int]]]:
    """Runs of consecutive points with data (a None breaks the line)."""
    runs: list[list[tuple[int, int]]] = [[]]
    for point in points:
        if point is None:
            if runs[-1]:
                runs.append([])
        else:
            runs[-1].append(point)
    return [run for run in runs if run]


def _path(run: Sequence[tuple[int, int]]) -> str:
    """SVG path data through the points, in relative steps (short: a flat step is ``h3``)."""
    (x0, y0), parts = run[0], [f"M{run[0][0]} {run[0][1]}"]
    for px, py in run[1:]:
        dx, dy = px - x0, py - y0
        parts.append(f"h{dx}" if dy == 0 else f"l{dx} {dy}")
        x0, y0 = px, py
    return "".join(parts)


def _describe(title: str, times: Sequence[datetime], series: Sequence[Series], unit: str) -> str:
    if not times:
        return f"{title}: no points in time."
    span = (
        f"{times[0]:%Y-%m-%d} to {times[-1]:%Y-%m-%d}" if len(times) > 1 else f"{times[0]:%Y-%m-%d}"
    )
    parts = [f"{len(times)} point(s) in time, {span}."]
    for line in series:
        present = [v for v in line.values if v is not None]
        if not present:
            parts.append(f"{line.name}: not enough data.")
        elif len(present) == 1:
            parts.append(f"{line.name}: {_number(present[0], unit)}.")
        else:
            parts.append(
                f"{line.name}: from {_number(present[0], unit)} to {_number(present[-1], unit)}."
            )
    return " ".join(parts)


def line_chart(
    chart_id: str,
    title: str,
    times: Sequence[datetime],
    series: Sequence[Series],
    *,
    y_max: float | None = None,
    unit: str = "",
    width: int = WIDTH,
    height: int = HEIGHT,
) -> Markup:
    """One small line chart as an ``<svg>`` element (accessible title and description)."""
    values = [v for line in series for v in line.values if v is not None]
    top = y_max if y_max is not None else max([*values, 0.0]) * 1.1 or 1.0
    plot_w, plot_h = width - _LEFT - _RIGHT, height - _TOP - _BOTTOM
    first = times[0].timestamp() if times else 0.0
    span = (times[-1].timestamp() - first) if len(times) > 1 else 0.0

    def x(i: int) -> float:
        if span <= 0:
            return _LEFT + plot_w / 2
        return _LEFT + plot_w * (times[i].timestamp() - first) / span

    def y(value: float) -> float:
        return _TOP + plot_h * (1 - max(0.0, min(value, top)) / top)

    cid = escape(chart_id)
    out = [
        f'<svg class="chart" id="{cid}" viewBox="0 0 {width} {height}" width="{width}" '
        f'height="{height}" role="img" data-points="{len(values)}">',
        # An <svg>'s first <title> is its accessible name, its <desc> its description.
        f"<title>{escape(title)}</title>",
        f"<desc>{escape(_describe(title, times, series, unit))}</desc>",
        f'<line class="axis" x1="{_LEFT}" y1="{_TOP + plot_h}" x2="{_LEFT + plot_w}" '
        f'y2="{_TOP + plot_h}"/>',
        f'<line class="grid" x1="{_LEFT}" y1="{_TOP}" x2="{_LEFT + plot_w}" y2="{_TOP}"/>',
        f'<text class="tick" x="{_LEFT - 4}" y="{_TOP + 4}" text-anchor="end">'
        f"{escape(_number(top, unit))}</text>",
        f'<text class="tick" x="{_LEFT - 4}" y="{_TOP + plot_h}" text-anchor="end">0</text>',
    ]
    if times:
        # Within two days the dates alone would read the same: show the time as well.
        when = "%m-%d %H:%M" if span < 2 * 86400 else "%Y-%m-%d"
        out.append(
            f'<text class="tick" x="{_LEFT}" y="{height - 3}">{times[0].strftime(when)}</text>'
        )
        if len(times) > 1:
            out.append(
                f'<text class="tick" x="{_LEFT + plot_w}" y="{height - 3}" text-anchor="end">'
                f"{times[-1].strftime(when)}</text>"
            )
    ends: list[tuple[float, str, str]] = []
    for line in series:
        role = "median" if line.role == "median" else "payer"
        if role == "payer" and all(v is None for v in line.values):
            middle_x, middle_y = _LEFT + plot_w // 2, _TOP + plot_h // 2 + 4
            out.append(
                f'<text class="nodata" x="{middle_x}" y="{middle_y}" text-anchor="middle">'
                "not enough data</text>"
            )
        points = [
            None if v is None else (round(x(i)), round(y(v)))  # whole pixels keep it small
            for i, v in enumerate(line.values[: len(times)])
        ]
        for run in _segments(points):
            if len(run) > 1:
                out.append(f'<path class="line {role}" d="{_path(run)}"/>')
        dotted = [i for i, p in enumerate(points) if p is not None]
        if len(times) > MAX_DOTS:
            dotted = dotted[-1:]
        for i in dotted:
            point = points[i]
            assert point is not None  # dotted holds points with data only
            value = line.values[i]
            assert value is not None  # a point exists only for a value
            label = f"{line.name}, {times[i]:%Y-%m-%d %H:%M}: {_number(value, unit)}"
            out.append(
                f'<circle class="dot {role}" cx="{point[0]}" cy="{point[1]}" r="2.5">'
                f"<title>{escape(label)}</title></circle>"
            )
        last = next(
            ((i, v) for i, v in reversed(list(enumerate(line.values[: len(times)])))
             if v is not None),
            None,
        )  # fmt: skip
        if last is not None:
            ends.append((y(last[1]) + 4, role, _number(last[1], unit)))
    # End labels at least 10 px apart, so a payer's value and the median's both stay legible.
    ends.sort()
    floor = float("-inf")
    for end_y, role, text in ends:
        floor = max(end_y, floor + 10)
        out.append(
            f'<text class="end {role}" x="{_LEFT + plot_w + 4}" y="{floor:.1f}">'
            f"{escape(text)}</text>"
        )
    out.append("</svg>")
    return Markup("".join(out))  # noqa: S704 - every interpolated text is escaped above
