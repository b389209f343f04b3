"""Output for machines: the JSON contracts (``--format json``) and SARIF (``--format sarif``).

Every JSON output goes through :func:`contract_json`: it carries ``schema_version`` first (the
contracts and their schemas are in ``probe/contracts/``; docs/contracts.md), every string is
made safe (no known secret, no control character) and the JSON is strict (no NaN or Infinity:
a non-finite number is written as null; ``allow_nan=False`` guarantees none slips through).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from probe.cli.safe_text import safe_json
from probe.models import finite_json


def strict_json(data: Any) -> str:
    """`data` as strict, pretty-printed JSON with every string made safe."""
    return json.dumps(
        finite_json(safe_json(data)), indent=2, ensure_ascii=False, allow_nan=False, default=str
    )


def contract_json(name: str, data: Mapping[str, Any]) -> str:
    """The JSON text of the output contract `name` (``check``, ``score``, ...) for `data`."""
    from probe.contracts.versions import SCHEMA_VERSIONS

    return strict_json({"schema_version": SCHEMA_VERSIONS[name], **data})
