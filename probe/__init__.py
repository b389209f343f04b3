"""probe: conformance prober for US payer FHIR Patient Access APIs (CMS-9115-F)."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("probe")
except PackageNotFoundError:  # running from a source tree without install
    __version__ = "0.0.0+source"

__all__ = ["__version__"]
