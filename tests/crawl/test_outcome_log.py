"""The outcomes a crawl holds for its end-of-run table: bounded, the most notable first."""

from __future__ import annotations

from probe.crawl.crawler import CheckDigest, OutcomeLog, TargetOutcome
from probe.directory.schema import Endpoint, Environment, Payer, Target
from probe.models import Status


def outcome(i: int, *, failed_required: int = 0, error: str | None = None) -> TargetOutcome:
    payer = Payer(name=f"P{i}", endpoints=[Endpoint(base_url=f"https://p{i}.example/r4")])
    target = Target(payer, payer.endpoints[0], Environment.PRODUCTION, f"https://p{i}.example/r4")
    checks = [CheckDigest("metadata.reachable", Status.PASS, False)]
    checks += [CheckDigest(f"req.{n}", Status.FAIL, True) for n in range(failed_required)]
    return TargetOutcome(target, i, checks=checks, error=error)


def test_every_outcome_counted_the_first_held_while_room() -> None:
    log = OutcomeLog(keep=3)
    for i in range(3):
        log.add(outcome(i))
    assert [o.endpoint_id for o in log.kept] == [0, 1, 2]
    log.add(outcome(3))  # as clean as the held ones: the earlier stay
    assert log.count == 4 and [o.endpoint_id for o in log.kept] == [0, 1, 2]


def test_errors_and_failed_required_checks_displace_clean_outcomes() -> None:
    log = OutcomeLog(keep=3)
    for i in range(10):
        log.add(outcome(i))
    log.add(outcome(10, failed_required=1))
    log.add(outcome(11, error="endpoint_deadline: not finished"))
    log.add(outcome(12, failed_required=3))
    log.add(outcome(13))
    log.add(outcome(14, failed_required=2))
    assert log.count == 15
    # Held: the error, then the most failed required checks; shown in the order they finished.
    assert [o.endpoint_id for o in log.kept] == [11, 12, 14]


def test_keep_zero_holds_nothing_but_counts() -> None:
    log = OutcomeLog(keep=0)
    for i in range(5):
        log.add(outcome(i, failed_required=i))
    assert log.count == 5 and log.kept == []
