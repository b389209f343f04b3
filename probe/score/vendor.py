"""Vendor scores: the median over a vendor's Live production payers, on vendor metrics only.

The report: "Vendor scores are calculated based on the median score across their payers'
metrics with two caveats. One, only the subset of metrics that has been denoted by 💼 above are
evaluated as relevant to vendors. Two, only the payers who have live production endpoints are
evaluated." A vendor with no such payer gets ``not_enough_data``.

With ``vendor_aggregation: median_of_totals`` (the default) the score is the median of the
payers' vendor-metric subtotals; with ``sum_of_medians`` it is the sum of per-metric medians.
Per-metric medians are reported either way. An even count takes the mean of the middle two.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from probe.score.results import PayerScore
from probe.score.rubric import Rubric


def median(values: Sequence[float]) -> float:
    """The median of `values` (mean of the middle two for an even count); ValueError if empty."""
    if not values:
        raise ValueError("median of no values")
    return float(statistics.median(values))


@dataclass(frozen=True, slots=True)
class VendorScore:
    """One vendor's score, the payers it was computed from, and per-metric medians."""

    vendor: str
    score: float | None
    outcome: Literal["scored", "not_enough_data"]
    max_points: int
    total_computed: int
    payers: tuple[str, ...]
    skipped_payers: tuple[str, ...] = ()
    metric_medians: dict[str, float] = field(default_factory=dict)
    comment: str = ""

    def to_json(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "vendor": self.vendor,
            "score": self.score,
            "outcome": self.outcome,
            "max_points": self.max_points,
            "total_computed": self.total_computed,
            "payers": list(self.payers),
            "skipped_payers": list(self.skipped_payers),
            "metric_medians": dict(self.metric_medians),
            "comment": self.comment,
        }


@dataclass(frozen=True, slots=True)
class RankedVendor:
    """A vendor score with its rank; vendors without enough data have rank None, last."""

    rank: int | None
    score: VendorScore


def vendor_scores(scores: Iterable[PayerScore], rubric: Rubric) -> list[VendorScore]:
    """Every vendor named by a payer, scored as the median over its Live production payers.

    Payers without a vendor are ignored. Only the rubric's vendor metrics count.
    """
    by_vendor: dict[str, list[PayerScore]] = {}
    for s in scores:
        if s.vendor:
            by_vendor.setdefault(s.vendor, []).append(s)
    vendor_ids = [m.id for m in rubric.vendor_metrics]
    out: list[VendorScore] = []
    for vendor in sorted(by_vendor, key=lambda v: (v.casefold(), v)):
        payers = sorted(by_vendor[vendor], key=lambda s: s.payer)
        live = [s for s in payers if s.live_production]
        skipped = tuple(s.payer for s in payers if not s.live_production)
        if not live:
            out.append(
                VendorScore(
                    vendor=vendor,
                    score=None,
                    outcome="not_enough_data",
                    max_points=rubric.vendor_total,
                    total_computed=rubric.vendor_total_computed,
                    payers=(),
                    skipped_payers=skipped,
                    comment="no payer with a Live production endpoint",
                )
            )
            continue
        medians = {
            metric_id: median([s.metric(metric_id).points for s in live])
            for metric_id in vendor_ids
        }
        if rubric.vendor_aggregation == "sum_of_medians":
            value = sum(medians.values())
        else:
            value = median([_vendor_points(s, vendor_ids) for s in live])
        out.append(
            VendorScore(
                vendor=vendor,
                score=value,
                outcome="scored",
                max_points=rubric.vendor_total,
                total_computed=rubric.vendor_total_computed,
                payers=tuple(s.payer for s in live),
                skipped_payers=skipped,
                metric_medians=medians,
                comment=f"median over {len(live)} Live production payer(s)",
            )
        )
    return out


def _vendor_points(score: PayerScore, metric_ids: Sequence[str]) -> int:
    return sum(score.metric(m).points for m in metric_ids)


def rank_vendors(scores: Iterable[VendorScore]) -> list[RankedVendor]:
    """Vendors by score, highest first (then name); ties share a rank; unscored ones last."""
    scores = list(scores)
    scored = sorted(
        (s for s in scores if s.score is not None),
        key=lambda s: (-(s.score or 0.0), s.vendor.casefold(), s.vendor),
    )
    out: list[RankedVendor] = []
    for i, s in enumerate(scored):
        tie = out and out[-1].score.score == s.score
        out.append(RankedVendor(out[-1].rank if tie else i + 1, s))
    unscored = [s for s in scores if s.score is None]
    return out + [RankedVendor(None, s) for s in sorted(unscored, key=lambda s: s.vendor)]
