"""Contract tests: a live fleet on loopback (served from a thread), a stored database with drift,
and validators for probe's JSON Schemas and the OASIS SARIF 2.1.0 schema."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from jsonschema import Draft4Validator, Draft202012Validator, FormatChecker
from typer.testing import CliRunner

from probe.cli.app import app
from probe.contracts.versions import schema_path
from probe.directory.schema import Directory, EndpointFacts
from probe.fleet.app import Fleet
from probe.fleet.changes import PayerChange
from probe.fleet.config import parse_fleet_config
from probe.fleet.serve import running_fleet
from probe.store.engine import open_store
from tests.drift.fleet_runs import crawl_fleet, fleet_config

DATA = Path(__file__).parent / "data"
SARIF_SCHEMA = DATA / "sarif-schema-2.1.0.json"

#: The live fleet: a clean payer, a payer without a SMART configuration (failed checks) and
#: one that serves member data without a token (a failed required check).
LIVE_PAYERS: list[dict[str, Any]] = [
    {"slug": "good", "name": "Good Health"},
    {"slug": "nosmart", "name": "No SMART Plan", "archetypes": ["no_smart_config"]},
    {"slug": "open", "name": "Open Plan", "archetypes": ["open_data"]},
]
#: The stored fleet: crawled twice, with a resource type dropped in between (drift).
STORED_PAYERS: list[dict[str, Any]] = [{"slug": "steady"}, {"slug": "dropper"}]


def contract_validator(name: str) -> Draft202012Validator:
    """A validator for the checked-in schema of contract `name` (formats checked)."""
    schema = json.loads(schema_path(name).read_text(encoding="utf-8"))
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, format_checker=FormatChecker())


def sarif_validator() -> Draft4Validator:
    """A validator for the official SARIF 2.1.0 schema (draft-04)."""
    schema = json.loads(SARIF_SCHEMA.read_text(encoding="utf-8"))
    Draft4Validator.check_schema(schema)
    return Draft4Validator(schema, format_checker=FormatChecker())


def strict_loads(text: str) -> Any:
    """Parse JSON the way strict parsers do: NaN and Infinity are errors."""

    def refuse(token: str) -> Any:
        raise ValueError(f"non-standard JSON constant {token}")

    return json.loads(text, parse_constant=refuse)


def run_cli(args: list[str], env: dict[str, str] | None = None) -> tuple[int, str, str]:
    """Run probe in-process: exit code, stdout, stderr."""
    result = CliRunner().invoke(app, args, env={"COLUMNS": "200", **(env or {})})
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture(scope="module")
def live_fleet() -> Iterator[Fleet]:
    """The live fleet, served on loopback from a thread of its own (its own event loop), so
    the CLI can run in-process with its own."""
    config = parse_fleet_config({"seed": 7, "hosts": 2, "payers": LIVE_PAYERS})
    ready = threading.Event()
    stop = threading.Event()
    box: dict[str, Any] = {}

    def serve() -> None:
        async def main() -> None:
            async with running_fleet(config) as fleet:
                box["fleet"] = fleet
                ready.set()
                while not stop.is_set():
                    await anyio.sleep(0.05)

        try:
            anyio.run(main)
        except BaseException as exc:  # reported to the test below
            box["error"] = exc
            ready.set()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    ready.wait(120)
    if "fleet" not in box:
        stop.set()
        raise RuntimeError(f"the fleet did not start: {box.get('error')!r}")
    yield box["fleet"]
    stop.set()
    thread.join(30)


def _indefinite_access(directory: Directory) -> Directory:
    """Every endpoint configured with member data available indefinitely (YAML ``.inf``)."""
    facts = EndpointFacts(inactive_member_access_months=float("inf"))
    payers = [
        p.model_copy(
            update={"endpoints": [e.model_copy(update={"facts": facts}) for e in p.endpoints]}
        )
        for p in directory.payers
    ]
    return directory.model_copy(update={"payers": payers})


@pytest.fixture(scope="module")
def stored_db(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """A SQLite database with two nightly crawls and a drift event; (URL, a base URL in it).

    Every payer's inactive-member access is configured as indefinite (``.inf``), the value
    that made ``probe score --format json`` print ``Infinity``.
    """
    tmp = tmp_path_factory.mktemp("stored")
    url = f"sqlite:///{tmp / 'probe.db'}"
    directory = Fleet.directory
    with pytest.MonkeyPatch.context() as patch, open_store(url) as store:
        patch.setattr(
            Fleet, "directory", lambda self, *a, **k: _indefinite_access(directory(self, *a, **k))
        )
        crawl_fleet(store, tmp, STORED_PAYERS, page_size=5)
        crawl_fleet(
            store,
            tmp,
            STORED_PAYERS,
            {"dropper": PayerChange(drop_resource_types=("Immunization",))},
            page_size=5,
        )
    base = Fleet(fleet_config(STORED_PAYERS), port=8080).base_url("dropper")
    return url, base
