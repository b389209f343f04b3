"""Database URL resolution, password hiding and per-backend connection settings."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from probe.store.engine import (
    DEFAULT_URL,
    ENV_VAR,
    create_store_engine,
    open_store,
    resolve_url,
    safe_url,
)
from probe.store.errors import StoreError


def test_default_and_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_VAR, raising=False)
    assert str(resolve_url()) == DEFAULT_URL == "sqlite:///probe.db"
    monkeypatch.setenv(ENV_VAR, "sqlite:////tmp/x.db")
    assert str(resolve_url()) == "sqlite:////tmp/x.db"
    assert str(resolve_url("sqlite:///given.db")) == "sqlite:///given.db"  # --db wins


@pytest.mark.parametrize(
    "raw",
    [
        "postgresql://u@h/db",
        "postgres://u@h/db",
        "postgresql+psycopg://u@h/db",
        "postgresql+psycopg2://u@h/db",
    ],
)
def test_postgres_urls_use_psycopg3(raw: str) -> None:
    assert resolve_url(raw).drivername == "postgresql+psycopg"


@pytest.mark.parametrize("raw", ["mysql://u@h/db", "postgresql+asyncpg://u@h/db", "nonsense"])
def test_unsupported_urls_are_refused(raw: str) -> None:
    with pytest.raises(StoreError):
        resolve_url(raw)


def test_passwords_are_hidden() -> None:
    assert safe_url("postgresql://bob:hunter2@db.example/probe") == (
        "postgresql://bob:***@db.example/probe"
    )
    with pytest.raises(StoreError) as info:
        resolve_url("mysql://bob:hunter2@db.example/probe")
    assert "hunter2" not in str(info.value)


def test_unreachable_database_is_a_clear_error_without_password() -> None:
    with pytest.raises(StoreError) as info:
        open_store("postgresql://bob:hunter2@127.0.0.1:1/probe")
    message = str(info.value)
    assert "cannot use the database postgresql+psycopg://bob:***@127.0.0.1:1/probe" in message
    assert "hunter2" not in message


def test_sqlite_runs_in_wal_with_foreign_keys(tmp_path: object) -> None:
    engine = create_store_engine(f"sqlite:///{tmp_path}/wal.db")
    try:
        with engine.connect() as conn:
            assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
            assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
    finally:
        engine.dispose()


def test_sqlite_in_a_missing_directory_is_a_clear_error(tmp_path: object) -> None:
    with pytest.raises(StoreError, match="cannot use the database"):
        open_store(f"sqlite:///{tmp_path}/no/such/dir/probe.db")
