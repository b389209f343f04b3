"""Store test fixtures: every store test runs on SQLite and on the real PostgreSQL.

PostgreSQL is 127.0.0.1:5432, database `test`, user `postgres`, trust auth (CI starts it).
Each PostgreSQL test gets a fresh schema, selected through the connection's search_path, so
tests are isolated and Alembic's version table lands in that schema too. If PostgreSQL is not
reachable the tests fail: they never skip.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.exc import OperationalError

from probe.models import CheckResult, CheckSpec, Exchange, ExtractStep, Severity, Status
from probe.store.engine import open_store
from probe.store.handle import Store

PG_URL = os.environ.get(
    "PROBE_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


@pytest.fixture(scope="session")
def pg_admin() -> Iterator[Engine]:
    """An autocommit engine on the test PostgreSQL; fails (not skips) when it is down."""
    engine = create_engine(
        PG_URL, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 5}
    )
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except OperationalError as exc:
        engine.dispose()
        pytest.fail(
            f"PostgreSQL at {PG_URL} is not reachable ({exc.orig}); the store tests need it "
            "(CI starts it: see .ci/run)",
            pytrace=False,
        )
    yield engine
    engine.dispose()


def pg_schema_url(schema: str) -> str:
    """The test database URL with the search_path set to `schema` only."""
    return f"{PG_URL}?options=-csearch_path%3D{schema}"


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A URL to an empty database: a temporary SQLite file, or a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('db') / 'probe.db'}"
        return
    admin: Engine = request.getfixturevalue("pg_admin")
    schema = f"t_{uuid.uuid4().hex[:20]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield pg_schema_url(schema)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))


@pytest.fixture
def backend(store_url: str) -> str:
    """'sqlite' or 'postgresql'."""
    return "sqlite" if store_url.startswith("sqlite") else "postgresql"


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    """An open store migrated to head."""
    opened = open_store(store_url)
    try:
        yield opened
    finally:
        opened.close()


@pytest.fixture
def run_id(store: Store) -> int:
    """A running 'check' run."""
    return store.start_run("check", {"base_url": "https://fhir.example.com/r4"})


@pytest.fixture
def endpoint_id(store: Store) -> int:
    """An ad-hoc endpoint."""
    return store.ensure_endpoint("https://fhir.example.com/r4")


class Outage:
    """Makes an engine's database unreachable: pooled connections dropped, new ones refused."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._down = False
        self.attempts = 0
        error = engine.dialect.loaded_dbapi.OperationalError

        @event.listens_for(engine, "do_connect")
        def _refuse(*_args: object) -> None:
            if self._down:
                self.attempts += 1
                raise error("connection refused (simulated outage)")

    @property
    def down(self) -> bool:
        """Whether the database is unreachable."""
        return self._down

    @down.setter
    def down(self, value: bool) -> None:
        self._down = value
        if value:
            self.engine.dispose()


@pytest.fixture
def outage(store: Store) -> Outage:
    """Switch `outage.down` to make the store's database unreachable."""
    return Outage(store.engine)


SPEC_A = CheckSpec("metadata.reachable", "Metadata reachable", Severity.REQUIRED, "FHIR R4 3.1")
SPEC_B = CheckSpec("smart.config", "SMART config", Severity.RECOMMENDED, "SMART 2.0")


def result(
    spec: CheckSpec = SPEC_A, status: Status = Status.PASS, **evidence: object
) -> CheckResult:
    """A check result with this evidence."""
    return CheckResult(spec, status, f"{spec.id} is {status}", dict(evidence))


def exchange(
    i: int = 0, url: str | None = None, step: ExtractStep = ExtractStep.DISCOVERY
) -> Exchange:
    """A plausible request record with a body that must never be stored."""
    return Exchange(
        method="GET",
        url=url or f"https://fhir.example.com/r4/Patient/{i}",
        step=step,
        status=200,
        latency_ms=12.5 + i,
        size_bytes=1000 + i,
        content_type="application/fhir+json",
        body=b'{"resourceType":"Patient","name":[{"family":"Secret"}]}',
        started_at=datetime(2026, 1, 1, tzinfo=UTC),
    )


FakeClock = Callable[[], float]
