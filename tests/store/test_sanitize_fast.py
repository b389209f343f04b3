"""The fast paths of the store's sanitizing (issue 17) change nothing that is stored.

`Scrubber` (one per endpoint's checks, each distinct string cleaned once, the common types
first) and `storable_document` (a document checked once as its canonical JSON text) are
compared with the string-by-string reference they replaced, on ordinary and hostile values,
with the registry of live secrets empty and full.
"""

from __future__ import annotations

import base64
import enum
import json
import math
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import pytest

from probe.http.redact import KNOWN_SECRETS, register_secret
from probe.store.sanitize import (
    MAX_DEPTH,
    MAX_STRING,
    PUBLIC_RESOURCE_TYPES,
    REDACTED,
    SECRET_KEYS,
    Scrubber,
    canonical_json,
    clean_text,
    content_hash,
    scrub,
    storable_document,
    storable_json,
    strip_text_secrets,
)

SECRET = "s3cr3t/Tok+en=value-0123456789"
LINES = "first-line-part\r\nsecond-line-part"


class Colour(enum.Enum):
    RED = "red"


def _reference_scrub(value: Any, depth: int = 0) -> Any:
    """The string-by-string scrub that the Scrubber replaced."""
    if depth > MAX_DEPTH:
        return "[nested too deep]"
    if isinstance(value, enum.Enum):
        return _reference_scrub(value.value, depth)
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, str):
        return _reference_str(value)
    if isinstance(value, bytes):
        return f"[{len(value)} bytes not stored]"
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        if "resourceType" in value and value["resourceType"] not in PUBLIC_RESOURCE_TYPES:
            return scrub(value)  # the stub is shared, not under test here
        out: dict[str, Any] = {}
        for key, item in value.items():
            name = _reference_str(str(key.value if isinstance(key, enum.Enum) else key))
            if name.lower() in SECRET_KEYS and isinstance(item, str | int | float):
                out[name] = REDACTED
            else:
                out[name] = _reference_scrub(item, depth + 1)
        return out
    if isinstance(value, list | tuple | set | frozenset):
        return [_reference_scrub(item, depth + 1) for item in value]
    return _reference_str(str(value))


def _reference_str(value: str) -> str:
    value = strip_text_secrets(value)
    return value[:MAX_STRING] + "...[truncated]" if len(value) > MAX_STRING else value


def _reference_storable(value: Any) -> Any:
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {clean_text(str(k)): _reference_storable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_reference_storable(v) for v in value]
    return value


def _nested(depth: int) -> Any:
    value: Any = {"leaf": "text", "n": 1, "none": None}
    for i in range(depth):
        value = {f"level{i}": value, "url": "https://h.example/x?token=t"}
    return value


def _secret_forms(secret: str) -> list[str]:
    raw = secret.encode()
    return [
        secret,
        quote(secret, safe=""),
        base64.b64encode(raw).decode(),
        base64.urlsafe_b64encode(raw).decode().rstrip("="),
        secret.replace("/", "\\/"),
    ]


EVIDENCE: list[Any] = [
    {"url": "https://h.example/fhir/metadata", "method": "GET", "http_status": 200},
    {"url": "https://u:p@h.example/cb?code=abc&_count=5", "note": "a\x00b", "s": "x\ud800y"},
    {"header": "Authorization: Bearer abcdefghijklmnopqrstuvwxyz012345", "b": "BaSiC  " * 3},
    {"client_secret": "s", "Private_Key": 5, "token": "kept: not a secret key in JSON"},
    {"long": "y" * (MAX_STRING + 10), "short": "ab", "empty": "", "f": math.nan, "g": 1.5},
    {Colour.RED: Colour.RED, 7: (1, 2), "when": datetime(2026, 1, 1, tzinfo=UTC), "b": b"zz"},
    {"cap": {"resourceType": "CapabilityStatement", "url": "https://h.example/?state=1"}},
    {"res": [{"resourceType": "Patient", "id": "p", "name": "Jane"}]},
    _nested(MAX_DEPTH + 3),
    ["echo " + form for form in _secret_forms(SECRET)] + [LINES, json.dumps(LINES)],
    {"same": "GET", "again": "GET", "url": "https://h.example/?access_token=zz"},
]


@pytest.fixture(params=["empty registry", "secrets registered"])
def registry(request: pytest.FixtureRequest) -> bool:
    """Run with no live secret, and with two registered (restored by tests/conftest.py)."""
    if request.param == "secrets registered":
        register_secret(SECRET)
        register_secret(LINES)
        return True
    return False


@pytest.mark.parametrize("value", EVIDENCE, ids=range(len(EVIDENCE)))
def test_scrubber_stores_what_string_by_string_scrubbing_stored(registry: bool, value: Any) -> None:
    expected = _reference_scrub(value)
    assert scrub(value) == expected
    shared = Scrubber()  # one scrubber for several values, as the writer uses it
    assert [shared.scrub(value), shared.scrub(value)] == [expected, expected]
    if registry:
        stored = json.dumps(scrub(value), ensure_ascii=False)
        for form in _secret_forms(SECRET):
            assert form not in stored


def test_scrubber_text_is_strip_text_secrets(registry: bool) -> None:
    scrubber = Scrubber()
    for text in ["plain", "see https://h.example/?code=x", "Bearer " + "a" * 20, SECRET, "\x00"]:
        assert scrubber.text(text) == strip_text_secrets(text)


DOCUMENTS: list[Any] = [
    {"resourceType": "CapabilityStatement", "fhirVersion": "4.0.1", "rest": [{"mode": "server"}]},
    {"issuer": "https://h.example", "description": 'two\nlines with a "quote" and \\ slash'},
    {"a\x00": ["x\x00", math.inf, 1], "nan": math.nan},
    {"lone": "x\ud800y", "k\udfff": 1},
    {"echo": f"client_secret={SECRET}", "raw": LINES, "escaped": json.dumps(LINES)},
    {"b64": base64.b64encode(SECRET.encode()).decode(), "pct": quote(SECRET, safe="")},
    {"slash": SECRET.replace("/", "\\/"), "n": None, "t": True, "f": 0.1},
    {"auth": "Bearer\nabcdefghijklmnopqrstuvwxyz", "basic": "basic\tQWxhZGRpbjpvcGVuIHNlc2FtZQ=="},
    {"split": "s3cr3t/Tok+en", "other": "=value-0123456789"},  # a secret only across strings
    {"tuple": (1, "two"), "nested": [[{"deep": ["x"]}]]},
]


@pytest.mark.parametrize("document", DOCUMENTS, ids=range(len(DOCUMENTS)))
def test_storable_document_stores_what_string_by_string_cleaning_stored(
    registry: bool, document: Any
) -> None:
    clean, digest = storable_document(document)
    expected = _reference_storable(document)
    assert clean == expected or json.loads(canonical_json(clean)) == expected
    assert digest == content_hash(expected)
    assert storable_json(document) == clean
    if registry:
        stored = canonical_json(clean)
        for form in _secret_forms(SECRET):
            assert form not in stored
        assert "first-line-part" not in stored and "second-line-part" not in stored


def test_storable_document_keys_that_are_not_strings_are_stored_as_json_writes_them() -> None:
    assert storable_json({True: 1, None: 2, 3: 3, 1.5: 4, "x": "\x00"}) == {
        "true": 1,
        "null": 2,
        "3": 3,
        "1.5": 4,
        "x": "",
    }
    assert storable_document({True: 1, None: 2})[1] == content_hash({"true": 1, "null": 2})


def test_a_secret_registered_after_a_document_was_cleaned_is_removed_from_the_next() -> None:
    document = {"echo": "late-secret-value-42"}
    assert storable_json(document) == document
    register_secret("late-secret-value-42")
    assert storable_json(document) == {"echo": REDACTED}
    assert KNOWN_SECRETS.scrub("late-secret-value-42") == REDACTED
