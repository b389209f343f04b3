"""SQLite's write lock: a writer waiting for another connection's transaction tries again every
few milliseconds (not in SQLite's up-to-100 ms sleeps), gets the lock once it is free, and still
fails with "database is locked" after the busy timeout; the connection's busy timeout is kept."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

import probe.store.engine as engine_module
from probe.store.engine import create_store_engine


def _engine(path: Path):  # type: ignore[no-untyped-def]
    engine = create_store_engine(f"sqlite:///{path}")
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE IF NOT EXISTS t (n INTEGER)"))
    return engine


def test_a_waiting_writer_tries_again_and_gets_the_lock_once_the_holder_commits(
    tmp_path: Path,
) -> None:
    holder = _engine(tmp_path / "db.sqlite")
    waiter = _engine(tmp_path / "db.sqlite")
    holding = threading.Event()
    release = threading.Event()

    def hold() -> None:
        with holder.begin() as conn:
            conn.execute(text("INSERT INTO t VALUES (1)"))
            holding.set()
            release.wait(10)

    thread = threading.Thread(target=hold)
    thread.start()
    assert holding.wait(10)
    statements: list[str] = []
    timer = threading.Timer(0.1, release.set)  # the holder commits while the writer waits
    with waiter.connect() as conn:
        driver = conn.connection.driver_connection
        driver.set_trace_callback(statements.append)  # type: ignore[union-attr]
        timer.start()
        with conn.begin():
            conn.execute(text("INSERT INTO t VALUES (2)"))
        driver.set_trace_callback(None)  # type: ignore[union-attr]
        assert sorted(conn.scalars(text("SELECT n FROM t"))) == [1, 2]
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000
    thread.join(10)
    timer.join(10)
    # Tried again and again while the lock was held (SQLite's own handler would have slept).
    assert statements.count("BEGIN IMMEDIATE") >= 3, statements
    assert statements[0] == "PRAGMA busy_timeout=0"
    holder.dispose()
    waiter.dispose()


def test_a_lock_held_past_the_busy_timeout_is_still_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(engine_module, "_SQLITE_BUSY_TIMEOUT_S", 0.2)
    holder = _engine(tmp_path / "db.sqlite")
    waiter = _engine(tmp_path / "db.sqlite")
    with holder.begin() as conn:
        conn.execute(text("INSERT INTO t VALUES (1)"))
        with (
            pytest.raises(OperationalError, match="database is locked"),
            waiter.begin() as other,
        ):
            other.execute(text("INSERT INTO t VALUES (2)"))
    with waiter.connect() as conn:  # the waiter's connection works again, its timeout kept
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 200
        assert list(conn.scalars(text("SELECT n FROM t"))) == [1]
    holder.dispose()
    waiter.dispose()


def test_without_contention_one_begin_is_enough(tmp_path: Path) -> None:
    engine = _engine(tmp_path / "db.sqlite")
    statements: list[str] = []
    with engine.connect() as conn:
        driver = conn.connection.driver_connection
        driver.set_trace_callback(statements.append)  # type: ignore[union-attr]
        with conn.begin():
            conn.execute(text("INSERT INTO t VALUES (3)"))
        driver.set_trace_callback(None)  # type: ignore[union-attr]
    assert statements.count("BEGIN IMMEDIATE") == 1
    engine.dispose()
