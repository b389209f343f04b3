"""The JSON output contracts by name, with the schema version each output carries.

Light on purpose: the CLI commands import it to stamp ``schema_version`` on their JSON, and
``probe --help`` must stay fast. The versioning rule is in docs/contracts.md: a change that
can break a consumer (a field removed, renamed or retyped, a value newly allowed where a
consumer could not expect it) bumps the major version; a new field or a new enum value bumps
the minor version; a fix of wording or of the description bumps the patch version.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

#: Every JSON output that is a stable contract: ``probe NAME --format json``.
CONTRACTS: Final = ("check", "sync", "score", "history", "drift", "prerelease", "authorize")

#: The ``schema_version`` each output carries (semantic versioning; see the module docstring).
SCHEMA_VERSIONS: Final[dict[str, str]] = {
    "check": "1.0.0",
    "sync": "1.0.0",
    "score": "1.0.0",
    "history": "1.0.0",
    "drift": "1.0.0",
    "prerelease": "1.0.0",
    "authorize": "1.0.0",
}

#: Where the checked-in schemas live (package data: installed users can read them).
SCHEMA_DIR: Final = Path(__file__).parent / "schemas"


def schema_path(name: str) -> Path:
    """The checked-in JSON Schema file of the contract `name` (``check``, ``sync``, ...)."""
    if name not in SCHEMA_VERSIONS:
        raise KeyError(f"no JSON output contract named {name!r}")
    return SCHEMA_DIR / f"{name}.schema.json"


def schema_id(name: str) -> str:
    """The ``$id`` of the contract's schema: a URN naming the contract and its major version."""
    major = SCHEMA_VERSIONS[name].split(".")[0]
    return f"urn:probe:contract:{name}:v{major}"
