"""Benchmark: scrubbing live secrets from server text (`probe.http.redact.scrub_secrets`).

Registers one PEM-sized key and N random 32-character tokens (every encoding of each is
derived), then times scrubbing a 4 KB string that holds the key raw and JSON-escaped among
ordinary words. Issue 18's first registry (one big regex) took about 21 ms per string and hit
Python's recursion limit on PEM keys.

    .venv/bin/python bench/scrub.py --secrets 2000 --repeats 50
"""

from __future__ import annotations

import argparse
import json
import secrets
import statistics
import time

from probe.http.redact import register_secret, scrub_secrets


def main() -> None:
    """Register the secrets, scrub the text `--repeats` times, print the median per call."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--secrets", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=50)
    args = parser.parse_args()
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


if __name__ == "__main__":
    main()
