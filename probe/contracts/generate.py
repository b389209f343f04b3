"""Generate the JSON Schemas (draft 2020-12) of probe's JSON outputs from their typed shapes.

``python -m probe.contracts.generate`` rewrites ``probe/contracts/schemas/*.schema.json``;
``--check`` rewrites nothing and exits 1 when a checked-in file differs from what the shapes
generate (the test suite runs the same comparison). ``make schemas`` runs the first.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import Any

from probe.contracts.shapes import TOP_LEVEL
from probe.contracts.versions import SCHEMA_VERSIONS, schema_id, schema_path

DRAFT = "https://json-schema.org/draft/2020-12/schema"


def _close(node: Any) -> None:
    """Close every object schema that declares properties (``additionalProperties: false``);
    descriptions lose the docstrings' reStructuredText double backquotes."""
    if isinstance(node, dict):
        if node.get("type") == "object" and "properties" in node:
            node.setdefault("additionalProperties", False)
        if isinstance(node.get("description"), str):
            node["description"] = node["description"].replace("``", "`")
        for value in node.values():
            _close(value)
    elif isinstance(node, list):
        for value in node:
            _close(value)


def _version_property(name: str) -> dict[str, Any]:
    major = SCHEMA_VERSIONS[name].split(".")[0]
    return {
        "type": "string",
        "pattern": rf"^{major}\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)$",
        "description": (
            f"The contract's version (semver). This schema accepts every {major}.x.y; "
            f"probe writes {SCHEMA_VERSIONS[name]}."
        ),
    }


def generate_schema(name: str) -> dict[str, Any]:
    """The JSON Schema of the contract `name`, generated from its typed shape."""
    from pydantic import TypeAdapter

    shape = TOP_LEVEL[name]
    schema: dict[str, Any] = TypeAdapter(shape).json_schema(mode="serialization")
    _close(schema)
    schema["properties"]["schema_version"] = _version_property(name)
    doc = (shape.__doc__ or "").strip().replace("``", "`")
    return {
        "$schema": DRAFT,
        "$id": schema_id(name),
        "title": f"probe {name} JSON output",
        "description": f"{doc} Schema version {SCHEMA_VERSIONS[name]}; see docs/contracts.md.",
        **{k: v for k, v in schema.items() if k not in ("title", "description")},
    }


def schema_text(name: str) -> str:
    """The checked-in text of the contract's schema: stable key order, two-space indent."""
    return json.dumps(generate_schema(name), indent=2, ensure_ascii=False, allow_nan=False) + "\n"


def stale_schemas() -> list[str]:
    """Names of the contracts whose checked-in schema differs from the generated one."""
    stale = []
    for name in TOP_LEVEL:
        path = schema_path(name)
        current = path.read_text(encoding="utf-8") if path.exists() else None
        if current != schema_text(name):
            stale.append(name)
    return stale


def main(argv: Sequence[str] | None = None) -> int:
    """Rewrite the checked-in schemas (or, with ``--check``, report the stale ones): exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args not in ([], ["--check"]):
        sys.stderr.write("usage: python -m probe.contracts.generate [--check]\n")
        return 2
    if args == ["--check"]:
        stale = stale_schemas()
        for name in stale:
            sys.stderr.write(
                f"{schema_path(name)} is stale: run python -m probe.contracts.generate\n"
            )
        return 1 if stale else 0
    for name in TOP_LEVEL:
        path = schema_path(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(schema_text(name), encoding="utf-8")
        sys.stdout.write(f"wrote {path}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
