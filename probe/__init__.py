"""probe: conformance prober for US payer FHIR Patient Access APIs (CMS-9115-F)."""

from __future__ import annotations

from functools import cache

__all__ = ["__version__"]


@cache
def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("probe")
    except PackageNotFoundError:  # running from a source tree without install
        return "0.0.0+source"


def __getattr__(name: str) -> str:
    """``probe.__version__``, read from the installed metadata on first use (not at start-up)."""
    if name == "__version__":
        return _version()
    raise AttributeError(f"module 'probe' has no attribute {name!r}")
