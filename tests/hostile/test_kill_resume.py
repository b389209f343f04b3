"""SIGKILL a crawl at random points and resume it: the stored results equal an unbroken crawl's.

Three trials of bench/kill_resume.py (which runs twenty): `probe run` processes against a fleet
served by `probe fleet serve`, killed with SIGKILL, then `probe run --resume` until completed.
Also the one window the random kills rarely hit: a run killed after it was recorded but before
its targets were listed.
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import pytest
from sqlalchemy import func, select

from probe.store.handle import Store
from probe.store.runs import finish_run
from probe.store.tables import ProbeRunRow, RunKind, RunStatus, RunTargetRow
from tests.crawl.test_crawl_mock import N_GOOD, Fleet, count, run
from tests.hostile.conftest import kill_resume_bench


def bench() -> ModuleType:
    return kill_resume_bench()


@pytest.mark.slow
def test_sigkilled_crawls_resume_to_the_same_results(tmp_path: Path) -> None:
    # Each first run is killed 0-0.3 s after its targets are listed (the crawl itself takes
    # over a second), so every trial is killed mid-crawl whatever the machine's start-up time;
    # resumes are killed at random times.
    trials, _, endpoints = bench().run_trials(
        3, payers=14, seed=11, rekill=0.5, mid_crawl_first_kill=True, workdir=tmp_path, log=print
    )
    assert endpoints == 14
    for t in trials:
        assert t.kill_states, (t.number, "the first run finished before its kill")
        done, total = t.kill_states[0].removesuffix(" done").split("/")
        assert int(done) < int(total) and t.runs >= 2, (t.number, t.kill_states, t.runs)
    for t in trials:
        assert t.equal, (t.number, t.kill_delays, t.differences)


def test_a_run_killed_before_listing_its_targets_is_resumed_in_full(store: Store) -> None:
    run_id = store.start_run(RunKind.NIGHTLY, {})
    finish_run(store.engine, run_id, RunStatus.INTERRUPTED)  # what mark_stale_runs_interrupted does
    summary = run(store, Fleet(), resume=True)
    assert summary is not None and summary.resumed and summary.run_id == run_id
    assert summary.status is RunStatus.COMPLETED
    total = N_GOOD * 2 + 2
    assert len(summary.outcomes) == total
    done = select(func.count()).select_from(RunTargetRow).where(RunTargetRow.status == "done")
    assert count(store, done) == total
    assert count(store, select(func.count()).select_from(ProbeRunRow)) == 1
