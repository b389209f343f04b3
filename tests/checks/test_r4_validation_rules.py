"""The shipped FHIR R4 JSON Schema (checksum, identity) and the R4 rules it cannot express:
the extractor (probe.checks.fhir_schema_rules) end to end on a small model package, and the
shipped rules file against the schema."""

from __future__ import annotations

import gzip
import hashlib
import json
import re
from pathlib import Path

from probe.checks import fhir_schema
from probe.checks.fhir_schema_rules import (
    class_names_of_definitions,
    extract_class_rules,
    load_schema,
    main,
)

SOURCE = fhir_schema.DATA / "fhir.schema.json.gz.source.txt"

MODEL_SOURCE = """
from pydantic import Field
from . import backboneelement, domainresource, fhirtypes


class Thing(domainresource.DomainResource):
    resource_type = Field("Thing", const=True)
    status: fhirtypes.Code = Field(None, alias="status", element_required=True)
    status__ext: fhirtypes.FHIRPrimitiveExtensionType = Field(None, alias="_status")
    note: fhirtypes.String = Field(None, alias="note")
    part: typing.List[fhirtypes.ThingPartType] = Field(None, alias="part")


class ThingPart(backboneelement.BackboneElement):
    resource_type = Field("ThingPart", const=True)
    valueString: fhirtypes.String = Field(
        None, alias="valueString", one_of_many="value", one_of_many_required=True
    )
    valueBoolean: bool = Field(
        None, alias="valueBoolean", one_of_many="value", one_of_many_required=True
    )
    onsetString: fhirtypes.String = Field(
        None, alias="onsetString", one_of_many="onset", one_of_many_required=False
    )
"""

SMALL_SCHEMA = {
    "definitions": {
        "Thing": {
            "properties": {
                "status": {"$ref": "#/definitions/code"},
                "note": {"$ref": "#/definitions/string"},
                "part": {"items": {"$ref": "#/definitions/Thing_Part"}, "type": "array"},
            }
        },
        "Thing_Part": {
            "properties": {
                "valueString": {"$ref": "#/definitions/string"},
                "valueBoolean": {"type": "boolean"},
                "onsetString": {"$ref": "#/definitions/string"},
            }
        },
        "code": {"type": "string"},
        "string": {"type": "string"},
    }
}


def test_shipped_schema_is_the_one_its_source_file_names() -> None:
    raw = gzip.decompress(fhir_schema.SCHEMA_FILE.read_bytes())
    text = SOURCE.read_text(encoding="utf-8")
    digests = re.findall(r"\b[0-9a-f]{64}\b", text)
    assert hashlib.sha256(raw).hexdigest() == digests[1]  # [0] is the wheel's
    assert f"{len(raw):,} bytes" in text
    schema = json.loads(raw)
    assert schema["id"] == fhir_schema.SCHEMA_ID
    assert len(schema["oneOf"]) == len(fhir_schema.resource_types()) == 146
    assert "CC0" in text


def test_extractor_reads_required_primitives_and_choices() -> None:
    rules = extract_class_rules(MODEL_SOURCE)
    assert rules["Thing"].primitives == ["status"]
    assert rules["Thing"].choices == {}
    assert rules["ThingPart"].primitives == []
    assert rules["ThingPart"].choices == {"value": ["valueString", "valueBoolean"]}


def test_backbone_definitions_are_matched_by_walking_the_schema() -> None:
    names = class_names_of_definitions(load_schema(fhir_schema.SCHEMA_FILE))
    # The schema numbers repeated backbone names; the models spell the whole path.
    assert names["ExplanationOfBenefit_Detail"] == "ExplanationOfBenefitItemDetail"
    assert names["ExplanationOfBenefit_Detail1"] == "ExplanationOfBenefitAddItemDetail"
    assert names["OperationOutcome_Issue"] == "OperationOutcomeIssue"
    assert len(names) == 680  # every definition reached


def test_extractor_end_to_end(tmp_path: Path) -> None:
    models = tmp_path / "resources"
    models.mkdir()
    (models / "thing.py").write_text(MODEL_SOURCE, encoding="utf-8")
    schema_path = tmp_path / "schema.json.gz"
    schema_path.write_bytes(gzip.compress(json.dumps(SMALL_SCHEMA).encode()))
    out = tmp_path / "rules.json"
    assert main([str(models), str(schema_path), str(out)]) == 0
    written = json.loads(out.read_text(encoding="utf-8"))
    assert written["definitions"] == {
        "Thing": {"required": ["status"]},
        "Thing_Part": {"choices": {"value": ["valueString", "valueBoolean"]}},
    }
    assert main([]) == 2


def test_shipped_rules_name_only_what_the_schema_defines() -> None:
    schema = load_schema(fhir_schema.SCHEMA_FILE)
    rules = json.loads(fhir_schema.RULES_FILE.read_text(encoding="utf-8"))["definitions"]
    assert rules["OperationOutcome_Issue"] == {"required": ["code", "severity"]}
    assert rules["Extension"] == {"required": ["url"]}
    assert sorted(rules["ExplanationOfBenefit"]["required"]) == [
        "created",
        "outcome",
        "status",
        "use",
    ]
    for definition, spec in rules.items():
        props = schema["definitions"][definition]["properties"]
        assert all(e in props for e in spec.get("required", [])), definition
        for members in spec.get("choices", {}).values():
            assert all(m in props for m in members), (definition, members)
    assert sum(len(s.get("required", [])) for s in rules.values()) == 420
    assert sum(len(s.get("choices", {})) for s in rules.values()) == 48


def test_every_reference_in_the_completed_schema_is_local() -> None:
    """The validators are built offline; a reference leaving the document would fail to build
    rather than reach the network."""
    refs: list[str] = []

    def walk(node: object) -> None:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str):
                refs.append(ref)
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(fhir_schema._schema().document)
    assert len(refs) > 10_000
    assert [r for r in refs if not r.startswith("#/definitions/")] == []
