"""Benchmark: `probe run` over 1,000 fleet endpoints on 16 loopback hosts.

Reports endpoints per second, the share of wall time the crawl spent on its own CPU (inside
probe) rather than waiting on the network and the servers, and the crawl's peak RSS (VmHWM of
the crawling process). The fleet runs in a separate process (`probe fleet serve`), so its CPU
is not counted as probe's; both share the machine's cores, which the report states.

    .venv/bin/python bench/crawl.py                      # 1,000 endpoints, discovery only
    .venv/bin/python bench/crawl.py --payers 200 --sync  # with test-patient syncs
    .venv/bin/python bench/crawl.py --compare            # also 1 host vs 16 hosts
    .venv/bin/python bench/crawl.py --ceiling --repeats 3  # beside bare httpx, interleaved

`--ceiling` runs, on the same fleet and at the same concurrency, a bare-httpx client that makes
the same three discovery GETs per endpoint (CapabilityStatement, SMART configuration, the
anonymous Patient search) and `json.loads` each body, nothing else: no checks, no store, no
politeness. Probe and the ceiling alternate run by run against one fleet process; medians.

Figures go to stdout (markdown with --markdown) for bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
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


def _peak_rss_mib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) // 1024
    return 0


def child(directory: str, database: str, sync: bool, settings: dict[str, Any]) -> None:
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
        concurrency=settings["concurrency"],
        per_host=settings["per_host"],
        rate=settings["rate"],
        total_requests=settings["total_requests"],
        limits=Limits(total_timeout=30),
        sync=sync,
        portal=False,
    )
    store = open_store(database)
    chosen = select_targets(d)
    profile = settings.get("profile")
    with open(os.devnull, "w") as sink:
        reporter = LogReporter(sink)
        wall0, cpu0 = time.perf_counter(), time.process_time()

        async def go() -> Any:
            return await crawl(store, d, chosen, options, reporter, secrets=secrets)

        backend_options = {"use_uvloop": True} if settings.get("uvloop") else {}
        if profile:
            import cProfile

            profiler = cProfile.Profile()
            summary = profiler.runcall(lambda: anyio.run(go, backend_options=backend_options))
            profiler.dump_stats(profile)
        else:
            summary = anyio.run(go, backend_options=backend_options)
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    print(
        json.dumps(
            {
                "client": "probe",
                "endpoints": summary.probed,
                "status": str(summary.status),
                "wall_s": wall,
                "cpu_s": cpu,
                "peak_rss_mib": _peak_rss_mib(),
                "requests": sum(h["requests"] for h in summary.host_stats.values()),
                "max_in_flight_per_host": max(
                    (h["max_in_flight"] for h in summary.host_stats.values()), default=0
                ),
            }
        )
    )


def ceiling_child(directory: str, settings: dict[str, Any]) -> None:
    """The ceiling: bare httpx, the same three discovery GETs per endpoint plus `json.loads`.

    One `httpx.AsyncClient` (its pool sized for the same requests in flight; or one per host
    with `per_host_pools` connections each, as bench/scale.py's peer asks), `concurrency`
    endpoints at once, the three GETs of an endpoint concurrently as probe makes them. No
    checks, no store, no politeness, no bounds: what httpx itself costs on this fleet.
    """
    import asyncio

    import httpx
    import yaml

    data = yaml.safe_load(Path(directory).read_text())
    bases = [
        url.rstrip("/") + "/"
        for payer in data["payers"]
        for endpoint in payer["endpoints"]
        for url in [endpoint["base_url"]]
    ]
    paths = ("metadata", ".well-known/smart-configuration", "Patient?_count=1")
    accepts = ("application/fhir+json", "application/json", "application/fhir+json")
    requests = 0
    parsed = 0

    async def go() -> None:
        nonlocal requests, parsed
        gate = asyncio.Semaphore(settings["concurrency"])
        total = settings["total_requests"]
        limits = httpx.Limits(max_connections=total, max_keepalive_connections=total)
        timeout = httpx.Timeout(30.0)
        # `per_host`: one client (pool) per host with that many connections, as probe keeps
        # them; without it one pool for all hosts, whose scan grows with the connections held.
        per_host = settings.get("per_host_pools")
        host_limits = httpx.Limits(max_connections=per_host, max_keepalive_connections=per_host)
        pools: dict[str, httpx.AsyncClient] = {}

        async with contextlib.AsyncExitStack() as stack:
            client = await stack.enter_async_context(
                httpx.AsyncClient(limits=limits, timeout=timeout)
            )

            def pool_for(url: str) -> httpx.AsyncClient:
                if not per_host:
                    return client
                host = url.split("/", 3)[2]
                if host not in pools:
                    pools[host] = httpx.AsyncClient(limits=host_limits, timeout=timeout)
                    stack.push_async_callback(pools[host].aclose)
                return pools[host]

            async def get(url: str, accept: str) -> None:
                nonlocal requests, parsed
                try:
                    response = await pool_for(url).get(url, headers={"Accept": accept})
                except httpx.HTTPError:
                    return
                requests += 1
                try:
                    json.loads(response.content)
                    parsed += 1
                except ValueError:
                    pass

            async def endpoint(base: str) -> None:
                async with gate:
                    await asyncio.gather(
                        *(get(base + p, a) for p, a in zip(paths, accepts, strict=True))
                    )

            await asyncio.gather(*(endpoint(b) for b in bases))

    wall0, cpu0 = time.perf_counter(), time.process_time()
    asyncio.run(go())
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    print(
        json.dumps(
            {
                "client": "ceiling",
                "endpoints": len(bases),
                "status": "completed",
                "wall_s": wall,
                "cpu_s": cpu,
                "peak_rss_mib": _peak_rss_mib(),
                "requests": requests,
                "parsed": parsed,
                "max_in_flight_per_host": None,
            }
        )
    )


def crawl_in_child(
    client: str, directory: Path, workdir: Path, sync: bool, settings: dict[str, Any]
) -> dict[str, Any]:
    """One crawl (probe or the ceiling) in a fresh process; its figures."""
    database = f"sqlite:///{workdir / f'bench-{time.time_ns()}.db'}"
    mode = "--child" if client == "probe" else "--ceiling-child"
    out = subprocess.run(
        [PYTHON, __file__, mode, str(directory), database, "1" if sync else "0",
         json.dumps(settings)],
        capture_output=True, text=True, check=True, timeout=1800,
    )  # fmt: skip
    figures: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    figures["endpoints_per_s"] = figures["endpoints"] / figures["wall_s"]
    figures["inside_probe_share"] = figures["cpu_s"] / figures["wall_s"]
    figures["cpu_ms_per_endpoint"] = 1000 * figures["cpu_s"] / max(figures["endpoints"], 1)
    return figures


def run_config(
    payers: int,
    hosts: int,
    sync: bool,
    workdir: Path,
    settings: dict[str, Any],
    *,
    ceiling: bool,
    repeats: int,
) -> list[dict[str, Any]]:
    """Serve one fleet in its own process; crawl it `repeats` times (alternating with the
    ceiling when asked); one row per client with median figures."""
    fleet_dir = workdir / f"fleet-{payers}-{hosts}"
    clients = ["probe", "ceiling"] if ceiling else ["probe"]
    runs: dict[str, list[dict[str, Any]]] = {c: [] for c in clients}
    with fleet_subprocess(fleet_config(payers), fleet_dir, hosts=hosts, start_timeout=120) as d:
        time.sleep(0.5)
        for i in range(repeats):
            order = clients if i % 2 == 0 else clients[::-1]
            for client in order:
                runs[client].append(crawl_in_child(client, d, workdir, sync, settings))
    rows = []
    for figures in runs.values():
        row = dict(figures[0])
        for key in ("wall_s", "cpu_s", "endpoints_per_s", "inside_probe_share",
                    "cpu_ms_per_endpoint", "peak_rss_mib"):  # fmt: skip
            row[key] = statistics.median(f[key] for f in figures)
        row["runs_endpoints_per_s"] = [round(f["endpoints_per_s"], 1) for f in figures]
        row.update(payers=payers, hosts=hosts, sync=sync, runs=len(figures))
        rows.append(row)
    if ceiling:
        rows[0]["ratio"] = rows[0]["endpoints_per_s"] / rows[1]["endpoints_per_s"]
    return rows


def main() -> None:
    """Parse options, run the configurations, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--payers", type=int, default=1000)
    parser.add_argument("--hosts", type=int, default=16)
    parser.add_argument("--sync", action="store_true", help="also sync each test patient")
    parser.add_argument("--compare", action="store_true", help="also run with 1 host")
    parser.add_argument("--ceiling", action="store_true", help="beside bare httpx, interleaved")
    parser.add_argument("--repeats", type=int, default=1, help="runs per client (medians)")
    parser.add_argument("--concurrency", type=int, default=32, help="endpoints in flight")
    parser.add_argument("--per-host", type=int, default=4)
    parser.add_argument("--rate", type=float, default=1000.0, help="request starts/s per host")
    parser.add_argument("--total-requests", type=int, default=256)
    parser.add_argument("--profile", help="cProfile the probe crawl into this file (one run)")
    parser.add_argument("--uvloop", action="store_true", help="probe's crawl on uvloop")
    parser.add_argument("--markdown", action="store_true")
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    parser.add_argument("--ceiling-child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        directory, database, sync, settings = args.child
        child(directory, database, sync == "1", json.loads(settings))
        return
    if args.ceiling_child:
        directory, _database, _sync, settings = args.ceiling_child
        ceiling_child(directory, json.loads(settings))
        return
    settings = {
        "concurrency": args.concurrency,
        "per_host": args.per_host,
        "rate": args.rate,
        "total_requests": args.total_requests,
        "profile": args.profile,
        "uvloop": args.uvloop,
    }
    configs = [(args.payers, args.hosts)]
    if args.compare:
        configs.append((args.payers, 1))
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="probe-bench-crawl-") as tmp:
        results = [
            row
            for p, h in configs
            for row in run_config(
                p, h, args.sync, Path(tmp), settings, ceiling=args.ceiling, repeats=args.repeats
            )
        ]
    load_after = os.getloadavg()
    if not args.markdown:
        print(json.dumps(results, indent=2))
        return
    machine = f"{platform.platform()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
    print(f"- date: {time.strftime('%Y-%m-%d %H:%M %Z')}")
    print(f"- machine: {machine}")
    print(f"- load average (1 min) before/after: {load_before[0]:.1f} / {load_after[0]:.1f}")
    print(f"- command: `.venv/bin/python bench/crawl.py {' '.join(sys.argv[1:])}`\n")
    print(
        "| client | endpoints | hosts | sync | runs | wall s | endpoints/s (each run) "
        "| vs ceiling | requests | CPU ms/endpoint | inside process | peak RSS MiB "
        "| max in flight/host |"
    )
    print("|---|---:|---:|---|---:|---:|---|---:|---:|---:|---:|---:|---:|")
    for r in results:
        cells = [
            r["client"],
            r["endpoints"],
            r["hosts"],
            "yes" if r["sync"] else "no",
            r["runs"],
            f"{r['wall_s']:.1f}",
            f"**{r['endpoints_per_s']:.1f}** ({', '.join(map(str, r['runs_endpoints_per_s']))})",
            f"{r['ratio']:.2f}x" if "ratio" in r else "",
            r["requests"],
            f"{r['cpu_ms_per_endpoint']:.1f}",
            f"{r['inside_probe_share']:.0%}",
            r["peak_rss_mib"],
            r["max_in_flight_per_host"] if r["max_in_flight_per_host"] is not None else "",
        ]
        print("| " + " | ".join(str(c) for c in cells) + " |")


if __name__ == "__main__":
    main()
