"""Shared pytest configuration: anyio on asyncio, and the path to ../shared."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[2] / "shared"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """The ../shared material (CI has it beside the clone)."""
    if not SHARED.is_dir():
        pytest.fail(f"{SHARED} is missing: tests read real payer documents from ../shared")
    return SHARED


@pytest.fixture(autouse=True)
def _forget_secrets() -> Iterator[None]:
    """Each test starts with an empty registry of live secrets (it is process-wide in probe, as
    a nightly run's secrets are; across tests it would scrub one test's words in another's)."""
    from probe.http.redact import KNOWN_SECRETS

    KNOWN_SECRETS.forget_all()
    yield
    KNOWN_SECRETS.forget_all()
