"""Benchmark: a sync's wall, probe-wait and server time on a slow fleet host at several `--rate`s.

Issue 14 found Sync Speed measuring probe's own throttle: one server's sync took a median 1.4 s
at `--rate 50` and 6.45 s at the default `--rate 5`, worth different rubric points. Here one
`slow` fleet payer (log-normal answers, median `--median-ms`) is crawled by `probe run` at each
rate into its own SQLite store, `--repeats` times, and each stored sync job's `timing` is read
back: wall time, server time, probe's own waits, and the scored time (wall minus probe's waits)
that Sync Speed now uses. The scored time should not move with the rate; the wall time does.

    .venv/bin/python bench/sync_timing.py                      # rates 2, 5 and 50
    .venv/bin/python bench/sync_timing.py --rates 1 50 --repeats 5 --markdown
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
PROBE = [sys.executable, "-m", "probe.cli"]


def _serve(workdir: Path, median_ms: float) -> tuple[subprocess.Popen[bytes], Path]:
    config = workdir / "fleet.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "seed": 7,
                "hosts": 1,
                "payers": [
                    {
                        "slug": "slowpoke",
                        "name": "Slowpoke Health",
                        "archetypes": [{"slow": {"median_ms": median_ms, "sigma": 0.2}}],
                        "patients": 1,
                        "page_size": 10,
                    }
                ],
            }
        )
    )
    directory = workdir / "endpoints.yaml"
    fleet = subprocess.Popen(
        [*PROBE, "fleet", "serve", "--config", str(config), "--directory-out", str(directory)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=workdir,
    )
    deadline = time.monotonic() + 60
    while not directory.exists():
        if time.monotonic() > deadline or fleet.poll() is not None:
            fleet.kill()
            raise RuntimeError("the fleet did not start")
        time.sleep(0.1)
    return fleet, directory


def _crawl(directory: Path, db: Path, rate: float) -> dict[str, float]:
    subprocess.run(
        [*PROBE, "run", str(directory), "--db", f"sqlite:///{db}", "--rate", str(rate),
         "--per-host", "2", "--no-portal"],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=dict(os.environ, NO_COLOR="1"),
    )  # fmt: skip
    with sqlite3.connect(db) as conn:
        (details,) = conn.execute(
            "SELECT details FROM sync_jobs ORDER BY id DESC LIMIT 1"
        ).fetchone()
    timing = json.loads(details)["timing"]
    return {k: float(v) for k, v in timing.items()}


def main() -> None:
    """Crawl the slow payer at each rate and print the medians per rate."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", type=float, nargs="+", default=[2.0, 5.0, 50.0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--median-ms", type=float, default=150.0)
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="probe-sync-timing-"))
    fleet, directory = _serve(workdir, args.median_ms)
    rows: list[tuple[float, dict[str, float], int]] = []
    try:
        for rate in args.rates:
            runs = [
                _crawl(directory, workdir / f"rate{rate}-{i}.db", rate) for i in range(args.repeats)
            ]
            medians = {key: statistics.median(r[key] for r in runs) for key in runs[0]}
            rows.append((rate, medians, len(runs)))
    finally:
        fleet.send_signal(signal.SIGTERM)
        fleet.wait(timeout=30)
    if args.markdown:
        print("| --rate | runs | wall s | server s | probe wait s | scored s |")
        print("| ---: | ---: | ---: | ---: | ---: | ---: |")
    for rate, m, n in rows:
        cells = [m["wall_ms"], m["server_ms"], m["probe_wait_ms"], m["scored_ms"]]
        if args.markdown:
            print(f"| {rate:g} | {n} | " + " | ".join(f"{c / 1000:.2f}" for c in cells) + " |")
        else:
            print(
                f"rate {rate:g}: wall {cells[0] / 1000:.2f} s, server {cells[1] / 1000:.2f} s, "
                f"probe wait {cells[2] / 1000:.2f} s, scored {cells[3] / 1000:.2f} s ({n} runs)"
            )


if __name__ == "__main__":
    main()
