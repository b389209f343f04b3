"""The models and the migrations agree, migrations run both ways, unknown revisions are refused."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, inspect, text

from probe.store.engine import (
    create_store_engine,
    downgrade,
    head_revision,
    migrations_dir,
    open_store,
    revision_state,
    upgrade,
)
from probe.store.errors import StoreError
from probe.store.tables import metadata

from .conftest import pg_schema_url

#: The tables of issue 3; later migrations may add more (ALL_TABLES).
TABLES = {
    "payers",
    "endpoints",
    "probe_runs",
    "run_targets",
    "check_results",
    "http_requests",
    "sync_jobs",
    "documents",
    "document_sightings",
    "run_locks",
}
ALL_TABLES = set(metadata.tables)


def _tables(engine: Engine) -> set[str]:
    with engine.connect() as conn:
        return set(inspect(conn).get_table_names())


def test_models_and_migrations_agree(store_url: str) -> None:
    engine = create_store_engine(store_url)
    try:
        upgrade(engine)
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            diff = compare_metadata(context, metadata)
        assert diff == []
    finally:
        engine.dispose()


def test_upgrade_from_empty_and_downgrade_to_base(store_url: str) -> None:
    engine = create_store_engine(store_url)
    try:
        assert revision_state(engine).empty
        upgrade(engine)
        state = revision_state(engine)
        assert state.at_head and state.current == head_revision()
        assert TABLES <= ALL_TABLES
        assert _tables(engine) == ALL_TABLES | {"alembic_version"}

        downgrade(engine, "base")
        state = revision_state(engine)
        assert state.current is None and not state.has_tables
        assert _tables(engine) & ALL_TABLES == set()

        upgrade(engine)  # and back up again
        assert revision_state(engine).at_head
    finally:
        engine.dispose()


def test_upgrade_counts_the_pending_targets_of_a_run_s_hosts(store_url: str) -> None:
    # A run in progress when the store is upgraded to 0008: its hosts get their counts.
    engine = create_store_engine(store_url)
    try:
        upgrade(engine, "0007")
        with engine.begin() as conn:
            conn.execute(
                text("INSERT INTO payers (id, name, organization_status) VALUES (1, 'P', 'none')")
            )
            for eid in (1, 2, 3):
                conn.execute(
                    text(
                        "INSERT INTO endpoints (id, payer_id, environment, base_url) "
                        "VALUES (:id, 1, 'production', :url)"
                    ),
                    {"id": eid, "url": f"https://h/{eid}"},
                )
            conn.execute(
                text(
                    "INSERT INTO probe_runs (id, kind, status, started_at, probe_version, host, "
                    "pid) VALUES (1, 'nightly', 'running', CURRENT_TIMESTAMP, '0', 'h', 1)"
                )
            )
            for eid, host, status in ((1, "a", "pending"), (2, "a", "done"), (3, "b", "done")):
                conn.execute(
                    text(
                        "INSERT INTO run_targets (run_id, endpoint_id, status, host) "
                        "VALUES (1, :eid, :status, :host)"
                    ),
                    {"eid": eid, "status": status, "host": host},
                )
            for host, status in (("a", "pending"), ("b", "done")):
                conn.execute(
                    text(
                        "INSERT INTO run_hosts (run_id, host, status, claims) "
                        "VALUES (1, :host, :status, 0)"
                    ),
                    {"host": host, "status": status},
                )
        upgrade(engine)
        with engine.connect() as conn:
            counts = dict(conn.execute(text("SELECT host, pending_targets FROM run_hosts")).all())
        assert counts == {"a": 1, "b": 0}
    finally:
        engine.dispose()


def test_open_store_migrates_an_empty_database(store_url: str) -> None:
    with open_store(store_url) as store:
        assert revision_state(store.engine).at_head
    with open_store(store_url, migrate=False) as store:  # already at head: nothing to do
        assert revision_state(store.engine).at_head


def test_migrate_false_refuses_an_empty_database(store_url: str) -> None:
    with pytest.raises(StoreError, match="run `probe db upgrade`"):
        open_store(store_url, migrate=False)


def _stamp(engine: Engine, revision: str) -> None:
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = :rev"), {"rev": revision})


def test_refuses_a_newer_unknown_revision(store_url: str) -> None:
    engine = create_store_engine(store_url)
    try:
        upgrade(engine)
        _stamp(engine, "9999_from_the_future")
        for migrate in (True, False):
            with pytest.raises(StoreError) as info:
                open_store(store_url, migrate=migrate)
            message = str(info.value)
            assert "'9999_from_the_future'" in message
            assert "does not know" in message and "newer probe" in message
        with pytest.raises(StoreError, match="does not know"):
            upgrade(engine)
        with pytest.raises(StoreError, match="does not know"):
            downgrade(engine, "base")
    finally:
        engine.dispose()


def test_refuses_tables_without_a_revision(store_url: str) -> None:
    engine = create_store_engine(store_url)
    try:
        with engine.begin() as conn:
            metadata.create_all(conn)
        with pytest.raises(StoreError, match="no migration revision"):
            open_store(store_url)
    finally:
        engine.dispose()


def test_downgrade_to_unknown_revision_is_refused(store_url: str) -> None:
    engine = create_store_engine(store_url)
    try:
        upgrade(engine)
        with pytest.raises(StoreError, match="unknown revision 'nope'"):
            downgrade(engine, "nope")
        assert revision_state(engine).at_head
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_postgres_schema_isolation_keeps_alembic_version_in_the_test_schema(
    pg_admin: Engine,
) -> None:
    schema = "t_isolation_check"
    with pg_admin.connect() as conn:
        conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        with open_store(pg_schema_url(schema)):
            pass
        with pg_admin.connect() as conn:
            where = conn.execute(
                text(
                    "SELECT table_schema FROM information_schema.tables "
                    "WHERE table_name = 'alembic_version' AND table_schema = :s"
                ),
                {"s": schema},
            ).all()
            tables = conn.execute(
                text("SELECT table_name FROM information_schema.tables WHERE table_schema = :s"),
                {"s": schema},
            ).scalars()
            assert where == [(schema,)]
            assert set(tables) == ALL_TABLES | {"alembic_version"}
    finally:
        with pg_admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))


def test_migrations_found_from_any_working_directory(
    store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert migrations_dir().is_absolute()
    assert (migrations_dir() / "versions").is_dir()
    with open_store(store_url) as store:
        assert revision_state(store.engine).at_head


def test_missing_migrations_directory_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import probe.store.engine as engine_module

    fake = tmp_path / "site-packages" / "probe" / "store" / "engine.py"
    monkeypatch.setattr(engine_module, "__file__", str(fake))
    with pytest.raises(StoreError, match="cannot find probe's database migrations"):
        migrations_dir()
    monkeypatch.setenv(
        "PROBE_MIGRATIONS_DIR", str(Path(__file__).resolve().parents[2] / "migrations")
    )
    assert migrations_dir().name == "migrations"
