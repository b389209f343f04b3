"""Benchmark: the fleet's CPU per request with uvicorn's HTTP parsers (h11, httptools).

Serves one fleet process (4 hosts, 60 exemplary payers, as bench/scale.py generates them) with
uvicorn's `http` set to each parser in turn, asks it for 4,000 documents (the CapabilityStatement
and the SMART configuration, 8 requests in flight, keep-alive), and prints the fleet process's
CPU per request (/proc/PID/stat). The fleet shares the two cores with the crawl in bench/scale.py,
so its cost per request is part of what two workers can reach there.

    .venv/bin/python bench/fleet_cost.py            # h11, httptools, h11, httptools

Loopback only.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import anyio
import httpx
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
import scale

REQUESTS_PER_CLIENT = 250  # x 2 documents x 8 clients = 4,000 requests


def serve(http: str, config_file: str, out: str) -> None:
    """The child: serve the fleet with uvicorn's `http` parser; write a base URL to `out`."""
    import probe.fleet.serve as fleet_serve
    from probe.fleet.app import Fleet
    from probe.fleet.config import load_fleet_config

    original = fleet_serve._uvicorn_config

    def with_parser(fleet: Fleet, address: str) -> object:
        config = original(fleet, address)
        config.http = http
        return config

    fleet_serve._uvicorn_config = with_parser  # type: ignore[assignment]
    config = load_fleet_config(Path(config_file))
    chosen, sockets = fleet_serve.bind_fleet(config, None)
    fleet = Fleet(config, port=chosen)
    base = fleet.directory("/dev/null").payers[0].endpoints[0].base_url
    Path(out).write_text(json.dumps(base))
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    stop = anyio.Event()
    anyio.run(fleet_serve.serve_forever, fleet, sockets, stop, None)


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def load(base: str) -> int:
    """Ask for the two documents from 8 clients at once; the number of requests made."""
    async with httpx.AsyncClient() as client:

        async def one() -> None:
            for _ in range(REQUESTS_PER_CLIENT):
                (await client.get(f"{base}/metadata")).read()
                (await client.get(f"{base}/.well-known/smart-configuration")).read()

        async with anyio.create_task_group() as tg:
            for _ in range(8):
                tg.start_soon(one)
    return 8 * REQUESTS_PER_CLIENT * 2


def main() -> None:
    """Measure each parser twice, alternating; print microseconds of fleet CPU per request."""
    if len(sys.argv) > 1 and sys.argv[1] == "--serve":
        serve(*sys.argv[2:5])
        return
    print(f"load average before: {os.getloadavg()[0]:.2f}")
    for http in ["h11", "httptools", "h11", "httptools"]:
        with tempfile.TemporaryDirectory() as workdir:
            config_file = Path(workdir, "fleet.yaml")
            config_file.write_text(yaml.safe_dump(scale.fleet_configs(60, 4, 0)[0]))
            out = Path(workdir, "base.json")
            child = subprocess.Popen(
                [sys.executable, __file__, "--serve", http, str(config_file), str(out)]
            )
            try:
                deadline = time.monotonic() + 60
                while not out.exists():
                    if child.poll() is not None or time.monotonic() > deadline:
                        raise SystemExit(f"the fleet did not start ({http})")
                    time.sleep(0.05)
                base = json.loads(out.read_text())
                before = cpu_s(child.pid)
                made = anyio.run(load, base)
                used = cpu_s(child.pid) - before
            finally:
                child.terminate()
                child.wait()
        print(f"{http:10} fleet CPU per request: {used / made * 1e6:.0f} us ({made} requests)")
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
