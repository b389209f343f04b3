"""Crawl tests use the store fixtures: every test runs on SQLite and on the real PostgreSQL."""

from tests.store.conftest import pg_admin, store, store_url  # noqa: F401
