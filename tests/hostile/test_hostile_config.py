"""Hostile archetypes in a fleet config: parameters, combinations and their own addresses."""

from __future__ import annotations

import pytest

from probe.fleet.app import Fleet
from probe.fleet.config import FleetConfigError, parse_fleet_config
from probe.fleet.hostile import request_scope
from probe.fleet.hostile_params import HOSTILE_PARAMS


def test_each_hostile_payer_gets_its_own_address_and_ordinary_payers_do_not_move() -> None:
    plain = parse_fleet_config({"hosts": 2, "payers": [{"slug": "a"}, {"slug": "b"}]})
    mixed = parse_fleet_config(
        {
            "hosts": 2,
            "payers": [
                {"slug": "t", "archetypes": ["trickle"]},
                {"slug": "a"},
                {"slug": "g", "archetypes": [{"gzip_bomb": {"decompressed_mb": 50}}]},
                {"slug": "b"},
            ],
        }
    )
    before, after = Fleet(plain, port=9), Fleet(mixed, port=9)
    assert after.addresses == ["127.0.0.2", "127.0.0.3"]
    assert after.hostile_addresses == ["127.0.1.1", "127.0.1.2"]
    assert after.base_url("t") == "http://127.0.1.1:9/payers/t/fhir"
    for slug in ("a", "b"):
        assert after.base_url(slug) == before.base_url(slug)
    assert after.site("t").alt_host in after.addresses


def test_every_hostile_archetype_parses_with_defaults() -> None:
    payers = [{"slug": f"h{i}", "archetypes": [name]} for i, name in enumerate(HOSTILE_PARAMS)]
    config = parse_fleet_config({"payers": payers})
    for payer in config.payers:
        assert payer.behaviour.hostile is not None
        assert payer.behaviour.hostile.name == payer.archetypes[0].name


@pytest.mark.parametrize(
    ("archetypes", "problem"),
    [
        (["trickle", "gzip_bomb"], "are all hostile servers"),
        (["never_answers", "flaky"], "cannot be combined with flaky"),
        ([{"huge_body": {"mb": 0}}], "greater than or equal to 1"),
        ([{"lying_length": {"declared": "sideways"}}], "declared"),
        ([{"trickle": {"scope": "everywhere"}}], "scope"),
    ],
)
def test_bad_hostile_configs_are_refused(archetypes: list[object], problem: str) -> None:
    with pytest.raises(FleetConfigError, match=problem):
        parse_fleet_config({"payers": [{"slug": "x", "archetypes": archetypes}]})


def test_request_scopes() -> None:
    assert request_scope("fhir/metadata") == "discovery"
    assert request_scope("fhir/.well-known/smart-configuration") == "discovery"
    assert request_scope("fhir/Patient/1/$everything") == "data"
    assert request_scope("oauth/token") == "token"
    assert request_scope("oauth/jwks") is None
