"""The release gate: what fails a candidate (breaking changes, required checks, the score)."""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from probe.drift.classify import Change, ChangeKind
from probe.models import Report
from probe.prerelease.scoring import PrereleaseScore


class FailOn(enum.StrEnum):
    """What fails the gate besides ``--fail-under``."""

    BREAKING = "breaking"
    NOTABLE = "notable"
    REQUIRED = "required"


# -- the gate ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class GateResult:
    """Whether the candidate may be released, and each reason it may not."""

    passed: bool
    reasons: tuple[str, ...] = ()
    fail_under: int | None = None
    fail_on: tuple[str, ...] = ()
    #: What ``--fail-under`` is applied to: ``prerelease`` (the whole prerelease scorecard,
    #: untested metrics counting 0) or ``discovery`` (``--discovery-only``).
    scope: str = "prerelease"

    def to_json(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "passed": self.passed,
            "reasons": list(self.reasons),
            "fail_under": self.fail_under,
            "fail_on": list(self.fail_on),
            "scope": self.scope,
        }


def evaluate_gate(
    changes: Sequence[Change],
    report: Report,
    score: PrereleaseScore,
    *,
    fail_under: int | None = None,
    fail_on: Sequence[FailOn] = (),
    compared: bool = True,
) -> GateResult:
    """Apply ``--fail-on`` and ``--fail-under`` to a prerelease's outcome.

    The gate never passes on what was not tested: ``--fail-on breaking`` or ``notable``
    without a baseline (`compared` False) fails, and ``--fail-under`` applies to the score
    over its scope, where a metric without data counts 0 of its points.
    """
    reasons: list[str] = []
    wanted = set(fail_on)
    asked = sorted(str(f) for f in wanted & {FailOn.BREAKING, FailOn.NOTABLE})
    if asked and not compared:
        reasons.append(
            f"--fail-on {' and '.join(asked)}: no baseline was compared "
            "(give --baseline URL or --baseline-run RUN_ID)"
        )
    breaking = [c for c in changes if c.kind is ChangeKind.BREAKING]
    notable = [c for c in changes if c.kind is ChangeKind.NOTABLE]
    if (FailOn.BREAKING in wanted or FailOn.NOTABLE in wanted) and breaking:
        reasons.append(
            f"{len(breaking)} breaking change(s): " + ", ".join(c.id for c in breaking[:5])
        )
    if FailOn.NOTABLE in wanted and notable:
        reasons.append(f"{len(notable)} notable change(s): " + ", ".join(c.id for c in notable[:5]))
    if FailOn.REQUIRED in wanted and report.failed_required:
        ids = ", ".join(r.id for r in report.failed_required)
        reasons.append(f"{len(report.failed_required)} required check(s) failed: {ids}")
    what = "discovery score" if score.scope == "discovery" else "prerelease score"
    if fail_under is not None:
        if score.score is None:
            reasons.append(f"no {what} (the rubric has no such metric), --fail-under {fail_under}")
        elif score.score < fail_under:
            untested = f"; {score.untested} untested point(s) count 0" if score.untested else ""
            reasons.append(
                f"{what} {score.score} is below --fail-under {fail_under} "
                f"({score.earned} of {score.possible} points{untested})"
            )
    return GateResult(
        not reasons,
        tuple(reasons),
        fail_under,
        tuple(sorted(str(f) for f in wanted)),
        score.scope,
    )
