"""The few statements whose SQL differs between SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import Connection, Table, insert
from sqlalchemy.dialects.postgresql import Insert as PgInsert
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import Insert as SqliteInsert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import DBAPIError

from probe.store.tables import Base

if TYPE_CHECKING:
    import psycopg


def upsert(conn: Connection, table: type[Base]) -> PgInsert | SqliteInsert:
    """An INSERT supporting ``on_conflict_do_nothing/do_update`` for the connection's backend."""
    if conn.dialect.name == "postgresql":
        return pg_insert(table)
    return sqlite_insert(table)


def bulk_insert(conn: Connection, model: type[Base], rows: Sequence[dict[str, Any]]) -> None:
    """Insert many rows with identical keys as fast as the backend allows.

    PostgreSQL: ``COPY ... FROM STDIN`` on the connection's own transaction (about twice as fast
    as executemany there). Elsewhere: one Core ``insert()`` executemany. Driver errors are
    raised as SQLAlchemy DBAPIErrors either way.
    """
    if not rows:
        return
    if conn.dialect.name != "postgresql":
        conn.execute(insert(model), list(rows))
        return
    columns = list(rows[0])
    table = model.__table__
    assert isinstance(table, Table)
    preparer = conn.dialect.identifier_preparer
    sql = (
        f"COPY {preparer.format_table(table)} "
        f"({', '.join(preparer.quote(c) for c in columns)}) FROM STDIN"
    )
    driver = cast("psycopg.Connection[Any]", conn.connection.driver_connection)
    dbapi = conn.dialect.loaded_dbapi
    try:
        with driver.cursor() as cursor, cursor.copy(sql) as copy:
            for row in rows:
                copy.write_row([row[c] for c in columns])
    except dbapi.Error as exc:
        raise DBAPIError.instance(
            sql,
            None,
            exc,
            dbapi.Error,
            connection_invalidated=bool(getattr(driver, "closed", False)),
            dialect=conn.dialect,
        ) from exc
