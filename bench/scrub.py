"""Benchmark: scrubbing live secrets from server text, and preparing a probed endpoint's rows.

Default mode (`probe.http.redact.scrub_secrets`): registers one PEM-sized key and N random
32-character tokens (every encoding of each is derived), then times scrubbing a 4 KB string
that holds the key raw and JSON-escaped among ordinary words. Issue 18's first registry (one
big regex) took about 21 ms per string and hit Python's recursion limit on PEM keys.

`--reports N` mode (issue 17): probes N exemplary payers of an in-process fleet (discovery and
the JWKS, as `probe run` does), then times what the crawl does on its event loop for each
probed endpoint: the store writer's row preparation (`add_exchanges`, `add_check_results`
scrubbing every evidence string, `add_document` with `storable_json` and SHA-256), with the
registry empty and with `--secrets` tokens registered. Nothing is written to a database.

    .venv/bin/python bench/scrub.py --secrets 2000 --repeats 50
    .venv/bin/python bench/scrub.py --reports 200 --secrets 2000 --repeats 5
"""

from __future__ import annotations

import argparse
import json
import secrets
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from probe.http.redact import KNOWN_SECRETS, register_secret, scrub_secrets
from probe.models import Report


def scrub_text(args: argparse.Namespace) -> None:
    """Register the secrets, scrub the text `--repeats` times, print the median per call."""
    pem = (
        "-----BEGIN PRIVATE KEY-----\n"
        + "\n".join(secrets.token_urlsafe(48) for _ in range(40))
        + "\n-----END PRIVATE KEY-----\n"
    )
    register_secret(pem)
    for _ in range(args.secrets):
        register_secret(secrets.token_urlsafe(24))
    text = f"server said {pem} and {json.dumps(pem)} " + "ordinary words " * 250
    scrub_secrets("warm up")
    times = []
    for _ in range(args.repeats):
        started = time.perf_counter()
        out = scrub_secrets(text)
        times.append(time.perf_counter() - started)
    assert "BEGIN PRIVATE KEY" not in out
    print(
        f"{args.secrets} secrets, {len(text)}-character text: median "
        f"{statistics.median(times) * 1000:.2f} ms, best {min(times) * 1000:.2f} ms per scrub"
    )


def probed_reports(count: int) -> list[Report]:
    """Discovery and JWKS reports of `count` exemplary payers of an in-process fleet."""
    import anyio
    import httpx

    from probe.checks.discovery import run_discovery
    from probe.drift.keys import observe_key_set
    from probe.fleet.app import Fleet
    from probe.fleet.config import parse_fleet_config
    from probe.http.fetch import Fetcher
    from probe.http.limits import Limits

    payers = [
        {"slug": f"p{i:04d}", "archetypes": ["exemplary"], "patients": 1, "host": i % 8}
        for i in range(count)
    ]
    fleet = Fleet(parse_fleet_config({"seed": 7, "hosts": 8, "payers": payers}), port=8080)
    reports: list[Report] = []

    async def go() -> None:
        async with httpx.AsyncClient(transport=fleet.transport()) as client:
            fetcher = Fetcher(client, Limits(max_retries=0))
            for payer in payers:
                report = await run_discovery(fetcher, fleet.base_url(str(payer["slug"])))
                await observe_key_set(fetcher, report)
                reports.append(report)

    anyio.run(go)
    return reports


def prepare_rows(args: argparse.Namespace) -> None:
    """Time the writer's row preparation per probed endpoint, without and with secrets."""
    from sqlalchemy import create_engine

    from probe.store.writer import StoreWriter

    reports = probed_reports(args.reports)
    strings = sum(_count_strings(r.to_json()) for r in reports) / len(reports)
    engine = create_engine("sqlite://")  # never used: nothing is flushed

    def once() -> float:
        writer = StoreWriter(engine, 1, batch_size=10**9, flush_interval=1e9)
        started = time.process_time()  # CPU: steadier than wall time on a shared machine
        for endpoint_id, report in enumerate(reports, 1):
            writer.add_exchanges(endpoint_id, report.exchanges)
            writer.add_check_results(endpoint_id, report.results)
            for kind, body in report.documents.items():
                writer.add_document(endpoint_id, kind, body)
        return (time.process_time() - started) / len(reports)

    def measure(label: str) -> None:
        once()  # warm up (and fill any cache a first endpoint would)
        times = [once() for _ in range(args.repeats)]
        print(
            f"{label}: median {statistics.median(times) * 1000:.3f} ms, best "
            f"{min(times) * 1000:.3f} ms CPU of row preparation per endpoint"
        )

    print(f"{len(reports)} reports, about {strings:.0f} strings per report (JSON shape)")
    KNOWN_SECRETS.forget_all()
    measure("no secret registered")
    for _ in range(args.secrets):
        register_secret(secrets.token_urlsafe(24))
    measure(f"{args.secrets} secrets registered")
    KNOWN_SECRETS.forget_all()


def _count_strings(value: Any) -> int:
    if isinstance(value, str):
        return 1
    if isinstance(value, dict):
        return sum(1 + _count_strings(v) for v in value.values())
    if isinstance(value, list):
        return sum(_count_strings(v) for v in value)
    return 0


def main() -> None:
    """Run the chosen benchmark and print its figures."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--secrets", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--reports", type=int, default=0, help="time row preparation instead")
    args = parser.parse_args()
    if args.reports:
        prepare_rows(args)
    else:
        scrub_text(args)


if __name__ == "__main__":
    main()
