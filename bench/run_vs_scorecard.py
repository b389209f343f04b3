"""Benchmark: `probe run --no-sync` with its defaults beside fhir-scorecard 0.3.0, over HTTPS.

100 fleet payers on 16 loopback hosts, every one of the `slow` archetype (each answer delayed by
a log-normal latency, median 150 ms, sigma 0.2: a real payer's latency), served by `probe fleet
serve`. In front of each host sits a TLS terminator this bench runs (asyncio, one thread): a
certificate for the hosts' IP addresses signed by a private CA made here, TCP_NODELAY on both
sides (without it Nagle's algorithm and delayed ACKs add ~40 ms to every answer). The directory
is rewritten to the https:// base and portal URLs. Then, alternating run by run:

- `probe run DIRECTORY --no-sync --ca-bundle CA --db sqlite:///...` with nothing else: the
  defaults (discovery: CapabilityStatement, SMART configuration, anonymous search, the JWKS;
  the developer portal), into a store already at head (`probe db upgrade`, untimed: a nightly
  crawl's store exists), a new one each run;
- the same into a fresh SQLite file (migrated inside the timed run: a first run);
- the same with the previous default rate (`--rate 5`) for comparison;
- `fhir-scorecard check --registry REGISTRY` (0.3.0, registry mode, Python 3.12 in its own
  virtualenv; CapabilityStatement and SMART configuration per endpoint, one after another),
  trusting the private CA through SSL_CERT_FILE.

probe's own modules are byte-compiled first (`compileall`, as `pip install` does; this
machine's PYTHONDONTWRITEBYTECODE would otherwise recompile 77 modules every run), as
fhir-scorecard's are in its virtualenv.

Endpoints per second = endpoints / wall time of the whole process; medians.

Then, unless `--no-throttle`, one more `probe run` with its defaults (plain HTTP) against the
same fleet where every payer on host 0 shares one limiter of 10 requests per 3 s (the State of
the Payer report's payer before it raised its limit; fleet archetype `rate_limited` with
`limit`, answering 429 with Retry-After): the requests per second host 0 saw before its first
429 and after, second by second, from the fleet's own request log, beside another host's.

    .venv/bin/python bench/run_vs_scorecard.py --runs 3
    .venv/bin/python bench/run_vs_scorecard.py --scorecard-venv /path/to/venv
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import ipaddress
import json
import os
import platform
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from probe.fleet.process import fleet_subprocess

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
SCORECARD_VERSION = "0.3.0"
SCORECARD_VENV = ROOT / ".cache" / "scorecard-venv"
PY312_CANDIDATES = [
    Path("/root/.pyenv/versions/3.12.1/bin/python"),
    Path("/usr/bin/python3.12"),
    Path("/usr/local/bin/python3.12"),
]


#: The throttling host's limit: 10 requests per 3 s, shared by every payer on it.
THROTTLE_LIMIT, THROTTLE_WINDOW_S = 10, 3.0


def fleet_config(
    payers: int, median_ms: float, *, throttle_hosts: int | None = None
) -> dict[str, Any]:
    """Every payer `slow`: each answer delayed around `median_ms`. With `throttle_hosts` (the
    fleet's host count), the payers on host 0 also share one 10-per-3-s limiter."""
    out: list[dict[str, Any]] = []
    for i in range(payers):
        archetypes: list[Any] = [{"slow": {"median_ms": median_ms, "sigma": 0.2}}]
        payer: dict[str, Any] = {
            "slug": f"slow-{i:03d}",
            "name": f"Slow Payer {i:03d}",
            "archetypes": archetypes,
            "patients": 1,
        }
        if throttle_hosts and i % throttle_hosts == 0:
            limited = {"limit": THROTTLE_LIMIT, "window_s": THROTTLE_WINDOW_S, "bucket": "host0"}
            archetypes.append({"rate_limited": limited})
            payer["host"] = 0
        out.append(payer)
    return {"seed": 16, "payers": out}


# -- private CA and the TLS terminator ------------------------------------------------------


def make_ca(directory: Path, ips: list[str]) -> tuple[Path, Path, Path]:
    """A private CA and a leaf certificate for `ips` it signed: (CA file, cert, key)."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "probe bench private CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fleet")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(i)) for i in ips]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    ca_file, cert_file, key_file = (
        directory / "ca.pem",
        directory / "cert.pem",
        directory / "key.pem",
    )
    ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_file.write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return ca_file, cert_file, key_file


def _nodelay(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        with contextlib.suppress(ConnectionError, OSError):
            writer.close()


class TlsTerminator:
    """TLS on `listen_port` of each host, forwarded in the clear to `upstream_port`."""

    def __init__(
        self, hosts: list[str], listen_port: int, upstream_port: int, cert: Path, key: Path
    ) -> None:
        self.hosts = hosts
        self.listen_port = listen_port
        self.upstream_port = upstream_port
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.context.load_cert_chain(cert, key)
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self._serve())
        self.ready.set()
        self.loop.run_forever()

    async def _serve(self) -> None:
        for host in self.hosts:

            async def handle(
                reader: asyncio.StreamReader, writer: asyncio.StreamWriter, host: str = host
            ) -> None:
                _nodelay(writer)
                try:
                    up_reader, up_writer = await asyncio.open_connection(host, self.upstream_port)
                except OSError:
                    writer.close()
                    return
                _nodelay(up_writer)
                await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))

            await asyncio.start_server(
                handle, host, self.listen_port, ssl=self.context, backlog=512
            )

    def start(self) -> None:
        """Listen on every host (returns when they all listen)."""
        self.thread.start()
        if not self.ready.wait(30):
            raise RuntimeError("the TLS terminator did not start")


def _free_port(hosts: list[str]) -> int:
    for _ in range(50):
        with socket.socket() as probe_sock:
            probe_sock.bind((hosts[0], 0))
            port: int = probe_sock.getsockname()[1]
        free = True
        for host in hosts:
            with socket.socket() as sock:
                try:
                    sock.bind((host, port))
                except OSError:
                    free = False
                    break
        if free:
            return port
    raise RuntimeError("no port free on every host")


def _https(url: str, port: int) -> str:
    parts = urlsplit(url)
    return urlunsplit(("https", f"{parts.hostname}:{port}", parts.path, parts.query, ""))


# -- the clients ---------------------------------------------------------------------------


def scorecard_bin(venv: Path | None) -> Path | None:
    """fhir-scorecard's executable (a Python 3.12 virtualenv made once in .cache/), or None."""
    venv = venv or SCORECARD_VENV
    exe = venv / "bin" / "fhir-scorecard"
    if exe.exists():
        return exe
    python = next((p for p in PY312_CANDIDATES if p.exists()), None)
    if python is None:
        return None
    subprocess.run([str(python), "-m", "venv", str(venv)], check=True, timeout=300)
    subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet",
         f"fhir-scorecard=={SCORECARD_VERSION}"],
        check=True, timeout=1800,
    )  # fmt: skip
    return exe if exe.exists() else None


def timed(argv: list[str], env: dict[str, str], cwd: Path) -> dict[str, Any]:
    """Run one client; wall and CPU seconds (wait4) and exit status."""
    t0 = time.perf_counter()
    process = subprocess.Popen(
        argv, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    assert process.stderr is not None
    err = process.stderr.read()
    _, status, usage = os.wait4(process.pid, 0)
    return {
        "wall_s": time.perf_counter() - t0,
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "exit": os.waitstatus_to_exitcode(status),
        "stderr_tail": err.decode(errors="replace")[-400:],
    }


def compile_probe(env: dict[str, str]) -> None:
    """Byte-compile probe's modules (as an install does) so no timed run compiles them."""
    compile_env = {k: v for k, v in env.items() if k != "PYTHONDONTWRITEBYTECODE"}
    subprocess.run(
        [PYTHON, "-m", "compileall", "-q", str(ROOT / "probe")],
        env=compile_env, check=True, timeout=600, stdout=subprocess.DEVNULL,
    )  # fmt: skip


def upgrade_db(db: str, env: dict[str, str], cwd: Path) -> None:
    """Create the store at head, untimed (a nightly crawl's store already exists)."""
    subprocess.run(
        [PYTHON, "-m", "probe.cli", "db", "upgrade", "--db", db],
        env=env, cwd=cwd, check=True, timeout=300, stdout=subprocess.DEVNULL,
    )  # fmt: skip


def main() -> None:
    """Serve the slow fleet over TLS, run the clients interleaved, print the medians."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--payers", type=int, default=100)
    parser.add_argument("--hosts", type=int, default=16)
    parser.add_argument("--median-ms", type=float, default=150.0)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--scorecard-venv", type=Path, default=None)
    parser.add_argument("--no-throttle", action="store_true", help="skip the throttling host")
    parser.add_argument("--json-out")
    args = parser.parse_args()
    scorecard = scorecard_bin(args.scorecard_venv)
    work = Path(tempfile.mkdtemp(prefix="probe-bench-scorecard-"))
    env = dict(os.environ, NO_COLOR="1")
    compile_probe(env)
    config = fleet_config(args.payers, args.median_ms)
    with fleet_subprocess(config, work / "fleet", hosts=args.hosts, start_timeout=120) as plain:
        directory = yaml.safe_load(plain.read_text())
        urls = [e["base_url"] for p in directory["payers"] for e in p["endpoints"]]
        hosts = sorted({urlsplit(u).hostname or "" for u in urls})
        upstream = {urlsplit(u).port for u in urls}
        assert len(upstream) == 1, upstream
        port = _free_port(hosts)
        ca_file, cert, key = make_ca(work, hosts)
        terminator = TlsTerminator(hosts, port, upstream.pop() or 80, cert, key)
        terminator.start()
        for payer in directory["payers"]:
            for endpoint in payer["endpoints"]:
                endpoint["base_url"] = _https(endpoint["base_url"], port)
                if endpoint.get("portal_url"):
                    endpoint["portal_url"] = _https(endpoint["portal_url"], port)
        tls_directory = work / "endpoints-tls.yaml"
        tls_directory.write_text(yaml.safe_dump(directory, sort_keys=False))
        registry = work / "registry.json"
        registry.write_text(
            json.dumps(
                {
                    "endpoints": [
                        {"id": f"e{i:03d}", "kind": "payer", "base_url": e["base_url"],
                         "name": p["name"], "expects": "r4"}
                        for i, (p, e) in enumerate(
                            (p, e) for p in directory["payers"] for e in p["endpoints"]
                        )
                    ]
                }
            )
        )  # fmt: skip
        #: name -> (argv, env, store created at head before the timed run)
        clients: dict[str, tuple[list[str], dict[str, str], bool]] = {}

        def probe_argv(*extra: str) -> list[str]:
            db = f"sqlite:///{work / 'probe-DB.db'}"
            return [PYTHON, "-m", "probe.cli", "run", str(tls_directory), "--no-sync",
                    "--ca-bundle", str(ca_file), "--db", db, *extra]  # fmt: skip

        clients["probe run (defaults), store at head"] = (probe_argv(), env, True)
        clients["probe run (defaults), fresh store (migrated in the run)"] = (
            probe_argv(),
            env,
            False,
        )
        clients["probe run --rate 5 (the previous default rate), store at head"] = (
            probe_argv("--rate", "5"),
            env,
            True,
        )
        if scorecard is not None:
            clients[f"fhir-scorecard {SCORECARD_VERSION} check --registry"] = (
                [str(scorecard), "check", "--registry", str(registry)],
                dict(env, SSL_CERT_FILE=str(ca_file)),
                False,
            )
        runs: dict[str, list[dict[str, Any]]] = {name: [] for name in clients}
        load_before = os.getloadavg()[0]
        for i in range(args.runs):
            names = list(clients) if i % 2 == 0 else list(clients)[::-1]
            for n, name in enumerate(names):
                argv, client_env, at_head = clients[name]
                argv = [a.replace("probe-DB", f"probe-{i}-{n}") for a in argv]
                if at_head:
                    upgrade_db(argv[argv.index("--db") + 1], client_env, work)
                runs[name].append(timed(argv, client_env, work))
        load_after = os.getloadavg()[0]
    endpoints = len(urls)
    rows = []
    for name, rs in runs.items():
        wall = statistics.median(r["wall_s"] for r in rs)
        cpu = statistics.median(r["cpu_s"] for r in rs)
        each = [round(endpoints / r["wall_s"], 1) for r in rs]
        rows.append(
            (name, len(rs), wall, endpoints / wall, cpu, sorted({r["exit"] for r in rs}), each)
        )
    print(f"- date: {time.strftime('%Y-%m-%d %H:%M %Z')}")
    print(
        f"- machine: {platform.platform()}, {os.cpu_count()} CPUs, Python "
        f"{platform.python_version()}; load average (1 min) {load_before:.1f} before, "
        f"{load_after:.1f} after"
    )
    print(f"- command: `.venv/bin/python bench/run_vs_scorecard.py {' '.join(sys.argv[1:])}`")
    print(
        f"- fleet: {endpoints} endpoints on {len(hosts)} hosts, all `slow` (median "
        f"{args.median_ms:g} ms, sigma 0.2), HTTPS through the bench's TLS terminator "
        "(private CA, TCP_NODELAY)"
    )
    if scorecard is None:
        print("- fhir-scorecard: not run (no Python 3.12 found to install it)")
    print()
    print(
        "| client | runs | median wall s | endpoints/s (each run) | vs fhir-scorecard "
        "| CPU s | exit |"
    )
    print("|---|---:|---:|---|---:|---:|---|")
    peer = next((r[3] for r in rows if r[0].startswith("fhir-scorecard")), None)
    for name, n, wall, eps, cpu, exits, each in rows:
        ratio = f"{eps / peer:.1f}x" if peer else ""
        print(f"| {name} | {n} | {wall:.1f} | **{eps:.1f}** ({', '.join(map(str, each))}) "
              f"| {ratio} | {cpu:.1f} | {exits} |")  # fmt: skip
    throttle: dict[str, Any] | None = None
    if not args.no_throttle:
        throttle = throttle_demo(args, work, env)
    if args.json_out:
        Path(args.json_out).write_text(json.dumps({"runs": runs, "throttle": throttle}, indent=2))


def _per_s(records: list[dict[str, Any]], start: float, end: float) -> float | None:
    inside = [r for r in records if start <= r["started"] < end]
    return len(inside) / (end - start) if end > start else None


def throttle_demo(args: argparse.Namespace, work: Path, env: dict[str, str]) -> dict[str, Any]:
    """`probe run` (defaults, plain HTTP) where host 0 limits 10 requests per 3 s: what host 0
    saw before its first 429 and after, from the fleet's request log; printed as markdown."""
    from probe.fleet.sites import host_address

    config = fleet_config(args.payers, args.median_ms, throttle_hosts=args.hosts)
    limited, calm = host_address(0), host_address(1)
    with fleet_subprocess(config, work / "fleet-throttle", hosts=args.hosts) as plain:
        directory = yaml.safe_load(plain.read_text())
        base = next(
            e["base_url"] for p in directory["payers"] for e in p["endpoints"]
            if urlsplit(e["base_url"]).hostname == limited
        )  # fmt: skip
        db = f"sqlite:///{work / 'throttle.db'}"
        upgrade_db(db, env, work)
        load = os.getloadavg()[0]
        result = timed(
            [PYTHON, "-m", "probe.cli", "run", str(plain), "--no-sync", "--db", db], env, work
        )
        origin = f"http://{limited}:{urlsplit(base).port}"
        log = httpx.get(f"{origin}/_fleet/stats?all=1&records=50000", timeout=30).json()["records"]
    mine = sorted((r for r in log if r["host"] == limited), key=lambda r: r["started"])
    other = sorted((r for r in log if r["host"] == calm), key=lambda r: r["started"])
    t0, end = mine[0]["started"], mine[-1]["started"]
    throttled = [r["started"] for r in mine if r["status"] == 429]
    first = throttled[0] if throttled else end
    last = throttled[-1] if throttled else end
    seconds: list[tuple[int, int, int]] = []
    for k in range(int(end - t0) + 1):
        inside = [r for r in mine if k <= r["started"] - t0 < k + 1]
        seconds.append((k, len(inside), sum(r["status"] == 429 for r in inside)))
    window = [
        sum(1 for r in mine if s <= r["started"] < s + THROTTLE_WINDOW_S and r["status"] != 429)
        for s in [r["started"] for r in mine if r["started"] > last]
    ]
    out: dict[str, Any] = {
        "wall_s": result["wall_s"],
        "exit": result["exit"],
        "load": load,
        "requests": len(mine),
        "throttled": len(throttled),
        "before_per_s": _per_s(mine, t0, first),
        "after_first_per_s": _per_s(mine, first, end + 1e-9),
        "after_last_per_s": _per_s(mine, last, end + 1e-9) if last < end else None,
        "max_answered_in_a_window_after_last_429": max(window, default=0),
        "other_host_per_s": _per_s(other, other[0]["started"], other[-1]["started"] + 1e-9)
        if other
        else None,
        "seconds": seconds,
    }
    print()
    print(
        f"Throttling host ({limited}: {THROTTLE_LIMIT} requests per {THROTTLE_WINDOW_S:g} s, "
        f"429 + Retry-After beyond it; `probe run` with its defaults, plain HTTP, load "
        f"{load:.1f}; wall {result['wall_s']:.1f} s, exit {result['exit']}):"
    )
    print()

    def rate(value: float | None) -> str:
        return "-" if value is None else f"{value:.2f}"

    print("| host | requests | 429s | req/s before first 429 | req/s after first 429 "
          "| req/s after last 429 | most answered in 3 s after last 429 |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|---:|")
    print(f"| {limited} (throttling) | {out['requests']} | {out['throttled']} "
          f"| {rate(out['before_per_s'])} | {rate(out['after_first_per_s'])} "
          f"| {rate(out['after_last_per_s'])} "
          f"| {out['max_answered_in_a_window_after_last_429']} |")  # fmt: skip
    print(f"| {calm} (not throttling) | {len(other)} | 0 | {rate(out['other_host_per_s'])} "
          "| | | |")  # fmt: skip
    print()
    print("Host 0, second by second (requests seen, of them 429): " + ", ".join(
        f"{k}s {n}" + (f" ({t}x429)" if t else "") for k, n, t in seconds
    ))  # fmt: skip
    return out


if __name__ == "__main__":
    main()
