"""The files a test crawl of an in-process fleet needs: its directory and its secrets file."""

from __future__ import annotations

from pathlib import Path

import yaml

from probe.directory.schema import Directory
from probe.fleet.app import Fleet


def fleet_directory(
    fleet: Fleet, workdir: Path, name: str = "secrets.yaml"
) -> tuple[Directory, Path]:
    """The running fleet's directory, naming a secrets file written (mode 0600) in `workdir`."""
    secrets = workdir / name
    secrets.write_text(yaml.safe_dump(fleet.secrets()))
    secrets.chmod(0o600)
    return fleet.directory(str(secrets)), secrets
