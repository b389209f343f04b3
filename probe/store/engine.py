"""Where the database is, how to connect to it, and keeping its schema at this code's revision.

The database is chosen by ``--db URL``, else ``PROBE_DATABASE_URL``, else ``sqlite:///probe.db``
in the current directory. Only SQLite (the standard ``sqlite3`` driver) and PostgreSQL through
psycopg 3 are supported; ``postgresql://`` URLs are normalised to ``postgresql+psycopg://``.
Migrations live in the repository's ``migrations/`` directory, found relative to this package,
and run programmatically (no ``alembic.ini`` or working directory needed).

Start-up: Alembic is imported only when a database needs migrating (or a command asks for it).
Whether it does is decided cheaply: the stored revision is read with one query, and this
code's revisions are read from the version files' text (a simple chain: no import of them);
anything else (a merge, branches) is left to Alembic.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import time
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine, create_engine, event, inspect, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, SQLAlchemyError

from probe.store.errors import StoreError
from probe.store.handle import Store
from probe.store.tables import metadata

if TYPE_CHECKING:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

ENV_VAR = "PROBE_DATABASE_URL"
DEFAULT_URL = "sqlite:///probe.db"
MIGRATIONS_ENV_VAR = "PROBE_MIGRATIONS_DIR"
#: Key of the PostgreSQL advisory lock serialising concurrent migrations of one database.
_MIGRATION_LOCK_KEY = 0x70726F6265  # "probe"
_SQLITE_BUSY_TIMEOUT_S = 30.0


def _json_default(value: object) -> object:
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    return str(value)


def json_dumps(value: object) -> str:
    """Compact JSON for JSON columns; values JSON cannot express are written as strings."""
    return json.dumps(value, default=_json_default, separators=(",", ":"), ensure_ascii=False)


def resolve_url(url: str | URL | None = None) -> URL:
    """The database URL to use: `url`, else $PROBE_DATABASE_URL, else sqlite:///probe.db."""
    raw: str | URL = url if url else (os.environ.get(ENV_VAR) or DEFAULT_URL)
    try:
        parsed = make_url(raw)
    except (ArgumentError, ValueError):
        raise StoreError(
            f"not a database URL: {_redact_raw(str(raw))!r} (expected e.g. sqlite:///probe.db or "
            "postgresql+psycopg://user@host/db)"
        ) from None
    backend, _, driver = parsed.drivername.partition("+")
    if backend in ("postgresql", "postgres"):
        if driver not in ("", "psycopg", "psycopg2"):
            raise StoreError(
                f"unsupported PostgreSQL driver in {safe_url(parsed)}; use postgresql+psycopg://"
            )
        return parsed.set(drivername="postgresql+psycopg")
    if backend == "sqlite":
        if driver not in ("", "pysqlite"):
            raise StoreError(f"unsupported SQLite driver in {safe_url(parsed)}; use sqlite:///")
        return parsed
    raise StoreError(
        f"unsupported database {safe_url(parsed)}: probe stores observations in SQLite "
        "(sqlite:///path) or PostgreSQL (postgresql+psycopg://user@host/db)"
    )


def _redact_raw(raw: str) -> str:
    """A URL-ish string that failed to parse, with anything between ':' and '@' hidden."""
    if "@" in raw and "://" in raw:
        scheme, rest = raw.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        user = creds.split(":", 1)[0]
        return f"{scheme}://{user}:***@{host}" if ":" in creds else raw
    return raw


def safe_url(url: str | URL) -> str:
    """The URL as text with any password hidden, fit for messages and logs."""
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        return _redact_raw(str(url))
    return parsed.render_as_string(hide_password=True)


def _scrub(message: str, url: URL) -> str:
    """`message` with the URL's password (if any) removed."""
    if url.password:
        message = message.replace(str(url.password), "***")
    return message


def _on_sqlite_connect(dbapi_connection: sqlite3.Connection, _record: Any) -> None:
    # Manage transactions ourselves (see _on_sqlite_begin) so DDL is transactional too.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA busy_timeout={int(_SQLITE_BUSY_TIMEOUT_S * 1000)}")
    finally:
        cursor.close()


#: Execution option of a connection that only reads: it begins a plain (deferred) SQLite
#: transaction, so it does not queue behind other processes' writes (WAL lets it read).
READ_ONLY = "probe_read_only"


#: How long a writer waiting for SQLite's write lock sleeps between tries: from the first to
#: the last, doubling. SQLite's own busy handler sleeps up to 100 ms at a time, so a worker
#: whose claim waits behind another process's short transactions missed the moments the lock
#: was free and sat idle (measured: 0.2 s per wait on average, 2.3 s at most, some 25 s per
#: worker in a 47 s two-worker crawl).
_LOCK_RETRY_FIRST_S = 0.0005
_LOCK_RETRY_LAST_S = 0.004


def _on_sqlite_begin(connection: Connection) -> None:
    # IMMEDIATE takes the write lock up front: concurrent writers wait instead of failing with
    # SQLITE_BUSY when a read transaction later tries to write.
    if connection.get_execution_options().get(READ_ONLY):
        connection.exec_driver_sql("BEGIN")
        return
    driver = connection.connection.driver_connection
    if not isinstance(driver, sqlite3.Connection) or not _busy_timeout(driver, 0):
        connection.exec_driver_sql("BEGIN IMMEDIATE")  # SQLite's own wait
        return
    try:
        if not _begin_immediate_soon(driver):
            # Still held after the busy timeout (or another error): this try fails at once
            # and reports it as every other store error is reported.
            connection.exec_driver_sql("BEGIN IMMEDIATE")
    finally:
        _busy_timeout(driver, _SQLITE_BUSY_TIMEOUT_S)


def _busy_timeout(driver: sqlite3.Connection, seconds: float) -> bool:
    """Set how long SQLite itself waits for a lock on this connection; False if it failed."""
    try:
        driver.execute(f"PRAGMA busy_timeout={int(seconds * 1000)}")
    except sqlite3.Error:
        return False
    return True


def _begin_immediate_soon(driver: sqlite3.Connection) -> bool:
    """Begin a write transaction on a connection whose busy timeout is 0, trying again every
    few milliseconds while another connection holds the write lock, for up to the busy
    timeout; False when it is still held then, or on any other error."""
    deadline = time.monotonic() + _SQLITE_BUSY_TIMEOUT_S
    delay = _LOCK_RETRY_FIRST_S
    while True:
        try:
            driver.execute("BEGIN IMMEDIATE")
            return True
        except sqlite3.OperationalError as exc:
            code = getattr(exc, "sqlite_errorcode", None)
            busy = code is None or code & 0xFF == sqlite3.SQLITE_BUSY
            if not busy or time.monotonic() >= deadline:
                return False
        time.sleep(delay)
        delay = min(delay * 2, _LOCK_RETRY_LAST_S)


def create_store_engine(url: str | URL | None = None, **kwargs: Any) -> Engine:
    """A sync SQLAlchemy engine for the store: SQLite with WAL and foreign keys, or psycopg 3."""
    resolved = resolve_url(url)
    options: dict[str, Any] = {"json_serializer": json_dumps, **kwargs}
    if resolved.get_backend_name() == "sqlite":
        connect_args = dict(options.pop("connect_args", {}))
        connect_args.setdefault("timeout", _SQLITE_BUSY_TIMEOUT_S)
        connect_args.setdefault("check_same_thread", False)
        engine = create_engine(resolved, connect_args=connect_args, **options)
        event.listen(engine, "connect", _on_sqlite_connect)
        event.listen(engine, "begin", _on_sqlite_begin)
        return engine
    connect_args = dict(options.pop("connect_args", {}))
    connect_args.setdefault("connect_timeout", 10)
    options.setdefault("pool_pre_ping", True)
    return create_engine(resolved, connect_args=connect_args, **options)


def migrations_dir() -> Path:
    """The Alembic scripts directory: $PROBE_MIGRATIONS_DIR, else `migrations/` beside `probe/`."""
    candidates: list[Path] = []
    override = os.environ.get(MIGRATIONS_ENV_VAR)
    if override:
        candidates.append(Path(override))
    candidates.append(Path(__file__).resolve().parents[2] / "migrations")
    for candidate in candidates:
        if (candidate / "env.py").is_file() and (candidate / "versions").is_dir():
            return candidate
    raise StoreError(
        "cannot find probe's database migrations (looked in "
        + ", ".join(str(c) for c in candidates)
        + f"); install probe from its source tree or set {MIGRATIONS_ENV_VAR}"
    )


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic Config for probe's migrations, optionally bound to an open connection."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def _script() -> ScriptDirectory:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config())


_ASSIGNED = r"^{name}\s*(?::[^=\n]*)?=\s*(?:None|[\"']([^\"'\n]+)[\"'])\s*(?:#.*)?$"
_REVISION, _DOWN, _BRANCHES, _DEPENDS = (
    re.compile(_ASSIGNED.format(name=name), re.MULTILINE)
    for name in ("revision", "down_revision", "branch_labels", "depends_on")
)


def _revision_chain() -> tuple[str, ...] | None:
    """This code's revisions, oldest first, read from the version files' text (no import);
    None when they are not one simple chain that this reading is sure of."""
    versions = migrations_dir() / "versions"
    try:
        stamp = tuple(sorted((p.name, p.stat().st_mtime_ns) for p in versions.glob("*.py")))
    except OSError:
        return None
    return _chain_of(str(versions), stamp)


@cache
def _chain_of(versions: str, stamp: tuple[tuple[str, int], ...]) -> tuple[str, ...] | None:
    """The chain of revisions in `versions` (`stamp`: its files and their mtimes, the cache key)."""
    after: dict[str | None, str] = {}
    for name, _ in stamp:
        try:
            source = Path(versions, name).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            return None
        found = [pattern.findall(source) for pattern in (_REVISION, _DOWN, _BRANCHES, _DEPENDS)]
        if any(len(matches) != 1 for matches in found):
            return None  # not read with certainty: let Alembic read it
        (revision,), (down,), (branches,), (depends,) = found
        if not revision or branches or depends or (down or None) in after:
            return None  # a branch label, a dependency, or two children of one revision
        after[down or None] = revision
    chain: list[str] = []
    cursor: str | None = None
    while cursor in after:
        cursor = after[cursor]
        chain.append(cursor)
    return tuple(chain) if chain and len(chain) == len(after) else None


def head_revision() -> str:
    """The newest migration revision this code knows."""
    chain = _revision_chain()
    if chain is not None:
        return chain[-1]
    heads = _script().get_heads()
    if len(heads) != 1:
        raise StoreError(f"probe's migrations have {len(heads)} heads; expected exactly one")
    return heads[0]


def known_revisions() -> list[str]:
    """Every migration revision this code knows, oldest first."""
    chain = _revision_chain()
    if chain is not None:
        return list(chain)
    return [rev.revision for rev in reversed(list(_script().walk_revisions()))]


@dataclass(frozen=True, slots=True)
class RevisionState:
    """Where a database's schema stands relative to this code's migrations."""

    current: str | None
    head: str
    known: bool
    has_tables: bool

    @property
    def at_head(self) -> bool:
        """True when the schema is exactly what this code expects."""
        return self.current == self.head

    @property
    def empty(self) -> bool:
        """True when the database has neither a revision nor any of probe's tables."""
        return self.current is None and not self.has_tables


def _connect_error(exc: BaseException, url: URL) -> StoreError:
    orig = getattr(exc, "orig", None) or exc
    reason = str(orig).strip().splitlines()[0] if str(orig).strip() else type(orig).__name__
    return StoreError(f"cannot use the database {safe_url(url)}: {_scrub(reason, url)}")


def revision_state(engine: Engine) -> RevisionState:
    """Read the database's current revision and classify it against this code's migrations."""
    try:
        with engine.connect() as conn:
            tables = set(inspect(conn).get_table_names())
            heads: tuple[str, ...] = ()
            if "alembic_version" in tables:  # what Alembic's MigrationContext reads, directly
                rows = conn.execute(text("SELECT version_num FROM alembic_version"))
                heads = tuple(str(row[0]) for row in rows)
    except DBAPIError as exc:
        raise _connect_error(exc, engine.url) from None
    if len(heads) > 1:
        raise StoreError(
            f"the database {safe_url(engine.url)} has several migration heads {sorted(heads)}; "
            "it was not migrated by probe"
        )
    current = heads[0] if heads else None
    known = current is None or current in known_revisions()
    ours = {t.name for t in metadata.sorted_tables}
    return RevisionState(current, head_revision(), known, bool(tables & ours))


def unknown_revision_error(state: RevisionState, url: URL) -> StoreError:
    """The error for a database at a revision this code does not know (usually newer)."""
    return StoreError(
        f"the database {safe_url(url)} is at revision {state.current!r}, which this version of "
        f"probe does not know (it knows up to {state.head!r}); it was probably migrated by a "
        "newer probe. Upgrade probe, or point --db / PROBE_DATABASE_URL at another database."
    )


def require_usable(engine: Engine, *, migrate: bool) -> RevisionState:
    """Refuse a database at an unknown (newer) revision; with `migrate`, upgrade it to head."""
    state = revision_state(engine)
    if not state.known:
        raise unknown_revision_error(state, engine.url)
    if state.current is None and state.has_tables:
        raise StoreError(
            f"the database {safe_url(engine.url)} has probe's tables but no migration revision; "
            "it was not created by `probe db upgrade`. Use an empty database."
        )
    if state.at_head:
        return state
    if not migrate and state.current is None:
        raise StoreError(
            f"the database {safe_url(engine.url)} is empty (no probe schema, no observations); "
            "crawl a directory first (probe run endpoints.yaml) or run `probe db upgrade`"
        )
    if not migrate:
        raise StoreError(
            f"the database {safe_url(engine.url)} is at revision {state.current}, "
            f"not {state.head}; run `probe db upgrade`"
        )
    upgrade(engine)
    return revision_state(engine)


def _run_alembic(engine: Engine, action: str, revision: str) -> None:
    from alembic import command
    from alembic.util.exc import CommandError

    try:
        with engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(
                    text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK_KEY}
                )
            config = alembic_config(conn)
            if action == "upgrade":
                command.upgrade(config, revision)
            else:
                command.downgrade(config, revision)
    except CommandError as exc:
        raise StoreError(f"cannot {action} to {revision!r}: {exc}") from None
    except DBAPIError as exc:
        raise _connect_error(exc, engine.url) from None
    except SQLAlchemyError as exc:
        raise StoreError(
            f"{action} failed: {_scrub(str(exc).splitlines()[0], engine.url)}"
        ) from None


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Migrate the database up to `revision` (default: this code's head), in one transaction."""
    state = revision_state(engine)
    if not state.known:
        raise unknown_revision_error(state, engine.url)
    _run_alembic(engine, "upgrade", revision)


def downgrade(engine: Engine, revision: str) -> None:
    """Migrate the database down to `revision` ('base' drops every probe table)."""
    state = revision_state(engine)
    if not state.known:
        raise unknown_revision_error(state, engine.url)
    if revision != "base" and not revision.startswith("-") and revision not in known_revisions():
        raise StoreError(
            f"unknown revision {revision!r}; known revisions: "
            + ", ".join(["base", *known_revisions()])
        )
    _run_alembic(engine, "downgrade", revision)


def open_store(url: str | URL | None = None, *, migrate: bool = True) -> Store:
    """Connect to the database and make sure its schema is this code's head revision.

    An empty database (or one at an older known revision) is migrated to head when `migrate`
    is true; a database at a revision this code does not know (newer, or foreign) is refused
    with a StoreError, as is one that needs migrating when `migrate` is false.
    """
    engine = create_store_engine(url)
    try:
        require_usable(engine, migrate=migrate)
    except BaseException:
        engine.dispose()
        raise
    return Store(engine)


def missing_sqlite_file(engine: Engine) -> str | None:
    """The path of the SQLite database file `engine` names, when that file does not exist."""
    url = engine.url
    database = url.database or ""
    if (
        url.get_backend_name() == "sqlite"
        and database not in ("", ":memory:")
        and not database.startswith("file:")
        and not Path(database).exists()
    ):
        return database
    return None
