"""Scoring rubrics: a versioned YAML file of metrics, points and bands, loaded and validated.

A rubric is data (see ``probe/rubrics/state-of-the-payer-2025-05.yaml`` and docs/scoring.md).
Loading checks the schema with pydantic and then the arithmetic: every band set covers its range
with no gap or overlap, each metric's outcomes reach exactly its points, category points and
``payer_total`` add up. Every problem is reported as ``file:line: field: why``.

Band edges are explicit. A band is written in interval notation, ``"[95, 100]"`` (both ends
included), ``"[90, 95)"`` (95 excluded), ``"(60, inf)"``, or with ``min``/``max`` and
``min_inclusive``/``max_inclusive`` spelled out (``max: null`` means unbounded).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from probe.directory.schema import (
    MAX_YAML_BYTES,
    LineOfBusiness,
    OrganizationStatus,
    yaml_bound_problem,
)

DEFAULT_RUBRIC = "state-of-the-payer-2025-05.yaml"
"""File name of the packaged rubric used when none is given."""

Audience = Literal["payer", "vendor"]
Source = Literal["observed", "configured", "imported"]
Unit = Literal["percent", "seconds", "days", "months"]
NOT_ENOUGH_DATA = "not_enough_data"
_LOADER: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
"""The outcome of a metric whose input is missing; its points come from the metric's rule."""


@dataclass(frozen=True, slots=True)
class MetricKind:
    """What the engine produces for a metric id, so a rubric can be checked against it.

    `scoring` names the scoring sections the rubric must give (``bands``, ``choices``, ``sum``),
    `unit` the unit of the banded value, and `choices` every choice value the engine can emit.
    """

    scoring: frozenset[str]
    unit: Unit | None = None
    choices: frozenset[str] = frozenset()


def _kind(*scoring: str, unit: Unit | None = None, choices: Sequence[str] = ()) -> MetricKind:
    return MetricKind(frozenset(scoring), unit, frozenset(choices))


_AVAILABILITY = ("available", "not_available")

KNOWN_METRICS: dict[str, MetricKind] = {
    "status": _kind("choices", choices=("live", "implementing", "not_available")),
    "sandbox": _kind("choices", choices=_AVAILABILITY),
    "capability_statement": _kind("choices", choices=_AVAILABILITY),
    "smart_configuration": _kind("choices", choices=_AVAILABILITY),
    "auth_success": _kind("bands", unit="percent"),
    "refresh_token": _kind(
        "bands", "choices", unit="days", choices=("not_available", "available_max_unknown")
    ),
    "inactive_member_access": _kind(
        "bands",
        "choices",
        unit="months",
        choices=("indefinite", "unknown_duration", "not_available"),
    ),
    "portal_opt_in": _kind("choices", choices=("not_required", "required")),
    "eligibility_errors": _kind("choices", choices=("yes", "no")),
    "lines_of_business": _kind(
        "choices",
        choices=(
            "all_supported",
            "only_cms_supported",
            "all_cms_supported",
            "cms_partially_supported",
            "none_supported",
        ),
    ),
    "request_success": _kind("bands", unit="percent"),
    "reference_resolution": _kind("bands", unit="percent"),
    "carin_bb": _kind("sum"),
    "clinical": _kind("sum"),
    "sync_speed": _kind("bands", unit="seconds"),
    "everything": _kind("choices", choices=("paged", "limited", "unsupported")),
    "developer_portal": _kind("choices", choices=("available", "email")),
}
"""Every metric id the engine knows how to compute, and the shape of its scoring."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


_NUMBER = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)"
_INTERVAL = re.compile(
    rf"^\s*([\[(])\s*(-inf|{_NUMBER})\s*,\s*(\+?inf|{_NUMBER})\s*([\])])\s*$", re.IGNORECASE
)


def _edge(text: str) -> float:
    return float(text.lower().replace("+", "")) if "inf" in text.lower() else float(text)


def fmt_number(value: float | None) -> str:
    """A band edge for messages: ``95``, ``94.99``, ``inf``, ``-inf``."""
    if value is None or math.isinf(value):
        return "-inf" if value is not None and value < 0 else "inf"
    return str(int(value)) if float(value).is_integer() else repr(value)


def exact(value: float | int | Fraction) -> Fraction:
    """`value` as an exact fraction; floats go through their shortest decimal form.

    So 94.99 compares equal to a band edge written ``94.99`` (no binary-float surprises).
    """
    if isinstance(value, Fraction | int):
        return Fraction(value)
    return Fraction(repr(float(value)))


class Interval(_Strict):
    """A numeric interval with explicit edges; None (or ``.inf``) means unbounded."""

    min: float | None
    max: float | None
    min_inclusive: bool
    max_inclusive: bool

    @model_validator(mode="before")
    @classmethod
    def _from_notation(cls, data: Any) -> Any:
        if not isinstance(data, dict) or "interval" not in data:
            return data
        text = data["interval"]
        if not isinstance(text, str):
            raise ValueError(
                'interval must be a quoted string such as "[90, 95)" (unquoted [a, b] is a '
                "YAML list)"
            )
        spelled = [k for k in ("min", "max", "min_inclusive", "max_inclusive") if k in data]
        if spelled:
            raise ValueError(f"give either 'interval' or {', '.join(spelled)}, not both")
        match = _INTERVAL.match(str(text))
        if match is None:
            raise ValueError(
                f"interval {text!r} is not of the form '[a, b]', '[a, b)', '(a, b]' or '(a, b)'"
                " (use inf for unbounded)"
            )
        left, lo, hi, right = match.groups()
        rest = {k: v for k, v in data.items() if k != "interval"}
        return {
            **rest,
            "min": _edge(lo),
            "max": _edge(hi),
            "min_inclusive": left == "[",
            "max_inclusive": right == "]",
        }

    @model_validator(mode="after")
    def _sane(self) -> Interval:
        if math.isnan(self.lo) or math.isnan(self.hi):
            raise ValueError("an edge is NaN")
        if self.lo == -math.inf and self.min_inclusive:
            raise ValueError("an unbounded lower edge cannot be inclusive")
        if self.hi == math.inf and self.max_inclusive:
            raise ValueError("an unbounded upper edge cannot be inclusive")
        if self.lo > self.hi or (
            self.lo == self.hi and not (self.min_inclusive and self.max_inclusive)
        ):
            raise ValueError(f"interval {self.notation} is empty")
        return self

    @property
    def lo(self) -> float:
        """The lower edge, -inf when unbounded."""
        return -math.inf if self.min is None else self.min

    @property
    def hi(self) -> float:
        """The upper edge, +inf when unbounded."""
        return math.inf if self.max is None else self.max

    @property
    def notation(self) -> str:
        """The interval in notation, e.g. ``[90, 95)``."""
        left = "[" if self.min_inclusive else "("
        right = "]" if self.max_inclusive else ")"
        return f"{left}{fmt_number(self.lo)}, {fmt_number(self.hi)}{right}"

    def contains(self, value: float | int | Fraction) -> bool:
        """True when `value` lies in the interval (compared exactly, see :func:`exact`)."""
        v = exact(value)
        if not math.isinf(self.lo):
            lo = exact(self.lo)
            if v < lo or (v == lo and not self.min_inclusive):
                return False
        if not math.isinf(self.hi):
            hi = exact(self.hi)
            if v > hi or (v == hi and not self.max_inclusive):
                return False
        return True


class Band(Interval):
    """One band of a numeric metric: values in the interval score `points`."""

    label: str = Field(min_length=1)
    points: int = Field(ge=0)


class Bands(_Strict):
    """Numeric scoring: the unit, the range the bands must cover exactly, and the bands."""

    unit: Unit
    range: Interval
    bands: list[Band] = Field(min_length=1)
    min_samples: int = Field(default=1, ge=1)

    def band_for(self, value: float | int | Fraction) -> Band | None:
        """The band containing `value`, or None when it is outside the range."""
        for band in self.bands:
            if band.contains(value):
                return band
        return None


class Choice(_Strict):
    """One categorical outcome (`value` is what the engine emits) and its points."""

    value: str = Field(min_length=1)
    label: str = Field(min_length=1)
    points: int = Field(ge=0)


class SumItem(_Strict):
    """One thing that adds points when present (e.g. a resource type that answered 200)."""

    item: str = Field(min_length=1)
    points: int = Field(ge=0)


class SumScoring(_Strict):
    """Summed scoring: the points of every present item, capped at `cap` when given."""

    items: list[SumItem] = Field(min_length=1)
    cap: int | None = Field(default=None, ge=0)
    none_label: str = "None"

    @property
    def maximum(self) -> int:
        """The most this scoring can award."""
        total = sum(i.points for i in self.items)
        return total if self.cap is None else min(total, self.cap)


class NotEnoughData(_Strict):
    """The explicit outcome when a metric's input is missing: its points and label."""

    points: int = Field(ge=0)
    label: str = Field(default="Not enough data", min_length=1)


class Category(_Strict):
    """A stakeholder category and the payer points it carries."""

    id: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    title: str = Field(min_length=1)
    points: int = Field(ge=0)


class Metric(_Strict):
    """One metric: identity, category, points, audience, input sources and scoring."""

    id: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    title: str = Field(min_length=1)
    category: str
    points: int = Field(ge=0)
    audience: list[Audience] = Field(min_length=1)
    sources: list[Source] = Field(min_length=1)
    definition: str = ""
    how: str = ""
    reference: str = ""
    bands: Bands | None = None
    choices: list[Choice] | None = None
    sum: SumScoring | None = None
    not_enough_data: NotEnoughData

    @property
    def for_payers(self) -> bool:
        """True when the metric counts toward payer scores (🪪)."""
        return "payer" in self.audience

    @property
    def for_vendors(self) -> bool:
        """True when the metric counts toward vendor scores (💼)."""
        return "vendor" in self.audience

    def choice(self, value: str) -> Choice | None:
        """The choice with this value, or None."""
        return next((c for c in self.choices or () if c.value == value), None)

    @property
    def expected(self) -> str:
        """What earns full points, for reports (e.g. ``95-100% [95, 100]``)."""
        best: list[str] = []
        if self.bands is not None:
            best += [f"{b.label} {b.notation}" for b in self.bands.bands if b.points == self.points]
        best += [c.label for c in self.choices or () if c.points == self.points]
        if self.sum is not None:
            best.append(" + ".join(i.item for i in self.sum.items if i.points > 0))
            if self.sum.cap is not None:
                best[-1] = f"{self.sum.cap} points from: {best[-1]}"
        return " or ".join(best) or "-"


class StatusGroups(_Strict):
    """Which organization statuses count as Live and as Implementing (others: Not available)."""

    live: list[OrganizationStatus] = Field(min_length=1)
    implementing: list[OrganizationStatus] = Field(default_factory=list)


class Rubric(_Strict):
    """A whole rubric file."""

    id: str = Field(min_length=1)
    version: str = Field(min_length=1)
    title: str = Field(min_length=1)
    source: str = ""
    payer_total: int = Field(ge=0)
    vendor_total_stated: int = Field(ge=0)
    vendor_denominator: Literal["stated", "computed"] = "stated"
    vendor_aggregation: Literal["median_of_totals", "sum_of_medians"] = "median_of_totals"
    window_months: int = Field(default=6, ge=1, le=120)
    min_lives: int = Field(default=500, ge=0)
    organization_status: StatusGroups
    cms_mandated_lines: list[LineOfBusiness] = Field(min_length=1)
    categories: list[Category] = Field(min_length=1)
    metrics: list[Metric] = Field(min_length=1)

    @property
    def payer_metrics(self) -> list[Metric]:
        """The metrics that make up payer scores."""
        return [m for m in self.metrics if m.for_payers]

    @property
    def vendor_metrics(self) -> list[Metric]:
        """The metrics that make up vendor scores."""
        return [m for m in self.metrics if m.for_vendors]

    @property
    def vendor_total_computed(self) -> int:
        """The sum of the vendor metrics' points (63 for the May 2025 report, which says 70)."""
        return sum(m.points for m in self.vendor_metrics)

    @property
    def vendor_total(self) -> int:
        """The vendor denominator to display, as `vendor_denominator` chooses."""
        if self.vendor_denominator == "computed":
            return self.vendor_total_computed
        return self.vendor_total_stated

    @property
    def vendor_total_discrepancy(self) -> str | None:
        """A note when the stated vendor total differs from the metrics' sum, else None."""
        computed = self.vendor_total_computed
        if computed == self.vendor_total_stated:
            return None
        return (
            f"the rubric states vendor scores are out of {self.vendor_total_stated}, but its "
            f"vendor metrics add up to {computed}; vendor scores are shown out of "
            f"{self.vendor_total} (vendor_denominator: {self.vendor_denominator})"
        )

    def metric(self, metric_id: str) -> Metric:
        """The metric with this id (KeyError when the rubric has none)."""
        for m in self.metrics:
            if m.id == metric_id:
                return m
        raise KeyError(metric_id)

    @property
    def label(self) -> str:
        """``id@version``, e.g. ``state-of-the-payer@2025-05``."""
        return f"{self.id}@{self.version}"


class RubricError(Exception):
    """A rubric that cannot be used; `problems` lists each as 'file:line: field: why'."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        super().__init__(f"{source}: {len(problems)} problem(s)\n" + "\n".join(problems))


Loc = tuple[str | int, ...]


def _metric_problems(index: int, metric: Metric) -> list[tuple[Loc, str]]:
    """Arithmetic and shape problems of one metric, each with its location."""
    at: Loc = ("metrics", index)
    name = f"metric {metric.id!r}"
    out: list[tuple[Loc, str]] = []
    kind = KNOWN_METRICS.get(metric.id)
    if kind is None:
        known = ", ".join(sorted(KNOWN_METRICS))
        return [((*at, "id"), f"unknown metric id {metric.id!r}; the engine knows: {known}")]
    given = {s for s in ("bands", "choices", "sum") if getattr(metric, s) is not None}
    for missing in sorted(kind.scoring - given):
        out.append((at, f"{name} needs a '{missing}' section"))
    for extra in sorted(given - kind.scoring):
        out.append(((*at, extra), f"{name} does not use '{extra}' (the engine never emits it)"))
    outcomes: list[int] = [metric.not_enough_data.points]
    if metric.bands is not None and "bands" in kind.scoring:
        bands = metric.bands
        if bands.unit != kind.unit:
            out.append(((*at, "bands", "unit"), f"{name} is measured in {kind.unit}"))
        for band_index, gap in _coverage(bands):
            out.append(((*at, "bands", "bands", band_index), f"{name} bands: {gap}"))
        outcomes += [b.points for b in bands.bands]
    if metric.choices is not None and "choices" in kind.scoring:
        values = [c.value for c in metric.choices]
        for dup in sorted({v for v in values if values.count(v) > 1}):
            out.append(((*at, "choices"), f"{name}: choice {dup!r} appears twice"))
        for missing in sorted(kind.choices - set(values)):
            out.append(((*at, "choices"), f"{name}: missing choice {missing!r}"))
        for unknown in sorted(set(values) - kind.choices):
            allowed = ", ".join(sorted(kind.choices))
            out.append(
                ((*at, "choices"), f"{name}: unknown choice {unknown!r} (allowed: {allowed})")
            )
        outcomes += [c.points for c in metric.choices]
    if metric.sum is not None and "sum" in kind.scoring:
        items = [i.item for i in metric.sum.items]
        for dup in sorted({v for v in items if items.count(v) > 1}):
            out.append(((*at, "sum", "items"), f"{name}: item {dup!r} appears twice"))
        outcomes.append(metric.sum.maximum)
    too_many = sorted({p for p in outcomes if p > metric.points})
    if too_many:
        out.append(
            (
                (*at, "points"),
                f"{name} is worth {metric.points} points but an outcome awards {too_many[-1]}",
            )
        )
    elif outcomes and max(outcomes) < metric.points:
        out.append(
            (
                (*at, "points"),
                f"{name} is worth {metric.points} points but no outcome awards more than "
                f"{max(outcomes)}",
            )
        )
    return out


def band_coverage_problems(bands: Bands) -> list[str]:
    """Gaps, overlaps and out-of-range parts of a band set, as human sentences (empty if none)."""
    return [message for _index, message in _coverage(bands)]


def _coverage(bands: Bands) -> list[tuple[int, str]]:
    """Coverage problems, each with the index of the band it is found at."""
    rng = bands.range
    ordered = sorted(
        enumerate(bands.bands), key=lambda ib: (ib[1].lo, not ib[1].min_inclusive, ib[0])
    )
    problems: list[tuple[int, str]] = []
    at, need_inclusive = rng.lo, rng.min_inclusive
    previous: Band | None = None
    index = 0
    for index, band in ordered:
        if band.lo < at or (band.lo == at and band.min_inclusive and not need_inclusive):
            if previous is None:
                problems.append(
                    (
                        index,
                        f"band {band.label!r} {band.notation} starts below the range "
                        f"{rng.notation}",
                    )
                )
            else:
                problems.append(
                    (
                        index,
                        f"overlap: {previous.label!r} {previous.notation} and {band.label!r} "
                        f"{band.notation} both cover {_overlap(previous, band)}",
                    )
                )
        elif band.lo > at or (band.lo == at and need_inclusive and not band.min_inclusive):
            left = "[" if need_inclusive else "("
            right = ")" if band.min_inclusive else "]"
            gap = f"{left}{fmt_number(at)}, {fmt_number(band.lo)}{right}"
            if band.lo == at:
                gap = fmt_number(at)
            after = f"after {previous.label!r}" if previous else "at the start of the range"
            problems.append((index, f"gap {after}: no band covers {gap}"))
        if previous is None or band.hi > at or (band.hi == at and band.max_inclusive):
            at, need_inclusive = band.hi, not band.max_inclusive
        previous = band
    end_ok = at == rng.hi and need_inclusive != rng.max_inclusive
    if not end_ok:
        if at < rng.hi or (at == rng.hi and need_inclusive and rng.max_inclusive):
            left = "[" if need_inclusive else "("
            right = "]" if rng.max_inclusive else ")"
            gap = fmt_number(at) if at == rng.hi else f"{left}{fmt_number(at)}, "
            if at != rng.hi:
                gap += f"{fmt_number(rng.hi)}{right}"
            problems.append(
                (index, f"gap at the end of the range {rng.notation}: no band covers {gap}")
            )
        else:
            problems.append((index, f"bands extend beyond the range {rng.notation}"))
    return problems


def _overlap(a: Band, b: Band) -> str:
    lo, lo_inc = (b.lo, b.min_inclusive)
    if a.hi < b.hi or (a.hi == b.hi and not a.max_inclusive):
        hi, hi_inc = a.hi, a.max_inclusive
    else:
        hi, hi_inc = b.hi, b.max_inclusive
    if lo == hi:
        return fmt_number(lo)
    return f"{'[' if lo_inc else '('}{fmt_number(lo)}, {fmt_number(hi)}{']' if hi_inc else ')'}"


def rubric_problems(rubric: Rubric) -> list[tuple[Loc, str]]:
    """Every arithmetic problem of a schema-valid rubric, each with its location."""
    out: list[tuple[Loc, str]] = []
    ids = [m.id for m in rubric.metrics]
    for i, metric in enumerate(rubric.metrics):
        if ids.index(metric.id) != i:
            out.append((("metrics", i, "id"), f"metric id {metric.id!r} appears twice"))
        out += _metric_problems(i, metric)
    cat_ids = [c.id for c in rubric.categories]
    for i, cat in enumerate(rubric.categories):
        if cat_ids.index(cat.id) != i:
            out.append((("categories", i, "id"), f"category id {cat.id!r} appears twice"))
    for i, metric in enumerate(rubric.metrics):
        if metric.category not in cat_ids:
            out.append(
                (
                    ("metrics", i, "category"),
                    f"metric {metric.id!r}: unknown category {metric.category!r} "
                    f"(declared: {', '.join(cat_ids)})",
                )
            )
    for i, cat in enumerate(rubric.categories):
        total = sum(m.points for m in rubric.payer_metrics if m.category == cat.id)
        if total != cat.points:
            out.append(
                (
                    ("categories", i, "points"),
                    f"category {cat.id!r} is worth {cat.points} points but its payer metrics "
                    f"add up to {total}",
                )
            )
    payer_sum = sum(m.points for m in rubric.payer_metrics)
    if payer_sum != rubric.payer_total:
        listed = " + ".join(f"{m.id} {m.points}" for m in rubric.payer_metrics)
        out.append(
            (
                ("payer_total",),
                f"payer metrics add up to {payer_sum}, not payer_total {rubric.payer_total} "
                f"({listed})",
            )
        )
    overlap = set(rubric.organization_status.live) & set(rubric.organization_status.implementing)
    if overlap:
        both = ", ".join(sorted(str(s) for s in overlap))
        out.append((("organization_status",), f"statuses both live and implementing: {both}"))
    return out


def _line_index(node: yaml.Node, path: Loc, out: dict[Loc, int]) -> None:
    out[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            out[(*path, key_node.value)] = key_node.start_mark.line + 1
            _line_index(value_node, (*path, key_node.value), out)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _line_index(item, (*path, i), out)


def _nearest_line(lines: dict[Loc, int], loc: Loc) -> int:
    for cut in range(len(loc), -1, -1):
        if loc[:cut] in lines:
            return lines[loc[:cut]]
    return 1


def _dotted(loc: Loc, data: Any) -> str:
    """``metrics[4](auth_success).bands`` style location, naming metrics by id when possible."""
    parts: list[str] = []
    node = data
    for part in loc:
        if isinstance(part, int):
            label = f"[{part}]"
            item = node[part] if isinstance(node, list) and part < len(node) else None
            if isinstance(item, dict) and isinstance(item.get("id"), str):
                label += f"({item['id']})"
            parts.append(label)
            node = item
        else:
            parts.append(f".{part}" if parts else str(part))
            node = node.get(part) if isinstance(node, dict) else None
    return "".join(parts) or "(top level)"


def parse_rubric(text: str, source: str = "<rubric>") -> Rubric:
    """Parse and validate rubric YAML text; raise RubricError listing every problem."""
    try:
        bound = yaml_bound_problem(text, source)
        if bound is not None:
            raise RubricError(source, [bound])
        node = yaml.compose(text, Loader=_LOADER)
        data = yaml.load(text, Loader=_LOADER)  # noqa: S506 (CSafeLoader or SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 1
        problem = getattr(exc, "problem", None) or str(exc)
        raise RubricError(source, [f"{source}:{line}: YAML syntax: {problem}"]) from None
    lines: dict[Loc, int] = {}
    if node is not None:
        _line_index(node, (), lines)
    if not isinstance(data, dict):
        raise RubricError(source, [f"{source}:1: (top level): expected a mapping"])
    if isinstance(data.get("version"), int | float):
        data["version"] = str(data["version"])
    try:
        rubric = Rubric.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc = tuple(p for p in err["loc"] if not str(p).startswith("function-"))
            line = _nearest_line(lines, loc)
            msg = err["msg"].removeprefix("Value error, ")
            problems.append(f"{source}:{line}: {_dotted(loc, data)}: {msg}")
        raise RubricError(source, problems) from None
    found = rubric_problems(rubric)
    if found:
        raise RubricError(
            source,
            [
                f"{source}:{_nearest_line(lines, loc)}: {_dotted(loc, data)}: {msg}"
                for loc, msg in found
            ],
        )
    return rubric


def load_rubric(path: Path | str | None = None) -> Rubric:
    """Load a rubric file; None loads the packaged default (``state-of-the-payer-2025-05``).

    A bare file name that is not an existing path is looked up among the packaged rubrics.
    """
    if path is None:
        return default_rubric()
    candidate = Path(path)
    if (
        not candidate.exists()
        and candidate.name == str(path)
        and candidate.name in (packaged_rubrics())
    ):
        return _packaged(candidate.name)
    try:
        size = candidate.stat().st_size
        if size > MAX_YAML_BYTES:
            raise RubricError(
                str(path),
                [
                    f"{path}:1: (top level): the file is {size / 1048576:.1f} MiB, over the "
                    f"{MAX_YAML_BYTES // 1048576} MiB bound on YAML files probe reads"
                ],
            )
        text = candidate.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise RubricError(str(path), [f"{path}: cannot read: {exc.strerror}"]) from None
    except UnicodeDecodeError:
        raise RubricError(str(path), [f"{path}: not UTF-8 text"]) from None
    return parse_rubric(text, str(path))


def packaged_rubrics() -> list[str]:
    """File names of the rubrics shipped in ``probe.rubrics``."""
    root = resources.files("probe.rubrics")
    return sorted(p.name for p in root.iterdir() if p.name.endswith((".yaml", ".yml")))


@cache
def _packaged(name: str) -> Rubric:
    text = resources.files("probe.rubrics").joinpath(name).read_text(encoding="utf-8")
    return parse_rubric(text, f"probe/rubrics/{name}")


def default_rubric() -> Rubric:
    """The packaged State of the Payer (May 2025) rubric (parsed once, then cached)."""
    return _packaged(DEFAULT_RUBRIC)
