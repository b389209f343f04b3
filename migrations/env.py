"""Alembic environment for probe's observation store.

probe runs migrations programmatically (`probe.store.engine`), passing an open connection in
``config.attributes["connection"]``. Run through the ``alembic`` command line instead (e.g.
``alembic revision --autogenerate``), the database comes from ``--db``-less resolution:
``sqlalchemy.url`` in the ini file if set, else ``PROBE_DATABASE_URL``, else ``sqlite:///probe.db``.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from probe.store.engine import create_store_engine, resolve_url
from probe.store.tables import metadata

config = context.config


def _configure(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_offline() -> None:
    """Emit the migration SQL for the configured database's dialect without connecting."""
    url = resolve_url(config.get_main_option("sqlalchemy.url") or None)
    context.configure(
        url=url,
        target_metadata=metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
        render_as_batch=url.get_backend_name() == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    """Run migrations on the connection probe passed in, or on a new one."""
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure(connection)
        return
    engine = create_store_engine(resolve_url(config.get_main_option("sqlalchemy.url") or None))
    try:
        with engine.begin() as conn:
            _configure(conn)
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
