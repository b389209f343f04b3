"""Benchmark: sustained requests/s of one fleet process serving 1,000 payers on 16 loopback hosts.

The fleet runs as ``probe fleet serve`` in its own process (one event loop, one uvicorn server per
address). Load comes from separate client processes, each an httpx.AsyncClient with many
concurrent workers cycling through a request mix over all payers: CapabilityStatement, SMART
configuration, and (for payers with static bearer credentials) a Patient read, a Coverage search
and an EOB search page. Every run is bounded in time and sends traffic only to loopback.

    .venv/bin/python bench/fleet.py                    # 1,000 payers: 16 hosts, then 1 host
    .venv/bin/python bench/fleet.py --hosts 16 --duration 20 --clients 2 --concurrency 64
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import platform
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import anyio
import httpx
import yaml

# Archetypes that would measure sleeps, refused connections or resets rather than the server.
EXCLUDED = {"slow", "sandbox_only", "flaky", "huge_patient"}
REQUEST_TIMEOUT = 10.0


def _config(payers: int, hosts: int, seed: int) -> dict[str, Any]:
    from probe.fleet.config import DEFAULT_MIX

    mix = {str(k): v for k, v in DEFAULT_MIX.items() if str(k) not in EXCLUDED}
    return {
        "seed": seed,
        "hosts": hosts,
        "max_log_records": 10_000,
        "generate": {"count": payers, "mix": mix, "patients": 1},
    }


def _start_fleet(
    workdir: Path, payers: int, hosts: int, seed: int
) -> tuple[subprocess.Popen[bytes], Path]:
    config = workdir / f"fleet-{hosts}.yaml"
    config.write_text(yaml.safe_dump(_config(payers, hosts, seed)))
    directory = workdir / f"endpoints-{hosts}.yaml"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "probe.cli",
            "fleet",
            "serve",
            "--config",
            str(config),
            "--directory-out",
            str(directory),
            "--secrets-out",
            str(workdir / f"secrets-{hosts}.yaml"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    deadline = time.monotonic() + 120
    while not directory.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            _stop(process)
            raise SystemExit(
                f"fleet did not start: {process.stderr.read() if process.stderr else ''}"
            )
        time.sleep(0.1)
    return process, directory


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def _requests(directory_file: Path) -> list[tuple[str, dict[str, str]]]:
    """The request mix: (url, headers) over every reachable payer."""
    from probe.directory.schema import load_directory

    directory = load_directory(directory_file)
    assert directory.secrets_file is not None
    secrets = yaml.safe_load(Path(directory.secrets_file).read_text())
    out: list[tuple[str, dict[str, str]]] = []
    for payer in directory.payers:
        endpoint = payer.endpoints[0]
        base = endpoint.base_url
        out.append((base + "/metadata", {}))
        out.append((base + "/.well-known/smart-configuration", {}))
        creds = endpoint.credentials
        if creds is not None and creds.kind == "bearer" and creds.token.secret:
            headers = {"Authorization": "Bearer " + secrets[creds.token.secret]}
            patient = endpoint.test_patients[0].id
            out.append((f"{base}/Patient/{patient}", headers))
            out.append((f"{base}/Coverage?patient={patient}", headers))
            out.append((f"{base}/ExplanationOfBenefit?patient={patient}&_count=10", headers))
    return out


async def _raw_load(
    order: list[tuple[str, dict[str, str]]], concurrency: int, start_at: float, duration: float
) -> dict[str, Any]:
    """A minimal HTTP/1.1 keep-alive client on asyncio streams: far cheaper per request than
    httpx, so on a 2-core machine it measures the server rather than the client."""
    statuses: Counter[str] = Counter()
    latencies: list[float] = []
    prepared = []
    for url, headers in order:
        parts = urlsplit(url)
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        lines = [f"GET {target} HTTP/1.1", f"Host: {parts.netloc}", "User-Agent: bench"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        prepared.append(
            ((parts.hostname or "", parts.port or 80), ("\r\n".join(lines) + "\r\n\r\n").encode())
        )
    await asyncio.sleep(max(0.0, start_at - time.time()))
    stop_at = start_at + duration

    async def worker(offset: int) -> None:
        conns: dict[tuple[str, int], tuple[asyncio.StreamReader, asyncio.StreamWriter]] = {}
        i = offset
        while time.time() < stop_at:
            address, raw = prepared[i % len(prepared)]
            i += concurrency
            started = time.perf_counter()
            try:
                if address not in conns:
                    conns[address] = await asyncio.open_connection(*address)
                reader, writer = conns[address]
                writer.write(raw)
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), REQUEST_TIMEOUT)
                status = head[9:12].decode()
                length = 0
                close = False
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.lower() == b"content-length":
                        length = int(value)
                    elif name.lower() == b"connection" and b"close" in value.lower():
                        close = True
                if length:
                    await reader.readexactly(length)
                statuses[status] += 1
                if close:
                    writer.close()
                    del conns[address]
            except (TimeoutError, OSError, asyncio.IncompleteReadError) as exc:
                statuses[type(exc).__name__] += 1
                stale = conns.pop(address, None)
                if stale is not None:
                    stale[1].close()
            latencies.append(time.perf_counter() - started)
        for _, writer in conns.values():
            writer.close()

    await asyncio.gather(*(worker(w * 7919 % max(1, len(prepared))) for w in range(concurrency)))
    return {"statuses": dict(statuses), "latencies": latencies}


def _client_process(
    requests: list[tuple[str, dict[str, str]]],
    concurrency: int,
    start_at: float,
    duration: float,
    seed: int,
    results: Any,
    client_kind: str = "httpx",
) -> None:
    if client_kind == "raw":
        order = list(requests)
        random.Random(seed).shuffle(order)
        results.put(asyncio.run(_raw_load(order, concurrency, start_at, duration)))
        return

    async def run() -> dict[str, Any]:
        statuses: Counter[str] = Counter()
        latencies: list[float] = []
        rng = random.Random(seed)
        order = list(requests)
        rng.shuffle(order)
        await anyio.sleep(max(0.0, start_at - time.time()))
        stop_at = start_at + duration

        async def worker(offset: int) -> None:
            # One small client per worker: httpx's pool scans all its connections per request,
            # so one shared pool of hundreds of connections is far slower than the server.
            async with httpx.AsyncClient(timeout=REQUEST_TIMEOUT) as client:
                i = offset
                while time.time() < stop_at:
                    url, headers = order[i % len(order)]
                    i += concurrency
                    started = time.perf_counter()
                    try:
                        response = await client.get(url, headers=headers)
                        statuses[str(response.status_code)] += 1
                    except httpx.HTTPError as exc:
                        statuses[type(exc).__name__] += 1
                    latencies.append(time.perf_counter() - started)

        async with anyio.create_task_group() as tg:
            for w in range(concurrency):
                tg.start_soon(worker, w * 7919 % max(1, len(order)))
        return {"statuses": dict(statuses), "latencies": latencies}

    results.put(anyio.run(run))


def _rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def _fleet_stats(directory_file: Path) -> dict[str, Any]:
    from probe.directory.schema import load_directory

    base = load_directory(directory_file).payers[0].endpoints[0].base_url
    origin = base.split("/payers/", 1)[0]
    stats: dict[str, Any] = httpx.get(origin + "/_fleet/stats?all=1", timeout=10).json()
    return stats


def bench(
    payers: int,
    hosts: int,
    clients: int,
    concurrency: int,
    duration: float,
    seed: int,
    client_kind: str = "httpx",
) -> dict[str, Any]:
    """Serve `payers` on `hosts` addresses and load them for `duration` seconds."""
    with tempfile.TemporaryDirectory(prefix="probe-bench-fleet-") as tmp:
        started = time.monotonic()
        process, directory = _start_fleet(Path(tmp), payers, hosts, seed)
        startup_s = time.monotonic() - started
        try:
            requests = _requests(directory)
            context = multiprocessing.get_context("fork")
            results = context.Queue()
            start_at = time.time() + 1.0
            procs = [
                context.Process(
                    target=_client_process,
                    args=(
                        requests,
                        concurrency,
                        start_at,
                        duration,
                        seed + i,
                        results,
                        client_kind,
                    ),
                )
                for i in range(clients)
            ]
            for proc in procs:
                proc.start()
            gathered = [results.get(timeout=duration + 60) for _ in procs]
            for proc in procs:
                proc.join(timeout=10)
            stats = _fleet_stats(directory)
            rss = _rss_mb(process.pid)
        finally:
            _stop(process)
    statuses: Counter[str] = Counter()
    latencies: list[float] = []
    for part in gathered:
        statuses.update(part["statuses"])
        latencies.extend(part["latencies"])
    latencies.sort()
    done = sum(statuses.values())
    errors = sum(v for k, v in statuses.items() if not k.isdigit())
    per_host = [h["max_concurrent"] for h in stats["hosts"].values()]
    return {
        "client": client_kind,
        "payers": payers,
        "hosts": hosts,
        "clients": clients,
        "concurrency": concurrency,
        "duration_s": duration,
        "startup_s": round(startup_s, 2),
        "requests": done,
        "requests_per_s": round(done / duration, 1),
        "p50_ms": round(1000 * statistics.median(latencies), 1) if latencies else None,
        "p99_ms": round(1000 * latencies[int(len(latencies) * 0.99) - 1], 1) if latencies else None,
        "transport_errors": errors,
        "statuses": dict(sorted(statuses.items())),
        "hosts_seen": len(stats["hosts"]),
        "max_concurrent_per_host": max(per_host) if per_host else 0,
        "server_rss_mb": round(rss, 1),
    }


def main() -> None:
    """Run the benchmark (16 hosts, then the comparison host count) and print JSON lines."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--payers", type=int, default=1000)
    parser.add_argument("--hosts", type=int, default=16)
    parser.add_argument("--compare-hosts", type=int, default=1, help="0: no comparison run")
    parser.add_argument("--clients", type=int, default=2, help="client processes")
    parser.add_argument("--concurrency", type=int, default=64, help="workers per client process")
    parser.add_argument("--duration", type=float, default=15.0, help="seconds of load per run")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--client",
        choices=["httpx", "raw", "both"],
        default="both",
        help="load generator: httpx clients, a raw asyncio HTTP/1.1 client, or both",
    )
    options = parser.parse_args()
    print(
        json.dumps(
            {
                "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
                "machine": f"{platform.machine()} {os.cpu_count()} cores, {platform.platform()}",
                "python": platform.python_version(),
            }
        )
    )
    runs = [options.hosts] + ([options.compare_hosts] if options.compare_hosts else [])
    kinds = ["httpx", "raw"] if options.client == "both" else [options.client]
    for kind in kinds:
        for hosts in runs:
            result = bench(
                options.payers,
                hosts,
                options.clients,
                options.concurrency,
                options.duration,
                options.seed,
                kind,
            )
            print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
