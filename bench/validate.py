"""Benchmark: R4 validation, µs per resource, the previous validator beside the new one.

Validators, measured in one process, interleaved (each round runs every validator over the same
resources in turn), medians of the rounds:

* ``r4b``          - the previous ``probe/checks/r4_validation.py`` verbatim (read from git at
                     ``--old-commit``): fhir.resources R4B ``model_validate``; an exception it
                     raises counts as a rejection.
* ``probe``        - ``probe.checks.r4_validation.validate_r4`` now: jsonschema-rs on the official
                     FHIR R4 JSON Schema completed with fhir_rules.json; the root schema's oneOf
                     for every resource, then every problem of an invalid one named (per type).
* ``probe-sync``   - what ``probe sync`` does now: ``is_valid_r4`` for every resource, and
                     ``validate_r4`` for the first invalid resource of each type in the pass
                     (its one sample per type).
* ``schema-only``  - jsonschema-rs ``is_valid`` on the root schema *without* the added R4 rules
                     (what the schema alone catches, and what the rules cost).
* ``per-type``     - jsonschema-rs ``is_valid`` against ``#/definitions/<resourceType>`` (one
                     validator per type, built before the clock starts) instead of the root's oneOf,
                     with the R4 rules.
* ``fastjsonschema`` (``--fastjsonschema``) - the same completed schema compiled to Python by
                     fastjsonschema (a ~125 MB module, about a minute to generate and compile,
                     printed), called per type: the generated function of
                     ``#/definitions/<resourceType>`` (its root oneOf costs ~10 ms a resource).

Resource sets: ``synthea`` (tests/checks/data/synthea_patient.json.gz, 3,241 resources, all
valid) and ``real`` (every resource of ../shared/data/real: each document and Bundle entry, most
of them invalid, so the detail path is what is measured there). Besides speed, each validator's
verdicts are printed: how many of the real resources R4B rejects it flags too, what it flags
that R4B does not, and its false alarms on the Synthea patient. The one-time cost (import, load,
build) is measured in fresh processes.

The one-time build alone (``--builds``, CPU seconds in fresh processes, median of
``--cold-runs``, each with the schema's load and jsonschema-rs's import): the whole root
validator from the HL7 file as published and from the one probe runs (without descriptions),
the validator probe's warm-up builds now (the root reduced to the common resource types,
``fhir_schema.COMMON_TYPES``) and one reduced to the Synthea patient's types only, per-type
validators holding only the definitions each type reaches (nested resources cut:
``ResourceList`` true, validated on their own) for the Synthea patient's types, and the
per-type validator that names an invalid resource's problems, whole vs reduced.

    .venv/bin/python bench/validate.py                    # 7 rounds
    .venv/bin/python bench/validate.py --builds --cold-runs 7   # the one-time builds only
    .venv/bin/pip install fastjsonschema      # for --fastjsonschema only (not a dependency)
    .venv/bin/python bench/validate.py --rounds 7 --fastjsonschema   # + a minute, 3 GB
"""

from __future__ import annotations

import argparse
import copy
import gzip
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import time
import types
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
SYNTHEA = REPO / "tests" / "checks" / "data" / "synthea_patient.json.gz"
OLD_COMMIT = "4eb56d2"  # the last commit with the R4B validator

Validator = Callable[[dict[str, Any]], bool]  # True when the resource is flagged


def synthea_resources() -> list[dict[str, Any]]:
    bundle = json.loads(gzip.decompress(SYNTHEA.read_bytes()))
    return [entry["resource"] for entry in bundle["entry"]]


def real_resources() -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    root = SHARED / "data" / "real"
    for path in sorted(root.rglob("*.json")):
        doc = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(doc, dict) or "resourceType" not in doc:
            continue
        name = path.relative_to(root).as_posix()
        if doc["resourceType"] == "Bundle":
            for i, entry in enumerate(doc.get("entry", [])):
                if isinstance(entry.get("resource"), dict):
                    out[f"{name}#entry[{i}]"] = entry["resource"]
        else:
            out[name] = doc
    return out


def old_module(commit: str) -> types.ModuleType:
    """The previous r4_validation.py, verbatim from git, as a module."""
    source = subprocess.run(
        ["git", "show", f"{commit}:probe/checks/r4_validation.py"],
        cwd=REPO,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    module = types.ModuleType("r4_validation_r4b")
    sys.modules[module.__name__] = module
    exec(compile(source, f"{commit}:probe/checks/r4_validation.py", "exec"), module.__dict__)  # noqa: S102
    return module


def validators(commit: str, with_fastjsonschema: bool) -> dict[str, Validator]:
    import jsonschema_rs

    from probe.checks import fhir_schema
    from probe.checks.r4_validation import can_validate, is_valid_r4, validate_r4

    old = old_module(commit)

    def r4b(resource: dict[str, Any]) -> bool:
        if not old.can_validate(str(resource.get("resourceType", ""))):
            return False
        try:
            return bool(old.validate_r4(resource))
        except Exception:
            return True

    def probe(resource: dict[str, Any]) -> bool:
        return can_validate(str(resource.get("resourceType", ""))) and bool(validate_r4(resource))

    sampled: set[str] = set()  # reset before each pass (one_pass): a sync's one sample a type

    def probe_sync(resource: dict[str, Any]) -> bool:
        rtype = str(resource.get("resourceType", ""))
        if not can_validate(rtype) or is_valid_r4(resource):
            return False
        if rtype not in sampled:
            sampled.add(rtype)
            validate_r4(resource)
        return True

    probe_sync.reset = sampled.clear  # type: ignore[attr-defined]

    plain = json.loads(gzip.decompress(fhir_schema.SCHEMA_FILE.read_bytes()))
    plain_root = jsonschema_rs.validator_for(plain, offline=True)

    def schema_only(resource: dict[str, Any]) -> bool:
        return not plain_root.is_valid(resource)

    document = {k: v for k, v in fhir_schema._schema().document.items() if k != "oneOf"}
    per_type_validators: dict[str, Any] = {}

    def per_type(resource: dict[str, Any]) -> bool:
        rtype = str(resource.get("resourceType"))
        validator = per_type_validators.get(rtype)
        if validator is None:
            if rtype not in fhir_schema.resource_types():
                return True
            validator = jsonschema_rs.Draft7Validator(
                dict(document, allOf=[{"$ref": f"#/definitions/{rtype}"}]), offline=True
            )
            per_type_validators[rtype] = validator
        return not validator.is_valid(resource)

    out: dict[str, Validator] = {
        "r4b": r4b,
        "probe": probe,
        "probe-sync": probe_sync,
        "schema-only": schema_only,
        "per-type": per_type,
    }
    if with_fastjsonschema:
        draft7 = copy.deepcopy(fhir_schema._schema().document)  # fastjsonschema rewrites $refs
        draft7["$schema"] = "http://json-schema.org/draft-07/schema#"  # the rules' if/then
        out["fastjsonschema"] = fastjsonschema_validator(draft7)
    return out


def fastjsonschema_validator(document: dict[str, Any]) -> Validator:
    try:
        import fastjsonschema
    except ImportError:  # not a dependency of probe
        raise SystemExit("--fastjsonschema: .venv/bin/pip install fastjsonschema first") from None

    start = time.perf_counter()
    code = fastjsonschema.compile_to_code(document)
    generated = time.perf_counter() - start
    namespace: dict[str, Any] = {}
    exec(compile(code, "fastjsonschema_fhir", "exec"), namespace)  # noqa: S102
    print(
        f"fastjsonschema: code generated in {generated:.1f} s ({len(code) / 1e6:.0f} MB), "
        f"compiled in {time.perf_counter() - start - generated:.1f} s",
        flush=True,
    )
    entry = re.search(r"^def (validate\w*)\(", code, re.MULTILINE)  # the root schema's
    if entry is None:
        raise SystemExit("fastjsonschema generated no validate function")
    root = namespace[entry.group(1)]
    failure = fastjsonschema.JsonSchemaException

    def check(resource: dict[str, Any]) -> bool:
        # Dispatch on resourceType to the definition's own function (the root's oneOf runs
        # every one of the 146 definitions: about 10 ms a resource).
        rtype = resource.get("resourceType")
        validate = namespace.get(f"{entry.group(1)}__definitions_{str(rtype).lower()}", root)
        try:
            validate(resource)
        except failure:
            return True
        return False

    return check


def one_pass(check: Validator, resources: list[dict[str, Any]]) -> float:
    """µs per resource for one pass."""
    reset = getattr(check, "reset", None)
    if reset is not None:
        reset()
    start = time.perf_counter()
    for resource in resources:
        check(resource)
    return (time.perf_counter() - start) / len(resources) * 1e6


COLD = {
    "r4b": (
        "import sys, types, subprocess; src = subprocess.run(['git', 'show', "
        "'{commit}:probe/checks/r4_validation.py'], capture_output=True, text=True).stdout\n"
        "import time; t = time.perf_counter(); m = types.ModuleType('old'); "
        "sys.modules['old'] = m; exec(src, m.__dict__)\n"
        "for rt in {types}: m.can_validate(rt)\n"
        "m.validate_r4({{'resourceType': 'Patient'}})\n"
        "print(time.perf_counter() - t)"
    ),
    "probe": (
        "import time; t = time.perf_counter()\n"
        "from probe.checks.r4_validation import validate_r4\n"
        "validate_r4({{'resourceType': 'Patient'}})\n"
        "print(time.perf_counter() - t)"
    ),
}


BUILDS = {
    # name: code run in a fresh process, printing the CPU seconds of what it measures
    "whole root, HL7 file as published": (
        "import time\n"
        "from probe.checks import fhir_schema as fs\n"
        "fs.VALIDATION_SCHEMA_FILE = fs.SCHEMA_FILE\n"
        "t = time.process_time(); import jsonschema_rs\n"
        "jsonschema_rs.Draft7Validator(fs._schema().document, offline=True)\n"
        "print(time.process_time() - t)"
    ),
    "whole root, without descriptions (the warm-up before)": (
        "import time\n"
        "from probe.checks import fhir_schema as fs\n"
        "t = time.process_time(); import jsonschema_rs\n"
        "jsonschema_rs.Draft7Validator(fs._schema().document, offline=True)\n"
        "print(time.process_time() - t)"
    ),
    "common types' validator (probe's warm-up now)": (
        "import time\n"
        "from probe.checks import fhir_schema as fs\n"
        "t = time.process_time(); fs.warm(); print(time.process_time() - t)"
    ),
    "reduced to the Synthea patient's {n} types only": (
        "import time\n"
        "from probe.checks import fhir_schema as fs\n"
        "t = time.process_time(); fs._build_validator(frozenset({types})); "
        "print(time.process_time() - t)"
    ),
    "per type, reduced, the Synthea patient's {n} types": (
        "import time, jsonschema_rs\n"
        "from probe.checks import fhir_schema as fs\n"
        "t = time.process_time(); defs = fs._schema().document['definitions']\n"
        "for rt in {types}:\n"
        "    kept = {{d: defs[d] for d in fs._reached_definitions(rt)}}\n"
        "    jsonschema_rs.Draft7Validator({{'definitions': dict(kept, ResourceList=True), "
        "'$ref': '#/definitions/' + rt}}, offline=True)\n"
        "print(time.process_time() - t)"
    ),
    "naming problems: one type's validator, every definition (before)": (
        "import time\n"
        "from probe.checks import fhir_schema as fs\n"
        "fs._schema(); import jsonschema_rs\n"
        "fs._reached_definitions = lambda *names: list(fs._schema().document['definitions'])\n"
        "t = time.process_time(); fs._type_validator('ExplanationOfBenefit'); "
        "print(time.process_time() - t)"
    ),
    "naming problems: one type's validator, reduced (probe now)": (
        "import time\n"
        "from probe.checks import fhir_schema as fs\n"
        "fs._schema(); import jsonschema_rs\n"
        "t = time.process_time(); fs._type_validator('ExplanationOfBenefit'); "
        "print(time.process_time() - t)"
    ),
}


def build_costs(runs: int, resource_types: list[str]) -> None:
    """Print the one-time builds' CPU seconds (fresh processes, median of `runs`, interleaved)."""
    seconds: dict[str, list[float]] = {name: [] for name in BUILDS}
    for _ in range(runs):
        for name, code in BUILDS.items():
            out = subprocess.run(
                [sys.executable, "-c", code.format(types=repr(resource_types))],
                cwd=REPO, check=True, capture_output=True, text=True,
            ).stdout  # fmt: skip
            seconds[name].append(float(out.strip().splitlines()[-1]))
    print(f"date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
    print(f"machine: {machine()}")
    print(f"one-time builds, CPU ms, fresh processes, median of {runs} (min):\n")
    print("| build | CPU ms | min |\n|---|---:|---:|")
    for name, values in seconds.items():
        label = name.format(n=len(resource_types))
        print(f"| {label} | {statistics.median(values) * 1000:.1f} | {min(values) * 1000:.1f} |")


def cold_seconds(name: str, commit: str, resource_types: list[str]) -> float:
    code = COLD[name].format(commit=commit, types=repr(resource_types))
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, check=True, capture_output=True, text=True
    ).stdout
    return float(out.strip().splitlines()[-1])


def machine() -> str:
    cpu = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    return f"{platform.system()} {platform.machine()}, nproc {os.cpu_count()}, {cpu}, load {load}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--old-commit", default=OLD_COMMIT)
    parser.add_argument("--cold-runs", type=int, default=5)
    parser.add_argument("--fastjsonschema", action="store_true")
    parser.add_argument("--builds", action="store_true", help="the one-time builds only")
    args = parser.parse_args()
    if args.builds:
        build_costs(args.cold_runs, sorted({r["resourceType"] for r in synthea_resources()}))
        return 0

    synthea = synthea_resources()
    real = real_resources()
    real_list = list(real.values())
    checks = validators(args.old_commit, args.fastjsonschema)

    # Verdicts (and warm-up: every per-type and detail validator is built here).
    verdicts = {name: {k for k, r in real.items() if check(r)} for name, check in checks.items()}
    synthea_alarms = {name: sum(check(r) for r in synthea) for name, check in checks.items()}
    r4b = verdicts["r4b"]

    timings: dict[str, dict[str, list[float]]] = {
        name: {"synthea": [], "real": []} for name in checks
    }
    for _ in range(args.rounds):
        for name, check in checks.items():
            timings[name]["synthea"].append(one_pass(check, synthea))
            timings[name]["real"].append(one_pass(check, real_list))

    rtypes = sorted({r["resourceType"] for r in synthea})
    cold = {
        name: statistics.median(
            cold_seconds(name, args.old_commit, rtypes) for _ in range(args.cold_runs)
        )
        for name in COLD
    }

    print(f"date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
    print(f"machine: {machine()}")
    print(f"synthea: {len(synthea)} resources, {len(rtypes)} types; real: {len(real)} resources")
    print(f"R4B rejects {len(r4b)} real resources")
    header = (
        "| validator | synthea µs/resource | x vs r4b | real µs/resource | x vs r4b "
        "| flags of R4B's real rejects | flagged beyond R4B | Synthea false alarms |"
    )
    lines = [header, "|---|---:|---:|---:|---:|---:|---:|---:|"]
    base = statistics.median(timings["r4b"]["synthea"])
    base_real = statistics.median(timings["r4b"]["real"])
    for name in checks:
        syn = statistics.median(timings[name]["synthea"])
        rea = statistics.median(timings[name]["real"])
        flagged = verdicts[name]
        lines.append(
            f"| {name} | {syn:.1f} | {base / syn:.1f}x | {rea:.1f} | {base_real / rea:.1f}x | "
            f"{len(flagged & r4b)}/{len(r4b)} | {len(flagged - r4b)} | {synthea_alarms[name]} |"
        )
    print("\n".join(lines))
    for name in checks:
        missed = sorted(r4b - verdicts[name])
        if missed:
            print(f"{name} misses: {', '.join(missed)}")
        extra = sorted(verdicts[name] - r4b)
        if extra:
            print(f"{name} flags beyond R4B: {', '.join(extra)}")
    print(
        "one-time cost (fresh process, import + load + build + one resource, median of "
        f"{args.cold_runs}): "
        + ", ".join(f"{name} {seconds:.3f} s" for name, seconds in cold.items())
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
