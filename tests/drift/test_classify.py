"""The change classifier: every category, both ways, with the right kind and a stable id."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from probe.drift.classify import (
    Change,
    ChangeKind,
    classify,
    classify_capability,
    classify_jwks,
    classify_smart,
    counts_by_kind,
    relative_url,
)
from probe.drift.settings import DriftThresholds
from probe.drift.snapshot import EndpointSnapshot, Fetched, JwksKey, KeySet, SyncFacts
from probe.fleet.archetypes import resolve
from probe.fleet.documents import PayerUrls, capability_statement, smart_configuration

BASE = "https://fhir.payer.example/r4"
B, N, C = ChangeKind.BREAKING, ChangeKind.NOTABLE, ChangeKind.COSMETIC


def urls(base: str = BASE) -> PayerUrls:
    root = base.rsplit("/", 1)[0]
    return PayerUrls(
        base=base,
        authorize=f"{root}/oauth/authorize",
        token=f"{root}/oauth/token",
        revoke=f"{root}/oauth/revoke",
        jwks=f"{root}/oauth/jwks",
        name="Payer",
    )


def cs(base: str = BASE) -> dict[str, Any]:
    return capability_statement(urls(base), resolve([]))


def smart(base: str = BASE) -> dict[str, Any]:
    return smart_configuration(urls(base), resolve([]))


def by_id(changes: list[Change]) -> dict[str, Change]:
    ids = [c.id for c in changes]
    assert len(ids) == len(set(ids)), f"change ids repeat: {ids}"
    return {c.id: c for c in changes}


def kinds(changes: list[Change]) -> dict[str, ChangeKind]:
    return {c.id: c.kind for c in by_id(changes).values()}


def resource(doc: dict[str, Any], rtype: str) -> dict[str, Any]:
    return next(r for r in doc["rest"][0]["resource"] if r["type"] == rtype)


# -- CapabilityStatement ------------------------------------------------------------------------


def test_identical_documents_have_no_changes() -> None:
    assert classify_capability(cs(), cs()) == []
    assert classify_smart(smart(), smart()) == []


def test_resource_type_removed_is_breaking_and_added_is_notable() -> None:
    before, after = cs(), cs()
    after["rest"][0]["resource"] = [
        r for r in after["rest"][0]["resource"] if r["type"] != "Immunization"
    ]
    removed = by_id(classify_capability(before, after))["capability.resource.removed:Immunization"]
    assert removed.kind is B
    assert removed.path == "/rest[mode=server]/resource[type=Immunization]"
    assert (removed.before, removed.after) == ("Immunization", None)
    assert "no longer declared" in removed.reason
    assert kinds(classify_capability(after, before)) == {
        "capability.resource.added:Immunization": N
    }


def test_interaction_removed_and_added_per_resource_and_system() -> None:
    before, after = cs(), cs()
    resource(after, "Coverage")["interaction"] = [{"code": "read"}]
    after["rest"][0]["interaction"] = [{"code": "transaction"}]
    assert kinds(classify_capability(before, after)) == {
        "capability.interaction.removed:Coverage.search-type": B,
        "capability.interaction.added:system.transaction": N,
    }
    assert kinds(classify_capability(after, before)) == {
        "capability.interaction.added:Coverage.search-type": N,
        "capability.interaction.removed:system.transaction": B,
    }


def test_search_param_removed_added_and_retyped() -> None:
    before, after = cs(), cs()
    eob = resource(after, "ExplanationOfBenefit")
    eob["searchParam"] = [p for p in eob["searchParam"] if p["name"] != "service-date"]
    eob["searchParam"].append({"name": "provider", "type": "reference"})
    next(p for p in eob["searchParam"] if p["name"] == "type")["type"] = "string"
    found = kinds(classify_capability(before, after))
    assert found == {
        "capability.search_param.removed:ExplanationOfBenefit.service-date": B,
        "capability.search_param.added:ExplanationOfBenefit.provider": N,
        "capability.search_param.type_changed:ExplanationOfBenefit.type": B,
    }


def test_operation_removed_added_and_redefined() -> None:
    before, after = cs(), cs()
    resource(after, "Patient").pop("operation")
    after["rest"][0]["operation"] = [
        {"name": "export", "definition": "http://x/OperationDefinition/export"}
    ]
    assert kinds(classify_capability(before, after)) == {
        "capability.operation.removed:Patient.everything": B,
        "capability.operation.added:system.export": N,
    }
    assert kinds(classify_capability(after, before)) == {
        "capability.operation.added:Patient.everything": N,
        "capability.operation.removed:system.export": B,
    }
    redefined = cs()
    resource(redefined, "Patient")["operation"][0]["definition"] = (
        "http://other/OperationDefinition/everything"
    )
    assert kinds(classify_capability(before, redefined)) == {
        "capability.operation.definition_changed:Patient.everything": N
    }


def test_profile_removed_is_breaking_and_added_is_notable() -> None:
    before, after = cs(), cs()
    profile = resource(before, "Coverage")["supportedProfile"][0]
    resource(after, "Coverage")["supportedProfile"] = []
    cid = f"capability.profile.removed:Coverage|{profile}"
    assert kinds(classify_capability(before, after)) == {cid: B}
    assert kinds(classify_capability(after, before)) == {cid.replace("removed", "added"): N}


def test_fhir_version_change_is_breaking_both_ways() -> None:
    before, after = cs(), cs()
    after["fhirVersion"] = "4.3.0"
    change = by_id(classify_capability(before, after))["capability.fhir_version.changed"]
    assert (change.kind, change.before, change.after) == (B, "4.0.1", "4.3.0")
    assert kinds(classify_capability(after, before)) == {"capability.fhir_version.changed": B}


def test_json_format_removed_is_breaking_other_formats_notable() -> None:
    before, after = cs(), cs()
    after["format"] = ["xml"]
    assert kinds(classify_capability(before, after)) == {
        "capability.format.removed:json": B,
        "capability.format.removed:application/fhir+json": B,
        "capability.format.added:xml": N,
    }
    assert (
        kinds(
            classify_capability(after, cs() | {"format": ["json", "xml", "application/fhir+json"]})
        )["capability.format.added:json"]
        is N
    )
    assert kinds(
        classify_capability(cs() | {"format": ["json", "xml"]}, cs() | {"format": ["json"]})
    ) == {"capability.format.removed:xml": N}


def test_text_dates_and_versions_are_cosmetic() -> None:
    before, after = cs(), cs()
    after.update(description="New words", date="2026-01-01", version="2.0.0", title="Renamed")
    after["software"]["version"] = "9.9"
    after["implementation"]["description"] = "another description"
    found = kinds(classify_capability(before, after))
    assert found == {
        "capability.field.changed:date": C,
        "capability.field.changed:description": C,
        "capability.field.changed:title": C,
        "capability.field.changed:version": C,
        "capability.software.changed:version": C,
        "capability.implementation.changed:description": C,
    }
    assert set(kinds(classify_capability(after, before)).values()) == {C}


def test_server_software_and_statement_status_are_notable() -> None:
    before, after = cs(), cs()
    after["software"]["name"] = "Another FHIR server"
    after["status"] = "retired"
    assert kinds(classify_capability(before, after)) == {
        "capability.software.name_changed": N,
        "capability.status.changed": N,
    }


def test_oauth_uris_token_and_authorize_changes_are_breaking_revoke_notable() -> None:
    before, after = cs(), cs()
    ext = after["rest"][0]["security"]["extension"][0]["extension"]
    ext[1]["valueUri"] = "https://fhir.payer.example/oauth2/token"
    ext[2]["valueUri"] = "https://fhir.payer.example/oauth2/revoke"
    found = by_id(classify_capability(before, after))
    assert found["capability.oauth_uri.changed:token"].kind is B
    assert (
        found["capability.oauth_uri.changed:token"].after
        == "https://fhir.payer.example/oauth2/token"
    )
    assert found["capability.oauth_uri.changed:revoke"].kind is N
    dropped = cs()
    dropped["rest"][0]["security"]["extension"][0]["extension"] = ext[1:]
    assert kinds(classify_capability(after, dropped)) == {
        "capability.oauth_uri.removed:authorize": B
    }
    assert kinds(classify_capability(dropped, after)) == {"capability.oauth_uri.added:authorize": N}


def test_cors_disabled_is_breaking_enabled_notable() -> None:
    before, after = cs(), cs()
    after["rest"][0]["security"]["cors"] = False
    assert kinds(classify_capability(before, after)) == {"capability.cors.disabled": B}
    assert kinds(classify_capability(after, before)) == {"capability.cors.enabled": N}


def test_rest_server_removed_is_breaking() -> None:
    before, after = cs(), cs()
    after["rest"][0]["mode"] = "client"
    assert kinds(classify_capability(before, after)) == {"capability.rest_server.removed": B}
    assert kinds(classify_capability(after, before)) == {"capability.rest_server.added": N}


# -- SMART configuration ----------------------------------------------------------------------


def test_token_and_authorize_endpoint_changes_are_breaking() -> None:
    before, after = smart(), smart()
    after["token_endpoint"] = "https://auth.payer.example/token"
    after.pop("authorization_endpoint")
    found = kinds(classify_smart(before, after))
    assert found == {
        "smart.endpoint.changed:token_endpoint": B,
        "smart.endpoint.removed:authorization_endpoint": B,
    }
    assert kinds(classify_smart(after, before))["smart.endpoint.added:authorization_endpoint"] is N


def test_other_security_endpoints_are_notable_issuer_breaking() -> None:
    before, after = smart(), smart()
    after["revocation_endpoint"] = "https://auth.payer.example/revoke"
    after["issuer"] = "https://idp.payer.example"
    assert kinds(classify_smart(before, after)) == {
        "smart.endpoint.changed:revocation_endpoint": N,
        "smart.endpoint.changed:issuer": B,
    }


@pytest.mark.parametrize(
    ("field", "value", "part"),
    [
        ("capabilities", "launch-standalone", "capability"),
        ("scopes_supported", "patient/*.read", "scope"),
        ("grant_types_supported", "refresh_token", "grant_type"),
        ("token_endpoint_auth_methods_supported", "private_key_jwt", "auth_method"),
        ("response_types_supported", "code", "response_type"),
    ],
)
def test_smart_list_removals_are_breaking_additions_notable(
    field: str, value: str, part: str
) -> None:
    before, after = smart(), smart()
    after[field] = [v for v in after[field] if v != value]
    change = by_id(classify_smart(before, after))[f"smart.{part}.removed:{value}"]
    assert (change.kind, change.path, change.before) == (B, f"/{field}", value)
    assert kinds(classify_smart(after, before)) == {f"smart.{part}.added:{value}": N}


def test_pkce_s256_removed_is_breaking_plain_added_notable() -> None:
    before, after = smart(), smart()
    after["code_challenge_methods_supported"] = ["plain"]
    assert kinds(classify_smart(before, after)) == {
        "smart.pkce.removed:S256": B,
        "smart.pkce.added:plain": N,
    }
    assert kinds(classify_smart(after, before)) == {
        "smart.pkce.added:S256": N,
        "smart.pkce.removed:plain": N,
    }


def test_unknown_smart_fields_are_cosmetic() -> None:
    before, after = smart(), smart()
    after["service_documentation"] = "https://docs.payer.example"
    assert kinds(classify_smart(before, after)) == {"smart.field.changed:service_documentation": C}


# -- JWKS ---------------------------------------------------------------------------------------


def key(kid: str | None, thumb: str = "t1", alg: str = "ES384") -> JwksKey:
    return JwksKey(kid, "EC", alg, "sig", thumb)


def keyset(*keys: JwksKey, served: bool = True) -> KeySet:
    return KeySet("https://auth.payer.example/jwks", served, keys, None if served else "HTTP 404")


def test_rotated_key_removed_kid_is_breaking_added_kid_notable() -> None:
    found = by_id(classify_jwks(keyset(key("k1")), keyset(key("k2", "t2"))))
    assert found["jwks.key.removed:k1"].kind is B
    assert found["jwks.key.removed:k1"].before["kid"] == "k1"
    assert found["jwks.key.added:k2"].kind is N
    assert kinds(classify_jwks(keyset(key("k1")), keyset(key("k1"), key("k2", "t2")))) == {
        "jwks.key.added:k2": N
    }


def test_new_material_under_the_same_kid_is_breaking_alg_change_notable() -> None:
    assert kinds(classify_jwks(keyset(key("k1")), keyset(key("k1", "t9")))) == {
        "jwks.key.replaced:k1": B
    }
    assert kinds(classify_jwks(keyset(key("k1")), keyset(key("k1", alg="RS384")))) == {
        "jwks.key.changed:k1": N
    }


def test_keys_without_kid_are_compared_by_thumbprint() -> None:
    assert kinds(classify_jwks(keyset(key(None, "aaa")), keyset(key(None, "bbb")))) == {
        "jwks.key.removed:thumbprint:aaa": B,
        "jwks.key.added:thumbprint:bbb": N,
    }


def test_key_set_unavailable_is_breaking_back_is_notable() -> None:
    assert kinds(classify_jwks(keyset(key("k1")), keyset(served=False))) == {"jwks.unavailable": B}
    assert kinds(classify_jwks(keyset(served=False), keyset(key("k1")))) == {"jwks.available": N}


def test_keys_of_two_environments_differ_notably_not_breakingly() -> None:
    found = kinds(
        classify_jwks(keyset(key("prod")), keyset(key("stage", "t2")), same_endpoint=False)
    )
    assert found == {"jwks.key.removed:prod": N, "jwks.key.added:stage": N}


# -- behaviour ----------------------------------------------------------------------------------


def fetched(status: int | None, final: str | None = None, error: str | None = None) -> Fetched:
    return Fetched(status, error, f"{BASE}/metadata", final)


def snap(**kwargs: Any) -> EndpointSnapshot:
    return EndpointSnapshot(base_url=BASE, **kwargs)


def test_discovery_going_non_2xx_is_breaking_and_recovery_notable() -> None:
    ok, down = fetched(200), fetched(503)
    assert kinds(classify(snap(metadata_fetch=ok), snap(metadata_fetch=down))) == {
        "behaviour.metadata.unavailable": B
    }
    assert kinds(classify(snap(metadata_fetch=down), snap(metadata_fetch=ok))) == {
        "behaviour.metadata.recovered": N
    }
    refused = fetched(None, error="connection_refused")
    change = classify(snap(smart_fetch=ok), snap(smart_fetch=refused))[0]
    assert (change.id, change.kind, change.before, change.after) == (
        "behaviour.smart_configuration.unavailable",
        B,
        "HTTP 200",
        "connection_refused",
    )
    assert kinds(classify(snap(smart_fetch=fetched(404)), snap(smart_fetch=fetched(500)))) == {
        "behaviour.smart_configuration.status_changed": N
    }


def test_data_served_without_a_token_is_breaking_and_refusing_again_notable() -> None:
    refused, open_, bad = fetched(401), fetched(200), fetched(400)
    change = classify(snap(anonymous_fetch=refused), snap(anonymous_fetch=open_))[0]
    assert (change.id, change.kind, change.before, change.after) == (
        "behaviour.anonymous_access.opened",
        B,
        "HTTP 401",
        "HTTP 200",
    )
    assert "member data may be served to anyone" in change.reason
    assert kinds(classify(snap(anonymous_fetch=open_), snap(anonymous_fetch=fetched(403)))) == {
        "behaviour.anonymous_access.closed": N
    }
    # A 400 is not a refusal worth announcing; 401 -> 403 or no answer is not a change.
    assert kinds(classify(snap(anonymous_fetch=open_), snap(anonymous_fetch=bad))) == {}
    assert kinds(classify(snap(anonymous_fetch=refused), snap(anonymous_fetch=fetched(403)))) == {}
    unanswered = fetched(None, error="timeout")
    assert kinds(classify(snap(anonymous_fetch=refused), snap(anonymous_fetch=unanswered))) == {}


def test_base_url_moved_to_another_origin_is_breaking_and_back_notable() -> None:
    moved = fetched(200, final="https://new.payer.example/api/r4/metadata")
    found = by_id(classify(snap(metadata_fetch=fetched(200)), snap(metadata_fetch=moved)))
    assert found["base_url.moved"].kind is B
    assert "another origin" in found["base_url.moved"].reason
    assert kinds(classify(snap(metadata_fetch=moved), snap(metadata_fetch=fetched(200)))) == {
        "base_url.redirect_removed": N
    }
    slash = fetched(200, final=f"{BASE}/metadata/")
    assert kinds(classify(snap(metadata_fetch=fetched(200)), snap(metadata_fetch=slash))) == {
        "base_url.redirect_added": N
    }


def sync(
    label: str = "member 1",
    outcome: str = "completed",
    everything: str = "paged",
    findings: frozenset[str] = frozenset(),
    seconds: float = 1.0,
) -> SyncFacts:
    return SyncFacts(label, outcome, everything, findings, seconds)


def test_everything_support_down_is_breaking_up_notable() -> None:
    paged, unsupported = snap(syncs=(sync(),)), snap(syncs=(sync(everything="unsupported"),))
    assert kinds(classify(paged, unsupported)) == {"behaviour.everything.down": B}
    assert kinds(classify(unsupported, paged)) == {"behaviour.everything.up": N}
    unknown = snap(syncs=(sync(everything="unknown"),))
    assert classify(paged, unknown) == []


def test_paging_newly_broken_is_breaking_fixed_notable() -> None:
    fine = snap(syncs=(sync(),))
    looping = snap(syncs=(sync(findings=frozenset({"paging_loop", "no_total"})),))
    cross = snap(syncs=(sync(findings=frozenset({"next_link_cross_origin"})),))
    assert kinds(classify(fine, looping)) == {"behaviour.paging.broken:paging_loop": B}
    assert kinds(classify(looping, fine)) == {"behaviour.paging.fixed:paging_loop": N}
    assert kinds(classify(fine, cross)) == {"behaviour.paging.broken:next_link_cross_origin": B}


def test_sync_slower_beyond_both_thresholds_is_notable() -> None:
    fast = snap(syncs=(sync(seconds=2.0), sync("member 2", seconds=2.0)))
    slow = snap(syncs=(sync(seconds=5.0), sync("member 2", seconds=5.0)))
    change = by_id(classify(fast, slow))["behaviour.sync.slower"]
    assert (change.kind, change.before, change.after) == (N, 2.0, 5.0)
    assert classify(slow, fast) == []  # faster is not drift
    # +150% but only +1.5 s: under the 2 s floor.
    assert classify(snap(syncs=(sync(seconds=1.0),)), snap(syncs=(sync(seconds=2.5),))) == []
    # +3 s but only +30%: under the 50% floor.
    assert classify(snap(syncs=(sync(seconds=10.0),)), snap(syncs=(sync(seconds=13.0),))) == []
    strict = DriftThresholds(slower_percent=10, slower_seconds=1)
    assert kinds(
        classify(
            snap(syncs=(sync(seconds=10.0),)), snap(syncs=(sync(seconds=13.0),)), thresholds=strict
        )
    ) == {"behaviour.sync.slower": N}
    with pytest.raises(ValueError):
        DriftThresholds(slower_percent=-1)


def test_sync_that_newly_fails_is_breaking_and_recovery_notable() -> None:
    ok, failed = (
        snap(syncs=(sync(),)),
        snap(syncs=(sync(outcome="auth_failed", everything="unknown"),)),
    )
    assert kinds(classify(ok, failed)) == {"behaviour.sync.failed:member 1": B}
    assert kinds(classify(failed, ok)) == {"behaviour.sync.recovered:member 1": N}
    partial = snap(syncs=(sync(outcome="partial"),))
    assert kinds(classify(ok, partial)) == {"behaviour.sync.outcome_changed:member 1": N}


def test_no_sync_on_one_side_says_nothing_about_behaviour() -> None:
    assert classify(snap(syncs=(sync(),)), snap()) == []
    assert classify(snap(), snap(syncs=(sync(outcome="failed"),))) == []


def test_document_missing_under_a_2xx_is_breaking() -> None:
    before = snap(capability=cs(), metadata_fetch=fetched(200))
    html = snap(capability=None, metadata_fetch=fetched(200))
    assert kinds(classify(before, html)) == {"capability.document.missing": B}
    # A non-2xx is reported once, as behaviour.
    assert kinds(classify(before, snap(metadata_fetch=fetched(401)))) == {
        "behaviour.metadata.unavailable": B
    }
    assert kinds(classify(html, before)) == {"capability.document.served": N}


# -- ids, order, two environments -----------------------------------------------------------------


def test_ids_are_stable_and_results_sorted_most_severe_first() -> None:
    before = snap(capability=cs(), smart=smart(), syncs=(sync(),))
    after_doc = copy.deepcopy(cs())
    after_doc["description"] = "changed"
    after_doc["rest"][0]["resource"].pop()
    after = snap(
        capability=after_doc,
        smart=smart() | {"scopes_supported": ["openid"]},
        syncs=(sync(seconds=9),),
    )
    first, second = classify(before, after), classify(before, after)
    assert [c.id for c in first] == [c.id for c in second]
    ranks = [c.kind.rank for c in first]
    assert ranks == sorted(ranks)
    assert counts_by_kind(first)["breaking"] >= 2
    assert first[0].to_json()["kind"] == "breaking"


def test_two_environments_compare_urls_relative_to_their_base() -> None:
    prod, stage = "https://api.payer.example/fhir", "https://staging.payer.example/fhir"
    assert relative_url("https://api.payer.example/oauth/token", prod) == "{base}/../oauth/token"
    assert relative_url("https://auth.payer.example/t?x=1", prod) == "{other origin}/t?x=1"
    before = EndpointSnapshot(base_url=prod, smart=smart(prod), capability=cs(prod))
    after = EndpointSnapshot(base_url=stage, smart=smart(stage), capability=cs(stage))
    assert {c.kind for c in classify(before, after)} == {C}  # only the canonical url text
    moved = smart(stage) | {"token_endpoint": "https://staging.payer.example/v2/token"}
    found = kinds(
        classify(before, EndpointSnapshot(base_url=stage, smart=moved, capability=cs(stage)))
    )
    assert found["smart.endpoint.changed:token_endpoint"] is B
