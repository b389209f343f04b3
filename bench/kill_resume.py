"""Benchmark: SIGKILL `probe run` at random points, `--resume` it, compare with an unbroken crawl.

A fleet of deterministic payers (ordinary quirks and fast hostile servers) is served by
``probe fleet serve`` in its own process. One uninterrupted ``probe run`` into a fresh SQLite
database gives the reference. Each trial then crawls into its own fresh database: the first
``probe run`` is killed with SIGKILL after a random delay (anywhere from interpreter start-up
to the end of the crawl), and ``probe run --resume`` is run until the run is completed, each
resume itself killed at a random point with probability `--rekill` (at most `--max-kills`
kills per trial). The trial passes when its stored results equal the reference's, endpoint by
endpoint: every check's status, the number of requests by step and status (or error class),
and every sync's outcome and resources by type; and every target is done.

    .venv/bin/python bench/kill_resume.py                 # 20 trials, figures for RESULTS.md
    .venv/bin/python bench/kill_resume.py --trials 3 --seed 5

The pytest version (tests/hostile/test_kill_resume.py) runs 3 trials through the same code,
with each first kill placed inside the crawl (`--mid-crawl`: 0-0.3 s after the targets are
listed), so that every trial is killed mid-crawl whatever the machine's speed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, func, select

from probe.fleet.process import fleet_subprocess
from probe.store.tables import (
    CheckResultRow,
    EndpointRow,
    HttpRequestRow,
    ProbeRunRow,
    RunTargetRow,
    SyncJobRow,
)

ORDINARY = [
    "exemplary",
    "no_smart_config",
    "metadata_auth",
    "html_login",
    "legacy_stu3",
    "r4_400",
    "dstu2_conformance",
    "oidc_at_smart_path",
    "smart_minimal",
    "everything_unsupported",
    "paging_loop",
    "paging_skip",
    "paging_cross_origin",
    "dangling_references",
    "contained_references",
    "plain_json",
    "moved",
]
HOSTILE: list[Any] = [  # the ones whose outcome does not depend on timing
    "deep_json",
    {"redirect_loop": {"scope": "data"}},
    "invalid_utf8",
    {"lying_length": {"declared": "longer", "scope": "data"}},
    {"next_link_elsewhere": {"to": "link_local"}},
    {"huge_body": {"mb": 100, "chunked": True, "scope": "data"}},
    {"gzip_bomb": {"scope": "discovery"}},
]
RUN_OPTIONS = [
    "--concurrency",
    "6",
    "--per-host",
    "2",
    "--rate",
    "40",
    "--timeout",
    "10",
    "--no-portal",
]


def fleet_config(payers: int, seed: int) -> dict[str, Any]:
    """`payers` deterministic payers: ordinary quirks (a few slowed down) and hostile servers."""
    chosen: list[dict[str, Any]] = []
    for i in range(payers):
        if i % 5 == 4:
            archetype = HOSTILE[(i // 5) % len(HOSTILE)]
        elif i % 7 == 3:
            archetype = {"slow": {"median_ms": 40, "sigma": 0}}  # fixed latency: same answers
        else:
            archetype = ORDINARY[i % len(ORDINARY)]
        chosen.append({"slug": f"p{i:03d}", "archetypes": [archetype], "patients": 1})
    return {"seed": seed, "hosts": 4, "payers": chosen}


@contextmanager
def serve_fleet(workdir: Path, payers: int, seed: int) -> Iterator[Path]:
    """Run `probe fleet serve` for the block; yields the directory file it wrote."""
    with fleet_subprocess(fleet_config(payers, seed), workdir) as directory:
        yield directory


def probe_run(directory: Path, db: Path, *, resume: bool) -> subprocess.Popen[bytes]:
    """Start `probe run` (stdout/stderr discarded; the store is what is compared)."""
    args = [sys.executable, "-m", "probe.cli", "run", str(directory), "--db", f"sqlite:///{db}"]
    args += [*RUN_OPTIONS, *(["--resume"] if resume else [])]
    return subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def run_to_end(directory: Path, db: Path, *, resume: bool = False) -> tuple[int, float]:
    """One `probe run` to its end; its exit code and duration."""
    t0 = time.monotonic()
    code = probe_run(directory, db, resume=resume).wait(timeout=600)
    return code, time.monotonic() - t0


def killed_within(process: subprocess.Popen[bytes], delay: float) -> bool:
    """SIGKILL `process` unless it ends within `delay` s; whether it was killed."""
    try:
        process.wait(timeout=delay)
        return False
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGKILL)
        process.wait()
        return True


def killed_after(directory: Path, db: Path, delay: float, *, resume: bool) -> bool:
    """Start `probe run`, SIGKILL it after `delay` s; False if it had already finished."""
    return killed_within(probe_run(directory, db, resume=resume), delay)


def latest_run(db: Path | str) -> tuple[int, str] | None:
    """The newest run's id and status, or None when no run was recorded.

    `db` is a SQLite file or a database URL.
    """
    if isinstance(db, Path) and not db.exists():
        return None
    engine = create_engine(db if isinstance(db, str) else f"sqlite:///{db}")
    try:
        with engine.connect() as conn:
            row = conn.execute(
                select(ProbeRunRow.id, ProbeRunRow.status).order_by(ProbeRunRow.id.desc()).limit(1)
            ).first()
    except Exception:  # no tables yet: killed before the migrations ran
        return None
    finally:
        engine.dispose()
    return (int(row[0]), str(row[1])) if row else None


def target_counts(db: Path) -> dict[str, int] | None:
    """The newest run's targets by status, or None when no run was recorded."""
    latest = latest_run(db)
    if latest is None:
        return None
    engine = create_engine(f"sqlite:///{db}")
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                select(RunTargetRow.status, func.count())
                .where(RunTargetRow.run_id == latest[0])
                .group_by(RunTargetRow.status)
            ).all()
    finally:
        engine.dispose()
    return {str(status): int(n) for status, n in rows}


def progress(db: Path) -> str:
    """Where a killed crawl stood: 'no run yet', or how many of its targets were done."""
    counts = target_counts(db)
    if counts is None:
        return "no run yet"
    return f"{counts.get('done', 0)}/{sum(counts.values())} done"


def killed_after_listing(directory: Path, db: Path, delay: float, *, resume: bool) -> float | None:
    """Start `probe run`, SIGKILL it `delay` s after its targets are listed in the store.

    Returns the seconds from start to the kill, or None when the run ended first. The store is
    polled every 20 ms; a kill here lands in the crawl itself, not in interpreter start-up.
    """
    t0 = time.monotonic()
    process = probe_run(directory, db, resume=resume)
    while process.poll() is None:
        try:
            counts = target_counts(db)
        except Exception:  # the schema is being created: not there yet
            counts = None
        if counts:
            return time.monotonic() - t0 if killed_within(process, delay) else None
        time.sleep(0.02)
    return None


def stored_results(db: Path | str, run_id: int) -> dict[str, Any]:
    """Per endpoint (base URL): check statuses, requests by step and status, syncs, target.

    `db` is a SQLite file or a database URL.
    """
    engine = create_engine(db if isinstance(db, str) else f"sqlite:///{db}")
    out: dict[str, Any] = defaultdict(
        lambda: {"checks": {}, "requests": Counter(), "syncs": [], "target": None}
    )
    try:
        with engine.connect() as conn:
            url = dict(conn.execute(select(EndpointRow.id, EndpointRow.base_url)).all())
            for eid, check_id, status in conn.execute(
                select(
                    CheckResultRow.endpoint_id, CheckResultRow.check_id, CheckResultRow.status
                ).where(CheckResultRow.run_id == run_id)
            ):
                out[url[eid]]["checks"][check_id] = status
            for eid, step, status, error, n in conn.execute(
                select(
                    HttpRequestRow.endpoint_id,
                    HttpRequestRow.step,
                    HttpRequestRow.status,
                    HttpRequestRow.error_class,
                    func.count(),
                )
                .where(HttpRequestRow.run_id == run_id)
                .group_by(
                    HttpRequestRow.endpoint_id,
                    HttpRequestRow.step,
                    HttpRequestRow.status,
                    HttpRequestRow.error_class,
                )
            ):
                out[url[eid]]["requests"][f"{step}:{status or error}"] += n
            for eid, label, outcome, resources in conn.execute(
                select(
                    SyncJobRow.endpoint_id,
                    SyncJobRow.patient_label,
                    SyncJobRow.outcome,
                    SyncJobRow.resources_by_type,
                ).where(SyncJobRow.run_id == run_id)
            ):
                if isinstance(resources, str):
                    resources = json.loads(resources)
                out[url[eid]]["syncs"].append((label, outcome, resources))
            for eid, status in conn.execute(
                select(RunTargetRow.endpoint_id, RunTargetRow.status).where(
                    RunTargetRow.run_id == run_id
                )
            ):
                out[url[eid]]["target"] = status
    finally:
        engine.dispose()
    for entry in out.values():
        entry["requests"] = dict(sorted(entry["requests"].items()))
        entry["syncs"].sort()
    return dict(out)


@dataclass
class Trial:
    """One trial: where the kills landed, how many runs it took, and whether it matched."""

    number: int
    kill_delays: list[float] = field(default_factory=list)
    kill_states: list[str] = field(default_factory=list)
    runs: int = 0
    seconds: float = 0.0
    equal: bool = False
    differences: list[str] = field(default_factory=list)


def differences(reference: dict[str, Any], got: dict[str, Any]) -> list[str]:
    """What differs between two stored results (empty when equal)."""
    out = []
    for url in sorted(set(reference) | set(got)):
        want, have = reference.get(url), got.get(url)
        if want != have:
            keys = [
                k
                for k in ("checks", "requests", "syncs", "target")
                if (want or {}).get(k) != (have or {}).get(k)
            ]
            out.append(f"{url}: {', '.join(keys) or 'missing'}")
    return out


def trial(
    number: int,
    directory: Path,
    workdir: Path,
    reference: dict[str, Any],
    reference_s: float,
    rng: random.Random,
    *,
    rekill: float,
    max_kills: int,
    mid_crawl_first_kill: bool = False,
) -> Trial:
    """Kill, resume until completed, compare with the reference.

    The first run is killed after a random delay from start, or, with `mid_crawl_first_kill`,
    a random 0-0.3 s after its targets are listed (a kill that lands in the crawl itself).
    """
    db = workdir / f"trial-{number:02d}.db"
    result = Trial(number)
    t0 = time.monotonic()
    result.runs += 1
    if mid_crawl_first_kill:
        landed = killed_after_listing(directory, db, rng.uniform(0.0, 0.3), resume=False)
        if landed is not None:
            result.kill_delays.append(round(landed, 2))
            result.kill_states.append(progress(db))
    else:
        delay = rng.uniform(0.2, reference_s)
        if killed_after(directory, db, delay, resume=False):
            result.kill_delays.append(round(delay, 2))
            result.kill_states.append(progress(db))
    while True:
        latest = latest_run(db)
        if latest is not None and latest[1] == "completed":
            break
        result.runs += 1
        if len(result.kill_delays) < max_kills and rng.random() < rekill:
            delay = rng.uniform(0.2, reference_s)
            if killed_after(directory, db, delay, resume=True):
                result.kill_delays.append(round(delay, 2))
                result.kill_states.append(progress(db))
            continue
        code, _ = run_to_end(directory, db, resume=True)
        if code not in (0, 1):
            raise RuntimeError(f"trial {number}: probe run --resume exited {code}")
        if result.runs > max_kills + 5:
            raise RuntimeError(f"trial {number}: no completed run after {result.runs} runs")
    result.seconds = time.monotonic() - t0
    latest = latest_run(db)
    assert latest is not None
    got = stored_results(db, latest[0])
    result.differences = differences(reference, got)
    if any(v["target"] != "done" for v in got.values()):
        result.differences.append("a target is not done")
    result.equal = not result.differences
    return result


def run_trials(
    trials: int,
    *,
    payers: int = 28,
    seed: int = 7,
    rekill: float = 0.3,
    max_kills: int = 3,
    mid_crawl_first_kill: bool = False,
    workdir: Path | None = None,
    log: Any = None,
) -> tuple[list[Trial], float, int]:
    """Serve a fleet, crawl it once unbroken, then run `trials` kill/resume trials.

    With `mid_crawl_first_kill`, each trial's first run is killed shortly after its targets are
    listed (see `trial`) instead of after a random delay from start. Returns the trials, the
    reference crawl's duration and the number of endpoints.
    """
    say = log or (lambda text: print(text, file=sys.stderr, flush=True))
    rng = random.Random(seed)
    with tempfile.TemporaryDirectory(prefix="kill-resume-") as tmp:
        base = workdir or Path(tmp)
        with serve_fleet(base, payers, seed) as directory:
            reference_db = base / "reference.db"
            code, reference_s = run_to_end(directory, reference_db)
            latest = latest_run(reference_db)
            if code not in (0, 1) or latest is None or latest[1] != "completed":
                raise RuntimeError(f"the reference crawl failed (exit {code}, run {latest})")
            reference = stored_results(reference_db, latest[0])
            say(f"reference crawl: {len(reference)} endpoints in {reference_s:.1f} s")
            done: list[Trial] = []
            for number in range(1, trials + 1):
                one = trial(
                    number,
                    directory,
                    base,
                    reference,
                    reference_s,
                    rng,
                    rekill=rekill,
                    max_kills=max_kills,
                    mid_crawl_first_kill=mid_crawl_first_kill,
                )
                done.append(one)
                say(
                    f"trial {number}: kills at {one.kill_delays} s ({one.kill_states}), "
                    f"{one.runs} runs, "
                    f"{one.seconds:.1f} s, {'EQUAL' if one.equal else 'DIFFERENT'}"
                    + (f": {one.differences[:5]}" if one.differences else "")
                )
    return done, reference_s, len(reference)


def main() -> None:
    """Command line: run the trials and print a Markdown summary for bench/RESULTS.md."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--payers", type=int, default=28)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--rekill", type=float, default=0.3, help="chance a resume is killed too")
    parser.add_argument("--max-kills", type=int, default=3)
    parser.add_argument(
        "--mid-crawl",
        action="store_true",
        help="kill each first run 0-0.3 s after its targets are listed",
    )
    args = parser.parse_args()
    started = time.monotonic()
    trials, reference_s, endpoints = run_trials(
        args.trials,
        payers=args.payers,
        seed=args.seed,
        rekill=args.rekill,
        max_kills=args.max_kills,
        mid_crawl_first_kill=args.mid_crawl,
    )
    kills = [len(t.kill_delays) for t in trials]
    equal = sum(t.equal for t in trials)
    print(f"- Date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    print(f"- Machine: `{' '.join(platform.uname()[:3])}`, nproc = {os.cpu_count()}")
    print(f"- Fleet: {args.payers} payers ({endpoints} endpoints), seed {args.seed}")
    print(f"- Reference crawl (uninterrupted): {reference_s:.1f} s")
    print(
        f"- Trials: {len(trials)}; SIGKILLs: {sum(kills)} in total "
        f"({Counter(kills)[0]} trials where the first run finished before its kill); "
        f"runs per trial {min(t.runs for t in trials)}-{max(t.runs for t in trials)}"
    )
    print(f"- Equal to the reference: **{equal}/{len(trials)}**")
    print(f"- Wall time: {time.monotonic() - started:.0f} s")
    mid = sum(1 for t in trials for state in t.kill_states if state != "no run yet")
    print(f"- Kills that landed while a run was recorded (the rest hit start-up): {mid}")
    print()
    print("| trial | kills: s after start (targets done) | runs | seconds | stored results |")
    print("| ---: | --- | ---: | ---: | --- |")
    for t in trials:
        verdict = "equal" if t.equal else f"DIFFERENT: {'; '.join(t.differences[:3])}"
        kills = ", ".join(f"{d} s ({k})" for d, k in zip(t.kill_delays, t.kill_states, strict=True))
        print(f"| {t.number} | {kills or '-'} | {t.runs} | {t.seconds:.1f} | {verdict} |")
    sys.exit(0 if equal == len(trials) else 1)


if __name__ == "__main__":
    main()
