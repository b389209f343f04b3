"""R4 cardinality the FHIR JSON Schema cannot express, extracted once into package data.

The official FHIR R4 JSON Schema (``probe/checks/data/fhir.schema.json.gz``) lists only complex
elements under ``required``: a required *primitive* element may be sent as its value (``code``)
or as its extension twin (``_code``), and a required *choice* element (``value[x]``) under one
of several names, neither of which ``required`` can say. Those rules come from the R4 (4.0.1)
StructureDefinitions as the fhir.resources 6.1.0 models carry them (``element_required=True``,
``one_of_many_required=True``). This module reads that wheel's model sources as text (``ast``,
nothing imported) and writes ``probe/checks/data/fhir_rules.json``, keyed by the schema's
definition names::

    python -m probe.checks.fhir_schema_rules UNPACKED_WHEEL/fhir/resources \
        probe/checks/data/fhir.schema.json.gz probe/checks/data/fhir_rules.json

The fhir.resources class of a backbone element is its parent's class name plus the element
name (``ExplanationOfBenefitAddItemDetail``) while the schema numbers repeated names
(``ExplanationOfBenefit_Detail1``), so the two are matched by walking the schema's properties
from each resource and data type, not by name.
"""

from __future__ import annotations

import ast
import gzip
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REF_PREFIX = "#/definitions/"


@dataclass
class ClassRules:
    """What one fhir.resources model class requires beyond the JSON Schema's ``required``."""

    primitives: list[str] = field(default_factory=list)  # required primitive element names
    choices: dict[str, list[str]] = field(default_factory=dict)  # required choice: prefix -> names


def _keyword(call: ast.Call, name: str) -> Any:
    for kw in call.keywords:
        if kw.arg == name and isinstance(kw.value, ast.Constant):
            return kw.value.value
    return None


def extract_class_rules(source: str) -> dict[str, ClassRules]:
    """The required primitive and choice elements of every model class in one module's source."""
    out: dict[str, ClassRules] = {}
    for node in ast.parse(source).body:
        if not isinstance(node, ast.ClassDef):
            continue
        rules = ClassRules()
        for stmt in node.body:
            if not isinstance(stmt, ast.AnnAssign) or not isinstance(stmt.value, ast.Call):
                continue
            call = stmt.value
            if not (isinstance(call.func, ast.Name) and call.func.id == "Field"):
                continue
            alias = _keyword(call, "alias")
            if not isinstance(alias, str):
                continue
            if _keyword(call, "element_required") is True:
                rules.primitives.append(alias)
            prefix = _keyword(call, "one_of_many")
            if isinstance(prefix, str) and _keyword(call, "one_of_many_required") is True:
                rules.choices.setdefault(prefix, []).append(alias)
        if rules.primitives or rules.choices:
            out[node.name] = rules
    return out


def extract_models(models_dir: Path) -> dict[str, ClassRules]:
    """Class rules of every model module in an unpacked fhir.resources ``fhir/resources``."""
    out: dict[str, ClassRules] = {}
    for path in sorted(models_dir.glob("*.py")):
        out.update(extract_class_rules(path.read_text(encoding="utf-8")))
    return out


def _ref_of(prop: dict[str, Any]) -> str | None:
    ref = prop.get("$ref") or (prop.get("items") or {}).get("$ref")
    if isinstance(ref, str) and ref.startswith(REF_PREFIX):
        return ref[len(REF_PREFIX) :]
    return None


def class_names_of_definitions(schema: dict[str, Any]) -> dict[str, str]:
    """Schema definition name -> fhir.resources class name, for resources, data types and
    every backbone element reachable from them."""
    definitions: dict[str, Any] = schema["definitions"]
    names: dict[str, str] = {}

    def walk(definition: str, class_name: str) -> None:
        if definition in names:
            return
        names[definition] = class_name
        for prop_name, prop in (definitions[definition].get("properties") or {}).items():
            target = _ref_of(prop)
            if target is not None and "_" in target and target in definitions:
                walk(target, class_name + prop_name[0].upper() + prop_name[1:])

    for definition in definitions:
        if "_" not in definition:
            walk(definition, definition)
    return names


def schema_rules(
    schema: dict[str, Any], classes: dict[str, ClassRules]
) -> dict[str, dict[str, Any]]:
    """The rules keyed by schema definition, keeping only elements the schema defines."""
    out: dict[str, dict[str, Any]] = {}
    for definition, class_name in sorted(class_names_of_definitions(schema).items()):
        rules = classes.get(class_name)
        if rules is None:
            continue
        props = schema["definitions"][definition].get("properties") or {}
        primitives = [p for p in rules.primitives if p in props]
        choices = {
            prefix: [n for n in members if n in props]
            for prefix, members in sorted(rules.choices.items())
        }
        choices = {k: v for k, v in choices.items() if v}
        entry: dict[str, Any] = {}
        if primitives:
            entry["required"] = primitives
        if choices:
            entry["choices"] = choices
        if entry:
            out[definition] = entry
    return out


def load_schema(path: Path) -> dict[str, Any]:
    """The JSON Schema at path (gzip when the name ends in .gz)."""
    raw = path.read_bytes()
    if path.suffix == ".gz":
        raw = gzip.decompress(raw)
    loaded: dict[str, Any] = json.loads(raw)
    return loaded


def main(argv: list[str]) -> int:
    """Write the rules file: ``MODELS_DIR SCHEMA OUT``."""
    if len(argv) != 3:
        print("usage: python -m probe.checks.fhir_schema_rules MODELS_DIR SCHEMA OUT")
        return 2
    models_dir, schema_path, out_path = (Path(a) for a in argv)
    rules = schema_rules(load_schema(schema_path), extract_models(models_dir))
    text = json.dumps(
        {"source": "fhir.resources 6.1.0 (FHIR R4 4.0.1 models)", "definitions": rules},
        indent=1,
        sort_keys=True,
        allow_nan=False,
    )
    out_path.write_text(text + "\n", encoding="utf-8")
    print(f"{len(rules)} definitions with rules written to {out_path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
