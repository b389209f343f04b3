"""One fleet process of bench/scale.py: `probe fleet serve` on a loopback /24 of its own.

`probe fleet serve` places hosts on 127.0.0.2 upwards, at most 64 of them, and probe's per-host
politeness keys on the host name alone (not the port), so fleet processes on the same
addresses with different ports would look like the same hosts to the crawl. This runs what
`probe fleet serve` runs with host number i at 127.0.SUBNET.(2 + i) instead, so that several
processes (SUBNET 10, 11, ...) serve distinct hosts: 5 processes x 60 hosts = 300 hosts.

    .venv/bin/python bench/scale_fleet.py --config fleet.yaml --subnet 10 \
        --directory-out endpoints.yaml

It writes the directory (and its secrets file beside it) once every server listens, prints
nothing else, and serves until SIGTERM/SIGINT. Loopback only.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path


def main() -> None:
    """Parse options and serve the fleet on 127.0.SUBNET.x until a signal."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--subnet", type=int, required=True, help="third octet, 10-250")
    parser.add_argument("--directory-out", type=Path, required=True)
    args = parser.parse_args()
    if not 10 <= args.subnet <= 250:
        parser.error("--subnet must be 10-250 (127.0.0.x and 127.0.1.x are the fleet's own)")

    import probe.fleet.sites as sites
    from probe.fleet.app import Fleet
    from probe.fleet.catalog import directory_text, write_secrets
    from probe.fleet.config import load_fleet_config
    from probe.fleet.serve import bind_fleet, serve_until_signal

    subnet = args.subnet

    def host_address(index: int) -> str:
        return f"127.0.{subnet}.{sites.FIRST_HOST + index}"

    # layout() looks host_address up in its module at call time.
    sites.host_address = host_address

    config = load_fleet_config(args.config)
    chosen, sockets = bind_fleet(config, None)
    fleet = Fleet(config, port=chosen)
    secrets_out = args.directory_out.with_name(args.directory_out.stem + ".secrets.yaml")
    write_secrets(secrets_out, fleet.secrets())
    text = directory_text(fleet.directory(str(secrets_out.resolve())))

    def ready() -> None:
        tmp = args.directory_out.with_name(args.directory_out.name + ".tmp")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, args.directory_out)

    serve_until_signal(fleet, sockets, ready)


if __name__ == "__main__":
    main()
