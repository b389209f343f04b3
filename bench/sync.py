"""Benchmark: one test-patient sync of a huge patient, probe vs. fhirpy, on the fleet.

The fleet runs in this process on loopback (``running_fleet``, one host), with one payer per
patient size whose test patient has that many resources (the `huge_patient` archetype).
Each measured sync runs in a fresh child process, so its peak RSS is its own:

* ``probe``             - probe.sync.session.sync_patient ($everything, paging, reference
                          resolution, R4 validation of every resource), static bearer token;
* ``probe-novalidate``  - the same with ``SyncLimits(validate=False)`` (``--no-validate``);
* ``fhirpy``            - fhirpy's AsyncFHIRClient (a maintained FHIR client) fetching
                          ``Patient/{id}/$everything`` and following its next links to the end,
                          counting the resources by type (no validation, no reference reads).
                          fhirpy lives in a throwaway virtualenv, ``.cache/bench-venv``.

Each child reports wall time, its own CPU time (``time.process_time``), its peak RSS and its RSS
before the sync started. Peak RSS is ``VmHWM`` from ``/proc/self/status``: Linux carries
``ru_maxrss`` (RUSAGE_SELF, and so RUSAGE_CHILDREN in the parent) over from the forking parent
through ``exec``, so a child forked from this process (which holds the fleet, ~120 MiB with the
10,000-resource patient) would report at least the parent's RSS; ``VmHWM`` belongs to the new
address space only. The server's share is measured on the fleet's side: the
summed handling time of the sync's requests (the fleet's per-request log) and this process's
CPU time during the run (this process does nothing but serve the fleet meanwhile).

The fleet's `$everything` pages cost O(patient size) each, quadratic in total: every page
rebuilds the patient's key list testing membership in per-type id *lists*
(`probe.fleet.fhir._keys`), ~0.34 s a page at 10,000 resources. ``--fleet-linear-keys`` swaps
in the same function with sets (identical output, checked before the clock starts) so the
clients, not the fleet, are what is measured; the default measures the fleet as it is.

    .venv/bin/python bench/sync.py                       # 1,000 and 10,000 resources
    .venv/bin/python bench/sync.py --sizes 10000 --repeats 3 --markdown --fleet-linear-keys
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
BENCH_VENV = REPO / ".cache" / "bench-venv"
FHIRPY_VERSION = "2.3.1"
TOKEN_ENV = "BENCH_SYNC_TOKEN"
CLIENTS = ("probe", "probe-novalidate", "fhirpy")


# -- children: one sync each, figures as one JSON line on stdout -----------------------------


def _status_kib(field: str) -> int:
    """A memory figure of this process from /proc/self/status (VmRSS, VmHWM), in KiB."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def _child_figures(started: float, cpu0: float, rss_before: int) -> dict[str, Any]:
    return {
        "wall_s": time.perf_counter() - started,
        "cpu_s": time.process_time() - cpu0,
        "rss_before_kib": rss_before,
        "maxrss_kib": _status_kib("VmHWM"),
    }


def child_probe(base: str, patient: str, page_size: int, validate: bool) -> dict[str, Any]:
    """Sync with probe's library (what `probe sync --no-validate?` runs, minus discovery)."""
    sys.path.insert(0, str(REPO))
    import anyio

    from probe.directory.schema import BearerCredentials, SecretRef
    from probe.directory.secrets import SecretSource
    from probe.http.fetch import Fetcher, new_client
    from probe.http.limits import Limits
    from probe.sync.limits import SyncLimits
    from probe.sync.result import SyncResult
    from probe.sync.session import sync_patient

    async def go() -> SyncResult:
        async with new_client() as client:
            fetcher = Fetcher(client, Limits(read_timeout=120, total_timeout=120))
            return await sync_patient(
                fetcher,
                base,
                patient,
                BearerCredentials(kind="bearer", token=SecretRef(env=TOKEN_ENV)),
                SecretSource(),
                limits=SyncLimits(page_size=page_size, validate=validate),
            )

    rss_before = _status_kib("VmRSS")
    started, cpu0 = time.perf_counter(), time.process_time()
    result = anyio.run(go)
    figures = _child_figures(started, cpu0, rss_before)
    return {
        **figures,
        "outcome": result.outcome,
        "resources": sum(result.resources_by_type.values()),
        "by_type": result.resources_by_type,
        "requests": len(result.exchanges),
        "pages": result.pages,
        "bytes": result.bytes,
        "validation_failures": sum(result.validation_failures.values()),
        "support_level": result.everything.support_level,
    }


def child_fhirpy(base: str, patient: str, page_size: int) -> dict[str, Any]:
    """The same $everything walk with fhirpy's AsyncFHIRClient (runs in .cache/bench-venv)."""
    from fhirpy import AsyncFHIRClient

    async def go() -> dict[str, Any]:
        client = AsyncFHIRClient(
            base,
            authorization=f"Bearer {os.environ[TOKEN_ENV]}",
            extra_headers={"Accept": "application/fhir+json"},
        )
        ids: dict[str, set[str]] = {}
        pages = 0
        bundle = await client.execute(
            f"Patient/{patient}/$everything", method="get", params={"_count": page_size}
        )
        while True:
            pages += 1
            for entry in bundle.get("entry") or []:
                res = entry["resource"]
                ids.setdefault(res["resourceType"], set()).add(res["id"])
            nxt = next(
                (lk["url"] for lk in bundle.get("link") or [] if lk["relation"] == "next"), None
            )
            if nxt is None:
                break
            bundle = await client.execute(nxt, method="get")
        return {
            "outcome": "completed",
            "resources": sum(len(v) for v in ids.values()),
            "by_type": {t: len(v) for t, v in sorted(ids.items())},
            "requests": pages,
            "pages": pages,
            "bytes": None,
            "validation_failures": None,
            "support_level": None,
        }

    rss_before = _status_kib("VmRSS")
    started, cpu0 = time.perf_counter(), time.process_time()
    out = asyncio.run(go())
    return {**_child_figures(started, cpu0, rss_before), **out}


# -- the parent: fleet, children, table --------------------------------------------------------


def ensure_bench_venv() -> Path:
    """`.cache/bench-venv` with fhirpy (created on first use; never probe's own venv)."""
    python = BENCH_VENV / "bin" / "python"
    stamp = BENCH_VENV / f".installed-fhirpy-{FHIRPY_VERSION}"
    if stamp.exists() and python.exists():
        return python
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(BENCH_VENV)], check=True)
    subprocess.run(
        [
            str(python),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            f"fhirpy=={FHIRPY_VERSION}",
        ],
        check=True,
    )
    stamp.write_text(FHIRPY_VERSION + "\n")
    return python


def use_linear_keys(fleet: Any, slugs: list[str]) -> None:
    """Replace the fleet's quadratic `_keys` with a set-based twin (checked identical first)."""
    from probe.fleet import fhir
    from probe.fleet.paging import Query

    original = fhir._keys

    def keys(data: Any, query: Any) -> list[tuple[tuple[str, str], str]]:
        if query.kind != "everything":
            return original(data, query)
        patient = query.patient or ""
        compartment = {t: set(ids) for t, ids in data.compartments.get(patient, {}).items()}
        return [
            (k, "match" if k[0] == "Patient" or k[1] in compartment.get(k[0], ()) else "include")
            for k in data.everything.get(patient, [])
        ]

    for slug in slugs:
        data, patient = fleet.data(slug), fleet.patients(slug)[0]
        query = Query("everything", "Patient", patient, None, None, 200, ())
        assert keys(data, query) == original(data, query), slug
    fhir._keys = keys


def fleet_config(sizes: list[int], page_size: int) -> dict[str, Any]:
    return {
        "seed": 1,
        "hosts": 1,
        "payers": [
            {
                "slug": f"huge-{n}",
                "archetypes": [{"huge_patient": {"resources": n}}],
                "patients": 1,
                "page_size": page_size,
                "max_count": max(page_size, 200),
                "paging_style": "ct",
            }
            for n in sizes
        ],
    }


async def run_all(args: argparse.Namespace) -> list[dict[str, Any]]:
    sys.path.insert(0, str(REPO))
    import anyio

    from probe.fleet.config import parse_fleet_config
    from probe.fleet.serve import running_fleet

    clients = [c for c in args.clients if c != "fhirpy" or not args.no_fhirpy]
    fhirpy_python = ensure_bench_venv() if "fhirpy" in clients else None
    config = parse_fleet_config(fleet_config(args.sizes, args.page_size))
    rows: list[dict[str, Any]] = []
    async with running_fleet(config) as fleet:
        for n in args.sizes:
            fleet.data(f"huge-{n}")  # build the patient before any clock starts
        if args.fleet_linear_keys:
            use_linear_keys(fleet, [f"huge-{n}" for n in args.sizes])
        for n in args.sizes:
            slug = f"huge-{n}"
            base = fleet.base_url(slug)
            patient = fleet.patients(slug)[0]
            for client in clients:
                for repeat in range(args.repeats):
                    python = str(fhirpy_python) if client == "fhirpy" else sys.executable
                    cmd = [python, __file__, "--child", client, "--base", base]
                    cmd += ["--patient", patient, "--page-size", str(args.page_size)]
                    env = {**os.environ, TOKEN_ENV: fleet.issue_access_token(slug, patient)}
                    fleet.stats.reset()
                    cpu0 = time.process_time()
                    done = await anyio.run_process(cmd, env=env, check=False)
                    server_cpu = time.process_time() - cpu0
                    if done.returncode != 0:
                        raise SystemExit(f"{client} child failed:\n{done.stderr.decode()[-3000:]}")
                    child = json.loads(done.stdout.decode().strip().splitlines()[-1])
                    records = fleet.stats.records(payer=slug)
                    row = {
                        "size": n,
                        "client": client,
                        "repeat": repeat,
                        **child,
                        "server_requests": len(records),
                        "server_s": sum(r.duration_ms for r in records) / 1000,
                        "server_cpu_s": server_cpu,
                    }
                    rows.append(row)
                    print(_line(row), file=sys.stderr, flush=True)
    return rows


def _line(row: dict[str, Any]) -> str:
    return (
        f"{row['client']:<17} {row['size']:>6} resources: {row['resources']:>6} in "
        f"{row['wall_s']:.2f} s, {row['requests']} requests, cpu {row['cpu_s']:.2f} s, "
        f"server {row['server_s']:.2f} s, peak RSS {row['maxrss_kib'] / 1024:.0f} MiB "
        f"(before {row['rss_before_kib'] / 1024:.0f} MiB), {row['outcome']}"
    )


def summarize(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Median of the repeats per (size, client)."""
    groups: dict[tuple[int, str], list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault((row["size"], row["client"]), []).append(row)
    out = []
    for (size, client), group in groups.items():
        wall = statistics.median(r["wall_s"] for r in group)
        med = {
            k: statistics.median(r[k] for r in group)
            for k in ("cpu_s", "server_s", "server_cpu_s", "maxrss_kib", "rss_before_kib")
        }
        first = group[0]
        out.append(
            {
                "size": size,
                "client": client,
                "runs": len(group),
                "resources": first["resources"],
                "requests": first["requests"],
                "wall_s": wall,
                "resources_per_s": first["resources"] / wall,
                "requests_per_s": first["requests"] / wall,
                **med,
                "wait_s": wall - med["cpu_s"],
                "resources_per_cpu_s": first["resources"] / med["cpu_s"],
                "outcome": Counter(r["outcome"] for r in group).most_common(1)[0][0],
            }
        )
    return out


def markdown(summary: list[dict[str, Any]], args: argparse.Namespace) -> str:
    uname = subprocess.run(["uname", "-a"], capture_output=True, text=True).stdout.strip()
    fleet = "fleet with `--fleet-linear-keys`" if args.fleet_linear_keys else "fleet as it is"
    lines = [
        f"## Sync of a huge patient: probe vs. fhirpy ({datetime.now(UTC):%Y-%m-%d})",
        "",
        f"Command: `.venv/bin/python bench/sync.py {' '.join(sys.argv[1:])}`".rstrip() + "  ",
        f"Machine: `{uname}`, nproc {os.cpu_count()}, Python {platform.python_version()}  ",
        f"Fleet in the bench process on 127.0.0.2 (one host; {fleet}), `_count={args.page_size}`, "
        f"median of {args.repeats} run(s) per row; each sync in a fresh child process.",
        "",
        "| resources | client | outcome | requests | wall s | resources/s | requests/s "
        "| client CPU s | resources/client CPU s | waiting s | server s | server CPU s "
        "| RSS before MiB | peak RSS MiB | growth MiB |",
        "|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for s in summary:
        lines.append(
            f"| {s['resources']:,} | {s['client']} | {s['outcome']} | {s['requests']} "
            f"| {s['wall_s']:.2f} | {s['resources_per_s']:,.0f} | {s['requests_per_s']:.1f} "
            f"| {s['cpu_s']:.2f} | {s['resources_per_cpu_s']:,.0f} | {s['wait_s']:.2f} "
            f"| {s['server_s']:.2f} "
            f"| {s['server_cpu_s']:.2f} | {s['rss_before_kib'] / 1024:.0f} "
            f"| {s['maxrss_kib'] / 1024:.0f} "
            f"| {(s['maxrss_kib'] - s['rss_before_kib']) / 1024:.0f} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--sizes", type=lambda s: [int(x) for x in s.split(",")], default=None)
    parser.add_argument("--page-size", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--clients", type=lambda s: s.split(","), default=list(CLIENTS))
    parser.add_argument("--no-fhirpy", action="store_true", help="skip the fhirpy comparison")
    parser.add_argument("--markdown", action="store_true", help="print a RESULTS.md section")
    parser.add_argument(
        "--fleet-linear-keys",
        action="store_true",
        help="patch the fleet's quadratic $everything key listing (measure the clients)",
    )
    parser.add_argument("--json-out", type=Path, help="write every run's figures here")
    parser.add_argument("--child", choices=CLIENTS, help=argparse.SUPPRESS)
    parser.add_argument("--base", help=argparse.SUPPRESS)
    parser.add_argument("--patient", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        if args.child == "fhirpy":
            out = child_fhirpy(args.base, args.patient, args.page_size)
        else:
            out = child_probe(args.base, args.patient, args.page_size, args.child == "probe")
        print(json.dumps(out))
        return
    args.sizes = args.sizes or [1_000, 10_000]
    import anyio

    rows = anyio.run(run_all, args)
    if args.json_out:
        args.json_out.write_text(json.dumps(rows, indent=1))
    summary = summarize(rows)
    if args.markdown:
        print(markdown(summary, args))
    else:
        for s in summary:
            print(json.dumps(s))


if __name__ == "__main__":
    main()
