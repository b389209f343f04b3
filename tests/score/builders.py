"""Hand-built scoring inputs for the score tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from fractions import Fraction
from typing import Any

from probe.directory.schema import OrganizationStatus
from probe.score.engine import score_payer
from probe.score.inputs import PayerInputs, RateInput, Sample, Window
from probe.score.results import MetricScore
from probe.score.rubric import Rubric

AS_OF = datetime(2025, 5, 1, 12, 0, tzinfo=UTC)
WINDOW = Window.ending(AS_OF, 6)
INSIDE = AS_OF - timedelta(days=10)
OUTSIDE = WINDOW.start - timedelta(seconds=1)


def sample(value: Any, at: datetime = INSIDE, *evidence: str) -> Sample[Any]:
    """One observation inside the window (by default)."""
    return Sample(at, value, tuple(evidence))


def payer(name: str = "Acme Health", **fields: Any) -> PayerInputs:
    """A payer with Live status and 10,000 lives unless told otherwise."""
    fields.setdefault("organization_status", OrganizationStatus.LIVE)
    fields.setdefault("lives", 10_000)
    return PayerInputs(name=name, **fields)


def metric(
    metric_id: str, inputs: PayerInputs, rubric: Rubric | None = None, window: Window = WINDOW
) -> MetricScore:
    """The score row of one metric for `inputs`."""
    return score_payer(inputs, rubric, window=window).metric(metric_id)


def rate_for(percent: str) -> RateInput:
    """Counts whose exact percentage is `percent` (e.g. '94.99' -> 9499 of 10000)."""
    frac = Fraction(percent) / 100
    return RateInput(frac.numerator, frac.denominator)
