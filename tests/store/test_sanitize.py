"""Unit tests of what the store keeps out of the database."""

from __future__ import annotations

import enum
import math
from datetime import UTC, datetime

from probe.store.sanitize import scrub, storable_json, strip_text_secrets, strip_url_secrets


def test_strip_url_secrets_keeps_harmless_parameters_verbatim() -> None:
    url = "https://h.example/r4/Observation?patient=1&_count=50&date=ge2020-01-01%2000:00"
    assert strip_url_secrets(url) is url
    assert (
        strip_url_secrets("https://h.example/cb?code=abc&x=1#access_token=t&y=2")
        # unknown parameters' values are not stored (issue 18: `?t=<token>` reached the store)
        == "https://h.example/cb?code=REDACTED&x=REDACTED#access_token=REDACTED&y=REDACTED"
    )
    assert strip_url_secrets("https://u:p@h.example/") == "https://REDACTED@h.example/"
    assert strip_url_secrets("not a url ?token=x") == "not a url ?token=REDACTED"


def test_strip_text_secrets_finds_urls_inside_messages() -> None:
    text = "GET https://h.example/p?access_token=zzz failed; see https://h.example/ok"
    assert strip_text_secrets(text) == (
        "GET https://h.example/p?access_token=REDACTED failed; see https://h.example/ok"
    )


class Colour(enum.StrEnum):
    RED = "red"


def test_scrub_makes_anything_json_storable() -> None:
    out = scrub(
        {
            "when": datetime(2026, 1, 1, tzinfo=UTC),
            "colour": Colour.RED,
            "pair": (1, 2),
            "nan": math.nan,
            "blob": b"abc",
            "nul": "a\x00b",
            "long": "x" * 10_000,
            "client_secret": "s3cret",
            "nested": {"Authorization": "Bearer abc"},
            "obj": object,
        }
    )
    assert out["when"] == "2026-01-01T00:00:00+00:00"
    assert out["colour"] == "red" and out["pair"] == [1, 2] and out["nan"] == "nan"
    assert out["blob"] == "[3 bytes not stored]" and out["nul"] == "ab"
    assert out["long"].endswith("...[truncated]") and len(out["long"]) < 5000
    assert out["client_secret"] == "REDACTED" and out["nested"]["Authorization"] == "REDACTED"
    assert isinstance(out["obj"], str)


def test_scrub_keeps_capability_statements_but_not_patient_data() -> None:
    cap = {"resourceType": "CapabilityStatement", "fhirVersion": "4.0.1"}
    assert scrub({"cap": cap})["cap"] == cap
    assert scrub([{"resourceType": "Coverage", "id": "c", "payor": []}]) == [
        {"resourceType": "Coverage", "id": "c", "omitted": "resource body not stored"}
    ]


def test_storable_json_removes_what_postgres_rejects() -> None:
    assert storable_json({"a\x00": ["x\x00", math.inf, 1]}) == {"a": ["x", "inf", 1]}


def test_percent_encoded_secret_names_are_caught() -> None:
    assert (
        strip_url_secrets("https://h.example/x?a=1&acc%65ss_token=t0k")
        == "https://h.example/x?a=REDACTED&acc%65ss_token=REDACTED"
    )
    assert strip_url_secrets("https://h.example/x?date=a%20b") == "https://h.example/x?date=a%20b"
