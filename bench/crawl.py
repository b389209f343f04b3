"""Benchmark: `probe run` over 1,000 fleet endpoints on 16 loopback hosts.

Reports endpoints per second, the share of wall time the crawl spent on its own CPU (inside
probe) rather than waiting on the network and the servers, and the crawl's peak RSS (VmHWM of
the crawling process). The fleet runs in a separate process (`probe fleet serve`), so its CPU
is not counted as probe's; both share the machine's cores, which the report states.

    .venv/bin/python bench/crawl.py                      # 1,000 endpoints, discovery only
    .venv/bin/python bench/crawl.py --payers 200 --sync  # with test-patient syncs
    .venv/bin/python bench/crawl.py --compare            # also 1 host vs 16 hosts

Figures go to stdout (markdown with --markdown) for bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from probe.fleet.process import fleet_subprocess

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable


def fleet_config(payers: int, seed: int = 7) -> dict[str, Any]:
    """A generated fleet: mostly exemplary payers, a realistic share of broken ones."""
    return {
        "seed": seed,
        "generate": {
            "count": payers,
            "prefix": "payer",
            "patients": 1,
            "second_archetype_share": 0.0,
            "mix": {
                "exemplary": 14,
                "no_smart_config": 1,
                "metadata_auth": 1,
                "html_login": 1,
                "legacy_stu3": 1,
                "everything_unsupported": 1,
                "dangling_references": 1,
            },
        },
    }


def child(directory: str, database: str, sync: bool, concurrency: int, per_host: int) -> None:
    """In the crawling process: run the crawl, print wall/CPU/RSS figures as JSON."""
    import anyio

    from probe.cli.progress import LogReporter
    from probe.crawl.crawler import crawl, select_targets
    from probe.crawl.options import CrawlOptions
    from probe.directory.schema import load_directory
    from probe.directory.secrets import SecretSource
    from probe.http.limits import Limits
    from probe.store.engine import open_store

    d = load_directory(Path(directory))
    secrets = SecretSource(Path(d.secrets_file) if d.secrets_file else None)
    options = CrawlOptions(
        concurrency=concurrency,
        per_host=per_host,
        rate=1000.0,
        total_requests=256,
        limits=Limits(total_timeout=30),
        sync=sync,
        portal=False,
    )
    store = open_store(database)
    chosen = select_targets(d)
    with open(os.devnull, "w") as sink:
        reporter = LogReporter(sink)
        wall0, cpu0 = time.perf_counter(), time.process_time()

        async def go() -> Any:
            return await crawl(store, d, chosen, options, reporter, secrets=secrets)

        summary = anyio.run(go)
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    hwm = 0
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            hwm = int(line.split()[1]) // 1024
    print(
        json.dumps(
            {
                "endpoints": len(summary.outcomes),
                "status": str(summary.status),
                "wall_s": wall,
                "cpu_s": cpu,
                "peak_rss_mib": hwm,
                "requests": sum(h["requests"] for h in summary.host_stats.values()),
                "max_in_flight_per_host": max(
                    (h["max_in_flight"] for h in summary.host_stats.values()), default=0
                ),
            }
        )
    )


def run_once(payers: int, hosts: int, sync: bool, workdir: Path) -> dict[str, Any]:
    """Serve a fleet in its own process, crawl it in another, return the crawl's figures."""
    fleet_dir = workdir / f"fleet-{payers}-{hosts}"
    with fleet_subprocess(fleet_config(payers), fleet_dir, hosts=hosts, start_timeout=120) as d:
        time.sleep(0.5)
        database = f"sqlite:///{workdir / f'bench-{payers}-{hosts}-{time.time_ns()}.db'}"
        out = subprocess.run(
            [PYTHON, __file__, "--child", str(d), database, "1" if sync else "0"],
            capture_output=True, text=True, check=True, timeout=1800,
        )  # fmt: skip
        figures: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    figures.update(payers=payers, hosts=hosts, sync=sync)
    figures["endpoints_per_s"] = figures["endpoints"] / figures["wall_s"]
    figures["inside_probe_share"] = figures["cpu_s"] / figures["wall_s"]
    return figures


def main() -> None:
    """Parse options, run the configurations, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--payers", type=int, default=1000)
    parser.add_argument("--hosts", type=int, default=16)
    parser.add_argument("--sync", action="store_true", help="also sync each test patient")
    parser.add_argument("--compare", action="store_true", help="also run with 1 host")
    parser.add_argument("--markdown", action="store_true")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        directory, database, sync = args.child
        child(directory, database, sync == "1", concurrency=32, per_host=4)
        return
    configs = [(args.payers, args.hosts)]
    if args.compare:
        configs.append((args.payers, 1))
    with tempfile.TemporaryDirectory(prefix="probe-bench-crawl-") as tmp:
        results = [run_once(p, h, args.sync, Path(tmp)) for p, h in configs]
    if not args.markdown:
        print(json.dumps(results, indent=2))
        return
    machine = f"{platform.platform()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
    print(f"- date: {time.strftime('%Y-%m-%d %H:%M %Z')}")
    print(f"- machine: {machine}")
    print(f"- command: `.venv/bin/python bench/crawl.py {' '.join(sys.argv[1:])}`\n")
    print(
        "| endpoints | hosts | sync | status | wall s | endpoints/s | requests | probe CPU s "
        "| inside probe | peak RSS MiB | max in flight/host |"
    )
    print("|---:|---:|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in results:
        cells = [
            r["endpoints"],
            r["hosts"],
            "yes" if r["sync"] else "no",
            r["status"],
            f"{r['wall_s']:.1f}",
            f"{r['endpoints_per_s']:.1f}",
            r["requests"],
            f"{r['cpu_s']:.1f}",
            f"{r['inside_probe_share']:.0%}",
            r["peak_rss_mib"],
            r["max_in_flight_per_host"],
        ]
        print("| " + " | ".join(str(c) for c in cells) + " |")


if __name__ == "__main__":
    main()
