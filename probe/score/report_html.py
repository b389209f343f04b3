"""The HTML report: one self-contained file with the rankings, conformance, every payer's
scorecard and charts.

Everything the page needs is inside it: the CSS, a few lines of script (expand and collapse the
scorecards; the page reads fine without it) and the charts, drawn here as inline SVG
(:mod:`probe.score.report_svg`), so it opens without a network and weighs little. The
scorecard and the conformance findings are embedded once as strict JSON (no NaN or Infinity).

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
from probe.score.report_conformance import (
    ANONYMOUS_CHECK,
    PayerConformance,
    checks_found,
    conformance_json,
)
from probe.score.report_svg import Series, line_chart, median_series
from probe.score.results import MetricScore, PayerScore
from probe.score.rubric import NOT_ENOUGH_DATA, Rubric

MAX_RUN_POINTS = 62
"""Up to this many runs in the history, the charts have one point per run; else per month."""
MAX_HISTORY_MONTHS = 24
"""The charts go back at most this many months before the as-of date."""
_SCRIPT_END = re.compile(r"</(script)", re.IGNORECASE)
_INDENT = re.compile(r"\n[ \t]+")


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
    conformance: PayerConformance | None = None
    charts: list[tuple[str, Markup]] = field(default_factory=list)
    trend: Markup = field(default_factory=Markup)


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


# -- charts -----------------------------------------------------------------------------------

_SERIES = (
    ("total", "Score", "score", ""),
    ("sync_median_s", "Sync speed (median)", "sync", " s"),
    ("request_success_pct", "Request success", "requests", "%"),
)


def _values(points: Sequence[HistoryPoint], attr: str) -> tuple[float | None, ...]:
    return tuple(None if getattr(p, attr) is None else float(getattr(p, attr)) for p in points)


def payer_charts(
    name: str,
    anchor: str,
    history: Mapping[str, Sequence[HistoryPoint]],
    payer_total: int,
    *,
    scored: Iterable[str],
    keys: Iterable[str] = ("score", "sync", "requests"),
    prefix: str = "chart",
) -> list[tuple[str, Markup]]:
    """One payer's charts (of `keys`: score, sync speed, request success), each against the
    median of the `scored` payers at the same points in time, with a caption each; ids
    ``{prefix}-{anchor}-{key}``."""
    points = history.get(name, ())
    times = [p.at for p in points]
    others = [history[n] for n in scored if n in history and len(history[n]) == len(points)]
    wanted = set(keys)
    charts = []
    for attr, title, key, unit in _SERIES:
        if key not in wanted:
            continue
        limit: float | None = None
        if attr == "total":
            limit = float(payer_total)
        elif attr == "request_success_pct":
            limit = 100.0
        median = median_series([_values(rows, attr) for rows in others])
        caption = f"{title} ({unit.strip()})" if unit else f"{title} (of {payer_total})"
        charts.append(
            (
                caption,
                line_chart(
                    f"{prefix}-{anchor}-{key}",
                    f"{title} of {name} against the median payer",
                    times,
                    [Series(name, _values(points, attr)), Series("median", median, "median")],
                    y_max=limit,
                    unit=unit,
                ),
            )
        )
    return charts


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
    card: Scorecard,
    changes: Mapping[str, Sequence[ChangeEvent]] | None = None,
    conformance: Mapping[str, PayerConformance] | None = None,
) -> list[ReportPayer]:
    """Each ranked payer's scorecard view, with its change events and its conformance
    findings (none by default)."""
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
                conformance=(conformance or {}).get(s.payer),
            )
        )
    return out


# -- rendering --------------------------------------------------------------------------------


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


_METRIC_KEYS = ("points", "input")
REPORT_DATA_SCHEMA = "probe-report-data/1"


def report_data(
    card: Scorecard, conformance: Mapping[str, PayerConformance] | None = None
) -> dict[str, Any]:
    """The figures the page shows, for tools that read the page: per payer its rank, points per
    category and metric (raw inputs included; an indefinite duration is ``months: null,
    indefinite: true``), and its conformance findings. Evidence pointers are left out (``probe
    score --format json`` has them)."""
    scorecard = card.to_json()
    payers = []
    for row in scorecard["payers"]:
        payers.append(
            {
                **{k: v for k, v in row.items() if k not in ("metrics", "categories")},
                "categories": {c["id"]: c["points"] for c in row["categories"]},
                "metrics": {
                    m["metric"]: {k: m[k] for k in _METRIC_KEYS if k in m} for m in row["metrics"]
                },
            }
        )
    return {
        "schema": REPORT_DATA_SCHEMA,
        **{k: v for k, v in scorecard.items() if k not in ("payers", "vendors")},
        "payers": payers,
        "vendors": scorecard["vendors"],
        "conformance": conformance_json(conformance or {}),
    }


def render_report(
    card: Scorecard,
    history: Mapping[str, Sequence[HistoryPoint]],
    *,
    generated_at: datetime,
    database: str = "",
    changes: Mapping[str, Sequence[ChangeEvent]] | None = None,
    conformance: Mapping[str, PayerConformance] | None = None,
) -> str:
    """The whole report as one HTML document (no external resources, no NaN in its JSON)."""
    conformance = conformance or {}
    payers = build_payers(card, changes, conformance)
    scored = [p.score.payer for p in payers]
    for payer in payers:
        payer.charts = payer_charts(
            payer.score.payer, payer.anchor, history, card.payer_total, scored=scored
        )
        payer.trend = payer_charts(
            payer.score.payer,
            payer.anchor,
            history,
            card.payer_total,
            scored=scored,
            keys=("score",),
            prefix="trend",
        )[0][1]
    anchors = {p.score.payer: p.anchor for p in payers}
    data = report_data(card, conformance)
    template = _environment().get_template("report.html.j2")
    page = template.render(
        card=card,
        payers=payers,
        vendors=card.vendors,
        conformance=list(conformance.values()),
        anchors=anchors,
        checks_found=checks_found(conformance.values()),
        score_ranks={p.score.payer: p.rank for p in payers},
        history_points=len(next(iter(history.values()), ())),
        generated_at=as_utc(generated_at),
        database=database,
        version=_version(),
        css=Markup(_asset("report.css")),  # noqa: S704
        script=_inline_script(_asset("report.js")),
        data=_json_for_html(data),
        not_enough_data=NOT_ENOUGH_DATA,
        anonymous_check=ANONYMOUS_CHECK,
    )
    # The templates' indentation is for their readers; HTML collapses it anyway.
    return _INDENT.sub("\n", page)
