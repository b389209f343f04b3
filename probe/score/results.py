"""What scoring produces for one payer: each metric's points with the input, expectation and
evidence behind them (Lantern's rows), category subtotals, exclusions and ranks.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from probe.directory.schema import OrganizationStatus
from probe.score.rubric import NOT_ENOUGH_DATA


@dataclass(frozen=True, slots=True)
class Resolved:
    """A metric's input after the window: exactly one of `number`, `choice`, `items`, or none.

    None of them set means not enough data. `samples` counts the observations behind a number.
    """

    number: Fraction | None = None
    choice: str | None = None
    items: frozenset[str] | None = None
    input_value: Any = None
    evidence: tuple[str, ...] = ()
    comment: str = ""
    samples: int = 0


@dataclass(frozen=True, slots=True)
class MetricScore:
    """One metric's verdict for one payer, like a validation row: expected, actual, why."""

    metric_id: str
    title: str
    category: str
    points: int
    max_points: int
    outcome: str
    outcome_label: str
    input_value: Any
    evidence: tuple[str, ...]
    comment: str
    expected: str
    reference: str
    audience: tuple[str, ...]
    sources: tuple[str, ...]
    evidence_total: int = 0

    @property
    def not_enough_data(self) -> bool:
        """True when the metric's input was missing (its points come from the rubric's rule)."""
        return self.outcome == NOT_ENOUGH_DATA

    @property
    def lost(self) -> int:
        """Points short of the maximum."""
        return self.max_points - self.points

    def to_json(self) -> dict[str, Any]:
        """JSON form of the row."""
        return {
            "metric": self.metric_id,
            "title": self.title,
            "category": self.category,
            "points": self.points,
            "max_points": self.max_points,
            "outcome": self.outcome,
            "outcome_label": self.outcome_label,
            "input": self.input_value,
            "expected": self.expected,
            "comment": self.comment,
            "reference": self.reference,
            "audience": list(self.audience),
            "sources": list(self.sources),
            "evidence": list(self.evidence),
            "evidence_total": self.evidence_total,
        }


@dataclass(frozen=True, slots=True)
class CategoryScore:
    """A category's payer points."""

    id: str
    title: str
    points: int
    max_points: int

    def to_json(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "id": self.id,
            "title": self.title,
            "points": self.points,
            "max_points": self.max_points,
        }


@dataclass(frozen=True, slots=True)
class PayerScore:
    """One payer's scores: the payer total, the vendor-metric subtotal, every metric row."""

    payer: str
    vendor: str | None
    lives: int | None
    organization_status: OrganizationStatus
    live_production: bool
    total: int
    max_total: int
    vendor_points: int
    vendor_max: int
    metrics: tuple[MetricScore, ...]
    categories: tuple[CategoryScore, ...]
    flags: tuple[str, ...] = ()

    def metric(self, metric_id: str) -> MetricScore:
        """The row of this metric (KeyError when the rubric has no such metric)."""
        for row in self.metrics:
            if row.metric_id == metric_id:
                return row
        raise KeyError(metric_id)

    @property
    def points_lost(self) -> list[MetricScore]:
        """Payer metrics that did not earn full points, biggest loss first."""
        rows = [m for m in self.metrics if "payer" in m.audience and m.lost > 0]
        return sorted(rows, key=lambda m: -m.lost)

    def to_json(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "payer": self.payer,
            "vendor": self.vendor,
            "lives": self.lives,
            "organization_status": str(self.organization_status),
            "live_production": self.live_production,
            "total": self.total,
            "max_total": self.max_total,
            "vendor_points": self.vendor_points,
            "vendor_max": self.vendor_max,
            "flags": list(self.flags),
            "categories": [c.to_json() for c in self.categories],
            "metrics": [m.to_json() for m in self.metrics],
        }


@dataclass(frozen=True, slots=True)
class Exclusion:
    """A payer left out of the scores, and why."""

    payer: str
    vendor: str | None
    lives: int | None
    reason: str

    def to_json(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "payer": self.payer,
            "vendor": self.vendor,
            "lives": self.lives,
            "reason": self.reason,
        }


@dataclass(frozen=True, slots=True)
class RankedPayer:
    """A payer score with its rank (ties share a rank: 1, 2, 3, 3, 5)."""

    rank: int
    score: PayerScore
