"""The fleet config: validation with clear errors, generation, determinism."""

from __future__ import annotations

from pathlib import Path

import pytest

from probe.fleet.archetypes import HOSTILE, ArchetypeName
from probe.fleet.config import (
    FleetConfigError,
    default_config,
    load_fleet_config,
    parse_fleet_config,
)


def _problems(data: object) -> str:
    with pytest.raises(FleetConfigError) as info:
        parse_fleet_config(data, "fleet.yaml")
    return "\n".join(info.value.problems)


def test_archetype_shorthand_and_params() -> None:
    config = parse_fleet_config(
        {
            "payers": [
                {
                    "slug": "acme",
                    "archetypes": ["slow", {"rate_limited": {"every": 3, "retry_after": 2}}],
                }
            ]
        }
    )
    behaviour = config.payers[0].behaviour
    assert behaviour.slow is not None
    assert behaviour.rate_limited is not None
    assert behaviour.rate_limited.every == 3
    assert behaviour.names == (ArchetypeName.SLOW, ArchetypeName.RATE_LIMITED)


def test_unknown_archetype_is_named() -> None:
    problems = _problems({"payers": [{"slug": "a", "archetypes": ["sluggish"]}]})
    assert "fleet.yaml: payers.0.archetypes.0" in problems
    assert "sluggish" in problems


def test_bad_parameter_is_named() -> None:
    problems = _problems(
        {"payers": [{"slug": "a", "archetypes": [{"rate_limited": {"every": 0}}]}]}
    )
    assert "rate_limited.every" in problems
    problems = _problems({"payers": [{"slug": "a", "archetypes": [{"slow": {"median": 5}}]}]})
    assert "slow.median" in problems


def test_clashing_archetypes_and_duplicates() -> None:
    assert "pick one" in _problems(
        {"payers": [{"slug": "a", "archetypes": ["legacy_stu3", "r4_400"]}]}
    )
    assert "appears twice" in _problems({"payers": [{"slug": "a"}, {"slug": "a"}]})
    assert "host 5" in _problems({"hosts": 2, "payers": [{"slug": "a", "host": 5}]})
    assert "huge_patient.patient" in _problems(
        {"payers": [{"slug": "a", "patients": 1, "archetypes": [{"huge_patient": {"patient": 3}}]}]}
    )
    assert "Extra inputs" in _problems({"payers": [{"slug": "a", "colour": "red"}]})


def test_load_from_file(tmp_path: Path) -> None:
    path = tmp_path / "fleet.yaml"
    path.write_text("seed: 3\nhosts: 2\npayers:\n  - slug: acme\n    archetypes: [flaky]\n")
    assert load_fleet_config(path).payers[0].behaviour.flaky is not None
    path.write_text("payers: [\n")
    with pytest.raises(FleetConfigError, match="YAML syntax"):
        load_fleet_config(path)


def test_generate_is_seeded() -> None:
    spec = {"seed": 11, "generate": {"count": 200}}
    first = parse_fleet_config(spec).all_payers
    again = parse_fleet_config(spec).all_payers
    other = parse_fleet_config({"seed": 12, "generate": {"count": 200}}).all_payers
    assert [p.model_dump() for p in first] == [p.model_dump() for p in again]
    assert [p.model_dump() for p in first] != [p.model_dump() for p in other]
    kinds = {name for p in first for name in p.behaviour.names}
    assert len(kinds) > 10


def test_default_config_has_every_archetype() -> None:
    config = default_config()
    names = {name for p in config.payers for name in p.behaviour.names}
    # Hostile servers (tests/hostile) are never in the zoo that `probe fleet serve` starts.
    assert names == set(ArchetypeName) - HOSTILE


def test_host_override_revalidates() -> None:
    from probe.fleet.serve import with_hosts

    config = parse_fleet_config(
        {"hosts": 4, "payers": [{"slug": "a", "archetypes": [{"slow": {"median_ms": 5}}]}]}
    )
    assert with_hosts(config, 2).hosts == 2
    assert with_hosts(config, 2).payers[0].behaviour.slow is not None
    with pytest.raises(ValueError):
        with_hosts(parse_fleet_config({"hosts": 4, "payers": [{"slug": "a", "host": 3}]}), 2)
