"""The bounds on one test-patient sync; hitting one is a finding, never a hang."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class SyncLimits:
    """Bounds on one sync; hitting one is a finding, never a hang."""

    page_size: int = 200
    max_pages: int = 500
    max_bytes: int = 500 * 1024 * 1024
    max_references: int = 2_000
    reference_concurrency: int = 4
    deadline_s: float = 900.0
    empty_pages_tolerated: int = 20
    validate: bool = True
