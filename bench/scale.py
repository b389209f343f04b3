"""Benchmark: a Lantern-sized nightly crawl (issue 17): N endpoints over H loopback hosts.

Serves a generated directory of N endpoints spread evenly over H hosts, every answer delayed by
a fixed latency (the fleet's `slow` archetype, sigma 0; `--latency-ms 0`: plain exemplary
payers, the CPU-bound case), from K fleet processes (bench/scale_fleet.py, 60 hosts each on
127.0.(10+k).x, since `probe fleet serve` serves at most 64 hosts and the crawl's politeness
keys on the host name). Then crawls it with `probe run --no-sync --no-portal` (discovery: 3
requests per endpoint) with 1 and 2 workers (`--workers`), each into a fresh database.

For each crawl it reports: wall time, endpoints/s, CPU seconds per endpoint of the probe
processes (getrusage(RUSAGE_CHILDREN) around the run: the CLI and its worker processes), the
peak RSS of each probe process (VmHWM polled from /proc every 0.2 s, and ru_maxrss of the
largest one), the fleet processes' CPU over the crawl (from /proc/PID/stat) and its share of
the 2 cores, and the politeness lower bound

    bound = max over hosts h of max(r * e_h / rate, r * e_h * latency / per_host)

(e_h endpoints on host h, r requests per endpoint: r request starts each at `rate` per second
per host, and r requests each holding one of `per_host` slots for `latency` seconds; r is 3
discovery GETs plus the JWKS the fleet's SMART configuration names, measured from the store).
With more than one worker count, each repeat ends with the peer (`--no-peer` skips it): a
bare-httpx client (bench/crawl.py's ceiling: the same discovery GETs, no checks, no store, one
connection pool per host) run as one process over every host, then as two processes at once
over half the hosts each. Its 2 / 1 ratio is what this machine and the co-located fleet give an
embarrassingly parallel client at that moment; probe's ratio is printed beside it. Odd repeats
run each pair in reverse order (ABBA), so a machine whose speed drifts favours neither side.
With `--extrapolate N2` it also prints the model
time(N2) = max(bound(N2), N2 * cpu_per_endpoint / cores_used).

    .venv/bin/python bench/scale.py --endpoints 1000 --hosts 100 --workers 1,2
    .venv/bin/python bench/scale.py --endpoints 10000 --hosts 300 --workers 1,2
    .venv/bin/python bench/scale.py --endpoints 4000 --hosts 60 --latency-ms 0 --workers 1,2
    .venv/bin/python bench/scale.py --endpoints 2000 --hosts 60 --workers 1 \
        --profile /tmp/scale.prof          # cProfile of the single-worker crawl
    .venv/bin/python bench/scale.py ... --db postgres   # a fresh schema in the local test db

Each crawl's database is created at the schema's head first, untimed, as a nightly finds its
store (`--migrate-in-run`: the crawl migrates the empty database itself, as before 2026-12-07
08:30 UTC). Loopback only. Each crawl is stopped after `--cap` seconds (default 600) and marked
capped.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
HOSTS_PER_FLEET = 60
FIRST_SUBNET = 10
PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
CLK_TCK = os.sysconf("SC_CLK_TCK")


def split(total: int, parts: int) -> list[int]:
    """`total` split into `parts` near-equal integers (the larger ones first)."""
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


def fleet_configs(endpoints: int, hosts: int, latency_ms: float) -> list[dict[str, Any]]:
    """One config per fleet process: at most 60 hosts each, endpoints spread evenly on hosts."""
    fleets = math.ceil(hosts / HOSTS_PER_FLEET)
    host_counts = split(hosts, fleets)
    per_host = split(endpoints, hosts)  # endpoints on each host, in global host order
    archetypes: list[Any] = (
        [{"slow": {"median_ms": latency_ms, "sigma": 0}}] if latency_ms > 0 else ["exemplary"]
    )
    configs = []
    first = 0
    for k, count in enumerate(host_counts):
        payers = []
        for h in range(count):
            for j in range(per_host[first + h]):
                payers.append(
                    {
                        "slug": f"s{k}-h{h:02d}-{j:04d}",
                        "archetypes": archetypes,
                        "patients": 1,
                        "host": h,
                    }
                )
        configs.append({"seed": 7 + k, "hosts": count, "log_headers": False, "payers": payers})
        first += count
    return configs


def host_endpoints(endpoints: int, hosts: int) -> list[int]:
    """Endpoints on each host (what the fleet configs place)."""
    return split(endpoints, hosts)


def politeness_bound(
    per_host: list[int], latency_s: float, rate: float, slots: int, requests: float = 3
) -> float:
    """max over hosts of max(r e / rate, r e latency / per_host): the crawl cannot be faster.

    `requests` (r) is the requests per endpoint: 3 discovery GETs, 4 when the SMART
    configuration names a JWKS that probe fetches too (the fleet's payers do).
    """
    return max(max(requests * e / rate, requests * e * latency_s / slots) for e in per_host)


@contextmanager
def serve_fleets(
    endpoints: int, hosts: int, latency_ms: float, workdir: Path, record: bool = False
) -> Iterator[tuple[Path, list[int]]]:
    """Start the fleet processes; yields the merged directory file and the fleets' pids.

    `record`: each keeps its answers and writes them to workdir/fleet-K.pickle when stopped
    (bench/replay_fleet.py serves them again).
    """
    configs = fleet_configs(endpoints, hosts, latency_ms)
    processes: list[subprocess.Popen[bytes]] = []
    outs: list[Path] = []
    try:
        for k, config in enumerate(configs):
            config_file = workdir / f"fleet-{k}.yaml"
            config_file.write_text(yaml.safe_dump(config))
            out = workdir / f"endpoints-{k}.yaml"
            outs.append(out)
            processes.append(
                subprocess.Popen(
                    [
                        PYTHON,
                        str(ROOT / "bench" / "scale_fleet.py"),
                        "--config",
                        str(config_file),
                        "--subnet",
                        str(FIRST_SUBNET + k),
                        "--directory-out",
                        str(out),
                        *(["--record", str(workdir / f"fleet-{k}.pickle")] if record else []),
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.PIPE,
                    start_new_session=True,
                )
            )
        deadline = time.monotonic() + 300
        while not all(o.exists() for o in outs):
            for p in processes:
                if p.poll() is not None:
                    err = p.communicate()[1].decode(errors="replace")
                    raise RuntimeError(f"a fleet process did not start: {err[-2000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError("the fleet processes did not start within 300 s")
            time.sleep(0.1)
        yield merge_directories(outs, workdir), [p.pid for p in processes]
    finally:
        for p in processes:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in processes:
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


@contextmanager
def replay_fleets(fleet_pids: list[int], workdir: Path) -> Iterator[tuple[list[int], list[Path]]]:
    """Stop the recording fleet processes and serve their answers again from
    bench/replay_fleet.py on the same addresses and port; yields the replay processes' pids and
    the files their 404 counts are written to when they stop."""
    for pid in fleet_pids:
        os.kill(pid, signal.SIGTERM)
    recordings = [workdir / f"fleet-{k}.pickle" for k in range(len(fleet_pids))]
    deadline = time.monotonic() + 120
    while not all(r.exists() for r in recordings):
        if time.monotonic() > deadline:
            raise RuntimeError("the fleet processes did not write their recordings")
        time.sleep(0.1)
    processes: list[subprocess.Popen[bytes]] = []
    misses = [workdir / f"replay-{k}.misses.json" for k in range(len(recordings))]
    try:
        for recording, out in zip(recordings, misses, strict=True):
            process = subprocess.Popen(
                [PYTHON, str(ROOT / "bench" / "replay_fleet.py"), "--recording", str(recording),
                 "--misses-out", str(out)],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
            )  # fmt: skip
            processes.append(process)
            assert process.stdout is not None
            if process.stdout.readline().strip() != b"ready":
                raise RuntimeError(f"a replay did not start: {process.communicate()[1][-2000:]!r}")
        yield [p.pid for p in processes], misses
    finally:
        for p in processes:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in processes:
            p.wait(timeout=30)


def merge_directories(outs: list[Path], workdir: Path) -> Path:
    """One directory file (and one secrets file) listing every fleet process's payers."""
    payers: list[Any] = []
    secrets: dict[str, Any] = {}
    for out in outs:
        data = yaml.load(out.read_text(), Loader=yaml.CSafeLoader)
        payers.extend(data["payers"])
        secrets_file = data.get("secrets_file")
        if secrets_file:
            secrets.update(yaml.load(Path(secrets_file).read_text(), Loader=yaml.CSafeLoader))
    secrets_path = workdir / "endpoints.secrets.yaml"
    fd = os.open(secrets_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        yaml.dump(secrets, handle, Dumper=yaml.CSafeDumper)
    merged = workdir / "endpoints.yaml"
    text = yaml.dump(
        {"secrets_file": str(secrets_path), "payers": payers},
        Dumper=yaml.CSafeDumper,
        sort_keys=False,
        width=1000,
    )
    merged.write_text(text)
    return merged


def proc_cpu_s(pid: int) -> float:
    """utime + stime of a live process, in seconds (0 when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def machine_busy_s() -> float:
    """CPU seconds the whole machine has spent busy (all cores, from /proc/stat)."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    values = [int(x) for x in fields]
    idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
    return (sum(values[:8]) - idle) / CLK_TCK


def descendants(root: int) -> list[int]:
    """`root` and every process below it (from /proc/PID/task/*/children)."""
    found = [root]
    i = 0
    while i < len(found):
        pid = found[i]
        i += 1
        try:
            for task in os.listdir(f"/proc/{pid}/task"):
                text = Path(f"/proc/{pid}/task/{task}/children").read_text()
                found.extend(int(c) for c in text.split())
        except OSError:
            continue
    return found


def vm_hwm_mib(pid: int) -> float | None:
    """The process's peak RSS so far (VmHWM), MiB."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def database_url(kind: str, workdir: Path, label: str) -> tuple[str, str | None]:
    """A fresh database: a SQLite file in `workdir`, or a new PostgreSQL schema (its name)."""
    if kind == "sqlite":
        return f"sqlite:///{workdir / f'{label}.db'}", None
    from sqlalchemy import create_engine, text

    schema = f"bench_scale_{label}_{os.getpid()}".replace("-", "_")
    engine = create_engine(PG_URL)
    with engine.begin() as conn:
        conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    engine.dispose()
    return f"{PG_URL}?options=-csearch_path%3D{schema}", schema


def drop_schema(schema: str | None) -> None:
    """Drop a schema made by :func:`database_url`."""
    if schema is None:
        return
    from sqlalchemy import create_engine, text

    engine = create_engine(PG_URL)
    with engine.begin() as conn:
        conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    engine.dispose()


def stored(url: str) -> dict[str, Any]:
    """The newest run in the store: status, targets by status, requests by status code."""
    from sqlalchemy import create_engine, func, select

    from probe.store.tables import HttpRequestRow, ProbeRunRow, RunTargetRow

    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            run = conn.execute(
                select(ProbeRunRow.id, ProbeRunRow.status).order_by(ProbeRunRow.id.desc())
            ).first()
            if run is None:
                return {"run": None}
            targets = conn.execute(
                select(RunTargetRow.status, func.count())
                .where(RunTargetRow.run_id == run[0])
                .group_by(RunTargetRow.status)
            ).all()
            requests = conn.execute(
                select(HttpRequestRow.step, HttpRequestRow.status, func.count())
                .where(HttpRequestRow.run_id == run[0])
                .group_by(HttpRequestRow.step, HttpRequestRow.status)
            ).all()
            latency = conn.execute(
                select(
                    func.avg(HttpRequestRow.latency_ms), func.max(HttpRequestRow.latency_ms)
                ).where(HttpRequestRow.run_id == run[0])
            ).one()
    finally:
        engine.dispose()
    return {
        "run": int(run[0]),
        "status": str(run[1]),
        "targets": {str(s): int(n) for s, n in targets},
        "requests": {f"{step} {s}": int(n) for step, s, n in requests},
        "latency_ms_avg_max": [round(float(x or 0), 1) for x in latency],
    }


def crawl(
    directory: Path,
    fleet_pids: list[int],
    workdir: Path,
    settings: dict[str, Any],
    workers: int,
    label: str,
) -> dict[str, Any]:
    """One `probe run` in a fresh database; its figures."""
    url, schema = database_url(settings["db"], workdir, label)
    args = [
        "run", str(directory), "--db", url, "--no-sync", "--no-portal",
        "--workers", str(workers),
        *(["--concurrency", str(settings["concurrency"])] if settings["concurrency"] else []),
        "--per-host", str(settings["per_host"]),
        "--rate", str(settings["rate"]),
        "--total-requests", str(settings["total_requests"]),
        "--timeout", "60",
    ]  # fmt: skip
    if settings.get("profile"):
        command = [PYTHON, __file__, "--profile-child", settings["profile"], *args]
    else:
        command = [PYTHON, "-m", "probe.cli", *args]
    log = workdir / f"{label}.log"
    if not settings.get("migrate_in_run"):
        # As a nightly finds it: the store exists at head (not timed). Without this the crawl
        # also runs every migration on the empty database (~0.3 s, before any claim).
        subprocess.run(
            [PYTHON, "-m", "probe.cli", "db", "upgrade", "--db", url],
            check=True,
            capture_output=True,
            cwd=workdir,
        )
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    fleet_before = sum(proc_cpu_s(p) for p in fleet_pids)
    machine_before = machine_busy_s()
    peaks: dict[int, float] = {}
    cpu_seen: dict[int, float] = {}  # last utime+stime of each probe process (killed ones too)
    capped = False
    samples: list[tuple[float, float]] = []  # (seconds since start, probe CPU seconds so far)
    t0 = time.perf_counter()
    with log.open("wb") as sink:
        process = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT, cwd=workdir)
        while process.poll() is None:
            for pid in descendants(process.pid):
                hwm = vm_hwm_mib(pid)
                if hwm is not None:
                    peaks[pid] = max(peaks.get(pid, 0.0), hwm)
                    cpu_seen[pid] = max(cpu_seen.get(pid, 0.0), proc_cpu_s(pid))
            samples.append((time.perf_counter() - t0, sum(cpu_seen.values())))
            if time.perf_counter() - t0 > settings["cap"]:
                capped = True
                process.send_signal(signal.SIGINT)
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    for pid in descendants(process.pid):
                        os.kill(pid, signal.SIGKILL)
                break
            time.sleep(0.2)
        process.wait()
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    fleet_cpu = sum(proc_cpu_s(p) for p in fleet_pids) - fleet_before
    machine = machine_busy_s() - machine_before
    # getrusage counts reaped processes only: a worker orphaned by a kill is polled instead.
    cpu = max(
        (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime),
        sum(cpu_seen.values()),
    )
    store = stored(url)
    drop_schema(schema)
    if settings.get("keep") and schema is None:
        shutil.copy(workdir / f"{label}.db", Path(settings["keep"]) / f"{label}.db")
    done = store.get("targets", {}).get("done", 0)
    tail = log.read_text(errors="replace").strip().splitlines()[-3:]
    return {
        "label": label,
        "workers": workers,
        "exit": process.returncode,
        "capped": capped,
        "wall_s": wall,
        "done": done,
        "endpoints_per_s": done / wall,
        "probe_cpu_s": cpu,
        "cpu_ms_per_endpoint": 1000 * cpu / max(done, 1),
        "probe_cores": cpu / wall,
        "peak_rss_mib": sorted((round(v) for v in peaks.values()), reverse=True),
        "ru_maxrss_mib": round(after.ru_maxrss / 1024),
        "fleet_cpu_s": fleet_cpu,
        "fleet_cores": fleet_cpu / wall,
        "others_cores": max(0.0, machine - cpu - fleet_cpu) / wall,
        "store": store,
        "log_tail": tail,
        "timeline": timeline(samples, wall, cpu),
    }


def timeline(samples: list[tuple[float, float]], wall: float, cpu: float) -> list[float]:
    """Probe's cores in use over each tenth of the crawl's wall time (from the polls)."""
    points = [(0.0, 0.0), *samples, (wall, cpu)]
    out = []
    for i in range(10):
        lo, hi = wall * i / 10, wall * (i + 1) / 10
        before = max((p for p in points if p[0] <= lo), key=lambda p: p[0])
        after = min((p for p in points if p[0] >= hi), key=lambda p: p[0])
        out.append(round((after[1] - before[1]) / max(after[0] - before[0], 1e-9), 2))
    return out


def host_shares(directory: Path, parts: int, workdir: Path) -> list[Path]:
    """The directory split into `parts` files by host (whole hosts, balanced by endpoints)."""
    data = yaml.load(directory.read_text(), Loader=yaml.CSafeLoader)
    by_host: dict[str, list[Any]] = {}
    for payer in data["payers"]:
        host = urlsplit(payer["endpoints"][0]["base_url"]).hostname or ""
        by_host.setdefault(host, []).append(payer)
    shares: list[list[Any]] = [[] for _ in range(parts)]
    for host in sorted(by_host, key=lambda h: -len(by_host[h])):
        min(shares, key=len).extend(by_host[host])
    files = []
    for i, share in enumerate(shares):
        out = workdir / f"share{i}-of-{parts}.yaml"
        out.write_text(yaml.dump({"payers": share}, Dumper=yaml.CSafeDumper, width=1000))
        files.append(out)
    return files


def peer_crawl(
    shares: list[Path],
    fleet_pids: list[int],
    settings: dict[str, Any],
    label: str,
) -> dict[str, Any]:
    """The peer beside probe: one process of a bare-httpx client per directory in `shares`, at
    once (bench/crawl.py's ceiling: the same discovery GETs, no checks, no store, no
    politeness), each on its share of the hosts. What the machine and the co-located fleet give
    an embarrassingly parallel client going from one process to two: the ceiling of probe's own
    2 / 1 ratio on this machine, now.
    """
    child = {
        "concurrency": settings["concurrency"] or 64,
        "total_requests": settings["total_requests"],
        "per_host_pools": settings["per_host"],
    }
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    fleet_before = sum(proc_cpu_s(p) for p in fleet_pids)
    t0 = time.perf_counter()
    command = [PYTHON, str(ROOT / "bench" / "crawl.py"), "--ceiling-child"]
    processes = [
        subprocess.Popen(
            [*command, str(share), "-", "0", json.dumps(child)],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        for share in shares
    ]
    outs = []
    for process in processes:
        out = process.communicate(timeout=settings["cap"])[0].decode()
        outs.append(json.loads(out.splitlines()[-1]))
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    fleet_cpu = sum(proc_cpu_s(p) for p in fleet_pids) - fleet_before
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    done = sum(int(o["endpoints"]) for o in outs)
    return {
        "label": label,
        "clients": len(shares),
        "wall_s": wall,
        "done": done,
        "requests": sum(int(o["requests"]) for o in outs),
        "endpoints_per_s": done / wall,
        "cpu_ms_per_endpoint": 1000 * cpu / max(done, 1),
        "client_cores": cpu / wall,
        "fleet_cores": fleet_cpu / wall,
    }


def profile_child(out: str, args: list[str]) -> None:
    """In the crawling process: `probe ARGS` under cProfile, the stats written to `out`.

    `python -m cProfile` writes nothing here: `probe run` ends with ``os._exit`` once its
    summary is printed (probe/cli/quick_exit.py), so the stats are dumped on the way out.
    """
    import cProfile

    profiler = cProfile.Profile()
    real_exit = os._exit

    def dump_then_exit(code: int) -> None:
        profiler.disable()
        profiler.dump_stats(out)
        real_exit(code)

    os._exit = dump_then_exit  # type: ignore[assignment]
    sys.argv = ["probe", *args]
    from probe.cli.app import main as probe_main

    profiler.enable()
    try:
        probe_main()
    finally:
        profiler.disable()
        profiler.dump_stats(out)


def loadavg() -> str:
    """The 1/5/15-minute load averages."""
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> None:
    """Parse options, serve the fleet, run the crawls, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--endpoints", type=int, default=1000)
    parser.add_argument("--hosts", type=int, default=100)
    parser.add_argument("--latency-ms", type=float, default=200.0)
    parser.add_argument("--workers", default="1,2", help="comma-separated worker counts")
    parser.add_argument("--repeats", type=int, default=1, help="crawls per worker count")
    parser.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument(
        "--concurrency",
        type=int,
        default=64,
        help="endpoints in flight per worker; 0: leave it to probe (hosts x --per-host)",
    )
    parser.add_argument("--per-host", type=int, default=2)
    parser.add_argument("--rate", type=float, default=5.0)
    parser.add_argument("--total-requests", type=int, default=256)
    parser.add_argument("--cap", type=float, default=600.0, help="seconds per crawl at most")
    parser.add_argument("--profile", help="cProfile the (single-worker) crawl into this file")
    parser.add_argument("--extrapolate", type=int, default=29_400, help="model time at N")
    parser.add_argument("--extrapolate-hosts", type=int, default=300)
    parser.add_argument("--keep", help="copy each crawl's SQLite database into this directory")
    parser.add_argument(
        "--migrate-in-run",
        action="store_true",
        help="time the migration of the empty database too (before: `probe db upgrade` first)",
    )
    parser.add_argument(
        "--replay",
        action="store_true",
        help="record the fleet's answers in one untimed crawl, then serve them again from "
        "bench/replay_fleet.py (a fraction of the fleet's CPU) for the timed crawls",
    )
    parser.add_argument(
        "--no-peer",
        action="store_true",
        help="skip the peer (bare-httpx processes, 1 and 2 at once) after each repeat's crawls",
    )
    parser.add_argument(
        "--no-bytecode",
        action="store_true",
        help="leave probe's bytecode as it is (by default it is compiled first when "
        "PYTHONDONTWRITEBYTECODE is set: every process would compile probe's source again)",
    )
    parser.add_argument("--json", action="store_true", help="JSON lines instead of markdown")
    if len(sys.argv) > 2 and sys.argv[1] == "--profile-child":
        profile_child(sys.argv[2], sys.argv[3:])
        return
    args = parser.parse_args()
    workers = [int(w) for w in args.workers.split(",")]
    if args.replay and args.latency_ms > 0:
        parser.error("--replay serves without delay: use it with --latency-ms 0")
    settings = {
        "db": args.db,
        "concurrency": args.concurrency,
        "per_host": args.per_host,
        "rate": args.rate,
        "total_requests": args.total_requests,
        "cap": args.cap,
        "profile": str(Path(args.profile).resolve()) if args.profile else None,
        "keep": str(Path(args.keep).resolve()) if args.keep else None,
        "migrate_in_run": args.migrate_in_run,
    }
    latency = args.latency_ms / 1000
    spread = host_endpoints(args.endpoints, args.hosts)
    if os.environ.get("PYTHONDONTWRITEBYTECODE") and not args.no_bytecode:
        # As an installed package (pip compiles it) or any run on a machine that writes
        # bytecode has it: without, each worker compiles probe's modules at start (~0.4 s).
        subprocess.run([PYTHON, "-m", "compileall", "-q", str(ROOT / "probe")], check=True)
        if not args.json:
            print("- bytecode: probe's modules compiled before the crawls (--no-bytecode: not)")
    load_before = loadavg()
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    rows: list[dict[str, Any]] = []
    peers: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="probe-bench-scale-") as tmp:
        workdir = Path(tmp)
        t0 = time.perf_counter()
        with contextlib.ExitStack() as stack:
            d, pids = stack.enter_context(
                serve_fleets(args.endpoints, args.hosts, args.latency_ms, workdir, args.replay)
            )
            fleet_start = time.perf_counter() - t0
            misses: list[Path] = []
            shares: dict[int, list[Path]] = {}  # the peer's directories, by process count
            if args.replay:
                warm = crawl(d, pids, workdir, settings, 1, "record")
                print(f"- recording crawl: {json.dumps(warm['store'])}", flush=True)
                recorded = warm["store"]
                pids, misses = stack.enter_context(replay_fleets(pids, workdir))
            for r in range(args.repeats):
                # ABBA: odd repeats run the counts in reverse, so a machine whose speed drifts
                # during the series does not favour one side of every pair.
                for w in workers if r % 2 == 0 else workers[::-1]:
                    label = f"n{args.endpoints}-w{w}-r{r}"
                    row = crawl(d, pids, workdir, settings, w, label)
                    row["repeat"] = r
                    sent = sum(row["store"].get("requests", {}).values())
                    row["requests_per_endpoint"] = sent / max(row["done"], 1)
                    row["bound_s"] = politeness_bound(
                        spread, latency, args.rate, args.per_host, row["requests_per_endpoint"]
                    )
                    rows.append(row)
                    if args.json:
                        print(json.dumps(row), flush=True)
                if not args.no_peer and len(workers) > 1:
                    if not shares:
                        shares = {1: [d], max(workers): host_shares(d, max(workers), workdir)}
                    for c in (1, max(workers)) if r % 2 == 0 else (max(workers), 1):
                        peer = peer_crawl(shares[c], pids, settings, f"peer-c{c}-r{r}")
                        peer["repeat"] = r
                        peers.append(peer)
                        if args.json:
                            print(json.dumps(peer), flush=True)
            fleet_rss = [round(vm_hwm_mib(p) or 0) for p in pids]
        if args.replay:
            missed = sum(json.loads(m.read_text())["misses"] for m in misses)
            same = all(row["store"]["requests"] == recorded["requests"] for row in rows)
            print(
                f"- replay: {missed} requests not in the recording (404); every crawl's "
                f"requests by status {'equal' if same else 'DIFFER from'} the recording crawl's",
                flush=True,
            )
    load_after = loadavg()
    if args.json:
        return
    report(args, rows, started, load_before, load_after, fleet_start, fleet_rss)
    report_peer(rows, peers)


def report(
    args: argparse.Namespace,
    rows: list[dict[str, Any]],
    started: str,
    load_before: str,
    load_after: str,
    fleet_start: float,
    fleet_rss: list[int],
) -> None:
    """The figures as markdown for bench/RESULTS.md, with the bound and the model shown."""
    latency = args.latency_ms / 1000
    rpe = rows[0]["requests_per_endpoint"] if rows else 3.0
    spread = host_endpoints(args.endpoints, args.hosts)
    bound3 = politeness_bound(spread, latency, args.rate, args.per_host)
    print(f"- date: {started} (ended {time.strftime('%H:%M UTC', time.gmtime())})")
    print(f"- machine: {platform.platform()}, {os.cpu_count()} CPUs, Python "
          f"{platform.python_version()}")  # fmt: skip
    print(f"- load average (1/5/15 min) before: {load_before}; after: {load_after}")
    print(f"- command: `.venv/bin/python bench/scale.py {' '.join(sys.argv[1:])}`")
    print(
        f"- fleet: {args.endpoints} endpoints on {args.hosts} hosts from "
        f"{math.ceil(args.hosts / HOSTS_PER_FLEET)} processes, {args.latency_ms:g} ms per answer; "
        f"started in {fleet_start:.1f} s; fleet peak RSS MiB {fleet_rss}"
    )
    print(
        f"- politeness bound: max_h max(r e_h / rate, r e_h x latency / per_host) = "
        f"max(r x {math.ceil(args.endpoints / args.hosts)} / {args.rate:g}, "
        f"r x {math.ceil(args.endpoints / args.hosts)} x {latency:g} / {args.per_host}) with r "
        f"= {rpe:.2f} requests per endpoint measured (r = 3: "
        f"{bound3:.1f} s)\n"
    )
    print(
        "| workers | done | wall s | endpoints/s | bound s | wall/bound | probe CPU s "
        "| CPU ms/endpoint | probe cores | fleet cores | others' cores | peak RSS MiB per process "
        "| exit |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|")
    for r in rows:
        cells = [
            r["workers"],
            r["done"],
            f"{r['wall_s']:.1f}",
            f"{r['endpoints_per_s']:.1f}",
            f"{r['bound_s']:.1f}",
            f"{r['wall_s'] / r['bound_s']:.2f}x" if r["bound_s"] else "",
            f"{r['probe_cpu_s']:.1f}",
            f"{r['cpu_ms_per_endpoint']:.1f}",
            f"{r['probe_cores']:.2f}",
            f"{r['fleet_cores']:.2f}",
            f"{r['others_cores']:.2f}",
            ", ".join(str(x) for x in r["peak_rss_mib"]),
            f"{r['exit']}{' (capped)' if r['capped'] else ''}"
            + ("" if r["done"] == args.endpoints else f" ({args.endpoints - r['done']} not done)"),
        ]
        print("| " + " | ".join(str(c) for c in cells) + " |")
    for r in rows:
        print(f"\n- {r['label']}: store {json.dumps(r['store'])}")
        print(f"  probe cores by tenth of the wall time: {r['timeline']}")
    n2, h2 = args.extrapolate, args.extrapolate_hosts
    bound2 = politeness_bound(host_endpoints(n2, h2), latency, args.rate, args.per_host, rpe)
    for r in rows:
        probe_ms = r["probe_cpu_s"] / max(r["done"], 1)
        fleet_share = r["fleet_cpu_s"] / max(r["done"], 1)
        cpu_time = n2 * (probe_ms + fleet_share) / 2.0
        single = n2 * probe_ms  # one worker is one event loop: one core at most
        model = max(bound2, cpu_time if r["workers"] > 1 else max(single, cpu_time))
        print(
            f"- model at N={n2}, H={h2} from {r['label']}: bound {bound2:.1f} s; CPU "
            f"{n2} x ({1000 * probe_ms:.1f} ms probe + {1000 * fleet_share:.1f} ms fleet) "
            f"/ 2 cores = {cpu_time:.0f} s"
            + (f"; one worker is one event loop: >= {single:.0f} s" if r["workers"] == 1 else "")
            + f"; time ~ max = {model:.0f} s ({model / 60:.1f} min, "
            f"{model / bound2:.2f}x the bound)"
        )


def report_peer(rows: list[dict[str, Any]], peers: list[dict[str, Any]]) -> None:
    """The peer's crawls, and each repeat's 2 / 1 ratio of probe beside the peer's."""
    if not peers:
        return
    print("\nPeer: bare-httpx processes at once, each on its share of the hosts (bench/crawl.py's")
    print("ceiling client), right after each repeat's probe crawls:\n")
    print("| peer | clients | done | wall s | endpoints/s | CPU ms/endpoint | client cores "
          "| fleet cores |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for p in peers:
        print(
            f"| {p['label']} | {p['clients']} | {p['done']} | {p['wall_s']:.1f} "
            f"| {p['endpoints_per_s']:.1f} | {p['cpu_ms_per_endpoint']:.1f} "
            f"| {p['client_cores']:.2f} | {p['fleet_cores']:.2f} |"
        )
    print()
    for ratio in pair_ratios(rows, peers):
        print(
            f"- repeat {ratio['repeat']}: probe {ratio['probe']:.2f}x, peer {ratio['peer']:.2f}x, "
            f"probe / peer {ratio['probe'] / ratio['peer']:.2f}"
        )


def pair_ratios(rows: list[dict[str, Any]], peers: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per repeat: probe's wall(1 worker) / wall(most workers), and the peer's the same way."""
    out = []
    for r in sorted({row["repeat"] for row in rows}):
        mine = [row for row in rows if row["repeat"] == r]
        theirs = [p for p in peers if p["repeat"] == r]
        if len(mine) < 2 or len(theirs) < 2:
            continue
        one = min(mine, key=lambda row: row["workers"])
        most = max(mine, key=lambda row: row["workers"])
        p_one = min(theirs, key=lambda p: p["clients"])
        p_most = max(theirs, key=lambda p: p["clients"])
        out.append(
            {
                "repeat": r,
                "probe": one["wall_s"] / most["wall_s"],
                "peer": p_one["wall_s"] / p_most["wall_s"],
            }
        )
    return out


if __name__ == "__main__":
    main()
