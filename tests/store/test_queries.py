"""Read helpers: check history and request success rates by extraction step."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

from probe.models import ExtractStep, Status
from probe.store.handle import Store
from probe.store.queries import check_history, request_stats_by_step, run_history
from probe.store.writer import StoreWriter

from .conftest import SPEC_A, SPEC_B, exchange, result


def test_check_history_newest_first(store: Store, endpoint_id: int) -> None:
    runs = []
    for day, status in enumerate((Status.FAIL, Status.WARN, Status.PASS)):
        run_id = store.start_run("nightly")
        runs.append(run_id)
        writer = StoreWriter(store.engine, run_id)
        writer.add_check_results(
            endpoint_id,
            [result(SPEC_A, status), result(SPEC_B)],
            observed_at=datetime(2026, 1, 1 + day, tzinfo=UTC),
        )
        assert writer.close()
    with store.session() as session:
        only_a = check_history(session, endpoint_id, SPEC_A.id)
        everything = check_history(session, endpoint_id, limit=4)
        summaries = run_history(session, endpoint_id, limit=2)
    assert [(o.run_id, o.status) for o in only_a] == [
        (runs[2], "pass"),
        (runs[1], "warn"),
        (runs[0], "fail"),
    ]
    assert only_a[0].run_kind == "nightly" and only_a[0].severity == "required"
    assert len(everything) == 4
    assert [s.run_id for s in summaries] == [runs[2], runs[1]]
    assert summaries[1].counts == {"warn": 1, "pass": 1}


def test_request_stats_by_step(store: Store, run_id: int, endpoint_id: int) -> None:
    writer = StoreWriter(store.engine, run_id)
    ok = exchange(0, step=ExtractStep.EVERYTHING)
    writer.add_exchanges(
        endpoint_id,
        [
            ok,
            replace(ok, status=500, latency_ms=100.0),
            replace(ok, status=None, error_class="timeout", latency_ms=100.0),
            exchange(1, step=ExtractStep.TOKEN),
        ],
    )
    assert writer.close()
    with store.session() as session:
        stats = request_stats_by_step(session, run_id)
        assert request_stats_by_step(session, run_id, endpoint_id=endpoint_id + 1) == {}
    assert set(stats) == {"everything", "token"}
    assert (stats["everything"].requests, stats["everything"].succeeded) == (3, 1)
    assert abs(stats["everything"].success_rate - 1 / 3) < 1e-9
    assert abs(stats["everything"].mean_latency_ms - (12.5 + 200) / 3) < 1e-6
    assert stats["token"].success_rate == 1.0
