"""Shared pytest configuration: anyio on asyncio, and the path to ../shared."""

from __future__ import annotations

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
