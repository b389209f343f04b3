"""The HTML report: one self-contained file with the rankings, every payer's scorecard and charts.

Everything the page needs is inside it: the CSS, the report's own script and plotly.js (read
from the ``plotly`` package's wheel, never a CDN), so it opens without a network. The data is
embedded once as JSON; the charts are Plotly figures built here in Python.

Charts over time come from :func:`score_history`: the scorecard recomputed at earlier as-of
points (:func:`history_points`) from the same inputs, so each point uses its own window.

The template (``probe/templates/report.html.j2``) renders each payer through
``_scorecard.html.j2``, which has a "Changes" section listing ``ReportPayer.changes``:
:func:`render_report` takes `changes` (payer name -> :class:`ChangeEvent`) so drift events can
be added later without touching the layout.
"""

from __future__ import annotations

import calendar
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cache
from importlib import metadata, resources
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined
from markupsafe import Markup

from probe.models import finite_json
from probe.score.collect import evidence_summary
from probe.score.engine import Scorecard, score
from probe.score.inputs import PayerInputs, as_utc, subtract_months
from probe.score.results import MetricScore, PayerScore
from probe.score.rubric import NOT_ENOUGH_DATA, Rubric

MAX_RUN_POINTS = 62
"""Up to this many runs in the history, the charts have one point per run; else per month."""
MAX_HISTORY_MONTHS = 24
"""The charts go back at most this many months before the as-of date."""
OVERVIEW_LINES = 10
"""The overview charts draw this many payers (best ranked); the legend shows the others."""
LAZY_CHARTS_ABOVE = 60
"""With more payers than this, a payer's chart is drawn when its scorecard scrolls into view."""
_SCRIPT_END = re.compile(r"</(script)", re.IGNORECASE)


class ReportError(Exception):
    """The report cannot be built (e.g. plotly.js is not installed)."""


@dataclass(frozen=True, slots=True)
class ChangeEvent:
    """Something that changed at a payer (drift: a new CapabilityStatement, a moved base URL...)."""

    at: datetime
    kind: str
    summary: str
    evidence: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class HistoryPoint:
    """One payer's figures as of one moment (None: not scored, or not enough data)."""

    at: datetime
    total: int | None
    rank: int | None
    sync_median_s: float | None
    request_success_pct: float | None


@dataclass(slots=True)
class ReportPayer:
    """What the scorecard template shows for one payer."""

    rank: int
    score: PayerScore
    anchor: str
    metrics: list[dict[str, Any]]
    not_enough_data: list[str]
    changes: list[ChangeEvent] = field(default_factory=list)


# -- history ----------------------------------------------------------------------------------


def _month_end(moment: datetime) -> datetime:
    last = calendar.monthrange(moment.year, moment.month)[1]
    return moment.replace(day=last, hour=23, minute=59, second=59, microsecond=999999)


def history_points(
    observed: Iterable[datetime], as_of: datetime, *, max_months: int = MAX_HISTORY_MONTHS
) -> list[datetime]:
    """As-of moments for the charts: one per observation time (e.g. each run's end), or per month.

    Only times in the `max_months` months up to `as_of` count. With at most
    :data:`MAX_RUN_POINTS` of them, each is a point; with more, the end of each calendar month
    from the first one is. `as_of` itself is always the last point.
    """
    end = as_utc(as_of)
    start = subtract_months(end, max_months)
    times = sorted({as_utc(t) for t in observed if start <= as_utc(t) <= end})
    if len(times) > MAX_RUN_POINTS:
        months: list[datetime] = []
        cursor = _month_end(times[0])
        while cursor < end:
            months.append(cursor)
            cursor = _month_end(cursor + timedelta(days=1))
        times = months
    return sorted({*times, end})


def score_history(
    inputs: Sequence[PayerInputs],
    rubric: Rubric,
    points: Sequence[datetime],
    *,
    window_months: int | None = None,
) -> dict[str, list[HistoryPoint]]:
    """Each payer's total, rank, sync speed and request success rate at every point."""
    out: dict[str, list[HistoryPoint]] = {p.name: [] for p in inputs}
    for at in points:
        card = score(inputs, rubric, as_of=at, window_months=window_months)
        scored = {r.score.payer: r for r in card.payers}
        for payer in inputs:
            ranked = scored.get(payer.name)
            if ranked is None:
                out[payer.name].append(HistoryPoint(as_utc(at), None, None, None, None))
                continue
            s = ranked.score
            out[payer.name].append(
                HistoryPoint(
                    as_utc(at),
                    s.total,
                    ranked.rank,
                    _input_number(s, "sync_speed", "median_s"),
                    _input_number(s, "request_success", "percent"),
                )
            )
    return out


def _input_number(s: PayerScore, metric_id: str, key: str) -> float | None:
    try:
        row = s.metric(metric_id)
    except KeyError:
        return None
    if row.outcome == NOT_ENOUGH_DATA or not isinstance(row.input_value, dict):
        return None
    value = row.input_value.get(key)
    return float(value) if isinstance(value, int | float) else None


# -- figures ----------------------------------------------------------------------------------

_SERIES = (
    ("total", "Score (points)", "score"),
    ("sync_median_s", "Sync speed (median s)", "sync"),
    ("request_success_pct", "Request success (%)", "requests"),
)


def _xs(points: Sequence[HistoryPoint]) -> list[str]:
    return [p.at.strftime("%Y-%m-%d %H:%M") for p in points]


def _mode(points: Sequence[HistoryPoint]) -> str:
    return "lines+markers" if len(points) > 1 else "markers"


def _best_ranked(history: Mapping[str, Sequence[HistoryPoint]], count: int) -> set[str]:
    """The `count` payers with the best latest rank (unranked ones last)."""

    def key(name: str) -> tuple[int, str]:
        points = history[name]
        rank = points[-1].rank if points and points[-1].rank is not None else 10**9
        return rank, name

    return set(sorted(history, key=key)[:count])


def overview_figures(
    history: Mapping[str, Sequence[HistoryPoint]], payer_total: int
) -> dict[str, dict[str, Any]]:
    """The three overview charts: score, sync speed and request success, one line per payer."""
    figures: dict[str, dict[str, Any]] = {}
    shown = _best_ranked(history, OVERVIEW_LINES)
    for attr, title, key in _SERIES:
        traces = [
            {
                "type": "scatter",
                "mode": _mode(points),
                "name": name,
                "x": _xs(points),
                "y": [getattr(p, attr) for p in points],
                "connectgaps": False,
                # The best-ranked payers are drawn; the others are one legend click away.
                "visible": True if name in shown else "legendonly",
            }
            for name, points in history.items()
        ]
        yaxis: dict[str, Any] = {"title": {"text": title}, "rangemode": "tozero"}
        if attr == "total":
            yaxis["range"] = [0, payer_total]
        elif attr == "request_success_pct":
            yaxis["range"] = [0, 100]
        figures[f"overview-{key}"] = {
            "data": traces,
            "layout": {
                "title": {"text": title + " over time", "x": 0, "xanchor": "left"},
                "height": 340,
                "margin": {"l": 60, "r": 20, "t": 50, "b": 50},
                "xaxis": {"type": "date"},
                "yaxis": yaxis,
                "legend": {"orientation": "h", "y": -0.25},
                "font": {"family": "system-ui, sans-serif", "size": 12},
            },
        }
    return figures


def payer_figure(points: Sequence[HistoryPoint], payer_total: int) -> dict[str, Any]:
    """One payer's chart: score, sync speed and request success stacked on a shared time axis."""
    domains = ([0.7, 1.0], [0.36, 0.64], [0.0, 0.28])
    data = []
    layout: dict[str, Any] = {
        "height": 420,
        "showlegend": False,
        "margin": {"l": 60, "r": 20, "t": 20, "b": 40},
        "font": {"family": "system-ui, sans-serif", "size": 12},
        "xaxis": {"type": "date", "anchor": "y3"},
    }
    for i, (attr, title, _key) in enumerate(_SERIES, start=1):
        axis = "y" if i == 1 else f"y{i}"
        data.append(
            {
                "type": "scatter",
                "mode": _mode(points),
                "name": title,
                "x": _xs(points),
                "y": [getattr(p, attr) for p in points],
                "yaxis": axis,
                "connectgaps": False,
            }
        )
        yaxis: dict[str, Any] = {
            "domain": domains[i - 1],
            "title": {"text": title},
            "rangemode": "tozero",
        }
        if attr == "total":
            yaxis["range"] = [0, payer_total]
        elif attr == "request_success_pct":
            yaxis["range"] = [0, 100]
        layout["yaxis" if i == 1 else f"yaxis{i}"] = yaxis
    return {"data": data, "layout": layout}


# -- view model -------------------------------------------------------------------------------


def _slug(name: str, taken: set[str]) -> str:
    base = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "payer"
    slug, n = f"payer-{base}", 2
    while slug in taken:
        slug, n = f"payer-{base}-{n}", n + 1
    taken.add(slug)
    return slug


def format_input(value: Any) -> str:
    """A metric's raw input as one short line (dicts as ``key value`` pairs, None left out)."""
    if value is None:
        return ""
    if isinstance(value, dict):
        parts = [f"{k} {format_input(v)}" for k, v in value.items() if v not in (None, [], {})]
        return ", ".join(parts)
    if isinstance(value, list | tuple | set | frozenset):
        return ", ".join(format_input(v) for v in value) or "none"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def describe_evidence(row: MetricScore) -> str:
    """The evidence of one metric row in words: which runs, requests, checks, sync jobs..."""
    groups = evidence_summary(row.evidence)
    parts: list[str] = []
    labels = {
        "run": ("run", "runs"),
        "request": ("failed request", "failed requests"),
        "check": ("check result", "check results"),
        "sync_job": ("sync job", "sync jobs"),
        "authorization": ("failed authorization", "failed authorizations"),
        "authorization_log": ("authorization log", "authorization logs"),
        "configured": ("configured", "configured"),
        "other": ("other", "other"),
    }
    for kind, values in groups.items():
        one, many = labels[kind]
        shown = ", ".join(values[:6]) + (", …" if len(values) > 6 else "")
        if kind == "configured":
            parts.append(f"configured {shown}")
        else:
            parts.append(f"{len(values)} {one if len(values) == 1 else many} ({shown})")
    if row.evidence_total > len(row.evidence):
        parts.append(f"{row.evidence_total} pointers in all")
    return "; ".join(parts)


def metric_view(row: MetricScore) -> dict[str, Any]:
    """One metric row as the templates and the CLI table show it."""
    return {
        "id": row.metric_id,
        "title": row.title,
        "category": row.category,
        "points": row.points,
        "max_points": row.max_points,
        "outcome": row.outcome,
        "outcome_label": row.outcome_label,
        "not_enough_data": row.not_enough_data,
        "input": format_input(row.input_value),
        "comment": row.comment,
        "expected": row.expected,
        "evidence": describe_evidence(row),
        "evidence_list": list(row.evidence),
        "vendor_metric": "vendor" in row.audience,
    }


def build_payers(
    card: Scorecard, changes: Mapping[str, Sequence[ChangeEvent]] | None = None
) -> list[ReportPayer]:
    """Each ranked payer's scorecard view, with its change events (none by default)."""
    taken: set[str] = set()
    out = []
    for ranked in card.payers:
        s = ranked.score
        events = sorted((changes or {}).get(s.payer, ()), key=lambda e: e.at)
        out.append(
            ReportPayer(
                rank=ranked.rank,
                score=s,
                anchor=_slug(s.payer, taken),
                metrics=[metric_view(m) for m in s.metrics],
                not_enough_data=[m.title for m in s.metrics if m.not_enough_data],
                changes=list(events),
            )
        )
    return out


# -- rendering --------------------------------------------------------------------------------


def plotly_js() -> str:
    """plotly.min.js from the installed ``plotly`` package (ReportError when it is missing)."""
    return _plotly_js()


@cache
def _plotly_js() -> str:
    try:
        source = resources.files("plotly") / "package_data" / "plotly.min.js"
        text = source.read_text(encoding="utf-8")
    except (ModuleNotFoundError, FileNotFoundError, OSError) as exc:
        raise ReportError(
            f"cannot read plotly.js from the plotly package ({exc}); install probe's "
            "dependencies (pip install -e .)"
        ) from None
    return text


def _inline_script(text: str) -> Markup:
    """Script text safe to place inside <script>...</script>."""
    return Markup(_SCRIPT_END.sub(r"<\\/\1", text).replace("<!--", "<\\!--"))  # noqa: S704


def _json_for_html(value: Any) -> Markup:
    text = json.dumps(
        finite_json(value), ensure_ascii=False, separators=(",", ":"), default=str, allow_nan=False
    )
    escaped = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return Markup(escaped)  # noqa: S704


@cache
def _environment() -> Environment:
    return Environment(
        loader=PackageLoader("probe", "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def _asset(name: str) -> str:
    return resources.files("probe").joinpath("templates", name).read_text(encoding="utf-8")


def _version() -> str:
    try:
        return metadata.version("probe")
    except metadata.PackageNotFoundError:
        return "unknown"


def render_report(
    card: Scorecard,
    history: Mapping[str, Sequence[HistoryPoint]],
    *,
    generated_at: datetime,
    database: str = "",
    changes: Mapping[str, Sequence[ChangeEvent]] | None = None,
) -> str:
    """The whole report as one HTML document (no external resources)."""
    payers = build_payers(card, changes)
    figures = overview_figures(history, card.payer_total)
    for payer in payers:
        figures[f"chart-{payer.anchor}"] = payer_figure(
            history.get(payer.score.payer, ()), card.payer_total
        )
    data = {
        "figures": figures,
        "lazy": len(payers) > LAZY_CHARTS_ABOVE,
        "scorecard": card.to_json(),
    }
    template = _environment().get_template("report.html.j2")
    return template.render(
        card=card,
        payers=payers,
        vendors=card.vendors,
        history_points=len(next(iter(history.values()), ())),
        generated_at=as_utc(generated_at),
        database=database,
        version=_version(),
        css=Markup(_asset("report.css")),  # noqa: S704
        script=_inline_script(_asset("report.js")),
        plotly=_inline_script(plotly_js()),
        data=_json_for_html(data),
        not_enough_data=NOT_ENOUGH_DATA,
    )
