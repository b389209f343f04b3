"""Scoring: a rubric (data), payer inputs (raw, timestamped, with evidence) and a pure engine.

Typical use::

    from probe.score import load_rubric, score

    card = score(payer_inputs, load_rubric(), as_of=datetime.now(UTC))
    for ranked in card.payers:
        print(ranked.rank, ranked.score.payer, ranked.score.total)

See docs/scoring.md for every metric, its bands and edge decisions.
"""

from probe.score.engine import (
    CategoryScore,
    Exclusion,
    MetricScore,
    PayerScore,
    RankedPayer,
    Resolved,
    Scorecard,
    filter_by_lives,
    is_live_production,
    rank_payers,
    resolve,
    score,
    score_metric,
    score_payer,
)
from probe.score.inputs import (
    AuthCounts,
    EverythingLevel,
    PayerInputs,
    RateInput,
    RefreshInput,
    Sample,
    Window,
    subtract_months,
)
from probe.score.rubric import (
    DEFAULT_RUBRIC,
    KNOWN_METRICS,
    NOT_ENOUGH_DATA,
    Rubric,
    RubricError,
    default_rubric,
    load_rubric,
    packaged_rubrics,
    parse_rubric,
)
from probe.score.vendor import RankedVendor, VendorScore, median, rank_vendors, vendor_scores

__all__ = [
    "DEFAULT_RUBRIC",
    "KNOWN_METRICS",
    "NOT_ENOUGH_DATA",
    "AuthCounts",
    "CategoryScore",
    "EverythingLevel",
    "Exclusion",
    "MetricScore",
    "PayerInputs",
    "PayerScore",
    "RankedPayer",
    "RankedVendor",
    "RateInput",
    "RefreshInput",
    "Resolved",
    "Rubric",
    "RubricError",
    "Sample",
    "Scorecard",
    "VendorScore",
    "Window",
    "default_rubric",
    "filter_by_lives",
    "is_live_production",
    "load_rubric",
    "median",
    "packaged_rubrics",
    "parse_rubric",
    "rank_payers",
    "rank_vendors",
    "resolve",
    "score",
    "score_metric",
    "score_payer",
    "subtract_months",
    "vendor_scores",
]
