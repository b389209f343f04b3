"""Per-resource fallback that loses nothing (issue 14, items 1-4): every declared type searched by
its declared patient parameter, category searches where a patient-only search is refused,
empty cursor pages followed, and ids longer than R4 allows still resolved."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qs

import httpx

from probe.sync.searches import FALLBACK_TYPES, plan_searches
from tests.discovery_docs import capability_statement
from tests.sync.fhir_mock import BASE, MockPayer, patient_record
from tests.sync.test_sync_mock import refresh_creds, sync

OBS_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
COMBINATION = (
    "http://hl7.org/fhir/StructureDefinition/capabilitystatement-search-parameter-combination"
)


def statement(extra: list[dict[str, Any]]) -> dict[str, Any]:
    cap = capability_statement()
    cap["rest"][0]["resource"].extend(extra)
    return cap


def declared(rtype: str, *params: str, **more: Any) -> dict[str, Any]:
    return {
        "type": rtype,
        "interaction": [{"code": "read"}, {"code": "search-type"}],
        "searchParam": [{"name": p, "type": "reference"} for p in params],
        **more,
    }


def observations(n: int) -> list[dict[str, Any]]:
    cats = ["laboratory", "vital-signs", "social-history"]
    return [
        {
            "resourceType": "Observation",
            "id": f"obs{i}",
            "status": "final",
            "category": [{"coding": [{"system": OBS_CATEGORY, "code": cats[i % 3]}]}],
            "code": {"text": f"test {i}"},
            "subject": {"reference": "Patient/p1"},
        }
        for i in range(n)
    ]


class CategoryPayer(MockPayer):
    """Refuses `Observation?patient=` without a category (Epic, NextGen), filters by category."""

    def handler(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path.removeprefix("/r4/")
        query = parse_qs(request.url.query.decode())
        if path == "Observation" and "category" not in query:
            self.requests.append(request)
            return self._json(
                {
                    "resourceType": "OperationOutcome",
                    "issue": [
                        {
                            "severity": "error",
                            "code": "required",
                            "diagnostics": "Must have either code or category.",
                        }
                    ],
                },
                400,
            )
        if path == "Observation":
            self.requests.append(request)
            code = query["category"][0].split("|")[-1]
            items = [
                r
                for r in self.resources
                if r["resourceType"] == "Observation" and code in json.dumps(r["category"])
            ]
            return self._page(items, query, "Observation")
        return super().handler(request)


def test_declared_types_beyond_the_fixed_list_are_searched_by_their_own_parameter() -> None:
    extra = [
        {"resourceType": "MedicationAdministration", "id": "ma1", "status": "completed",
         "subject": {"reference": "Patient/p1"}},
        {"resourceType": "ServiceRequest", "id": "sr1", "status": "active", "intent": "order",
         "subject": {"reference": "Patient/p1"}},
        {"resourceType": "Provenance", "id": "prov1", "target": [{"reference": "Patient/p1"}]},
    ]  # fmt: skip
    payer = MockPayer(everything="404", resources=[*patient_record(), *extra])
    cap = statement(
        [
            declared("MedicationAdministration", "patient"),
            declared("ServiceRequest", "subject"),
            declared("Provenance", "patient", "target"),
            declared("Organization", "name"),  # not a patient's own data: never searched
        ]
    )
    result = sync(payer, refresh_creds(), capability=cap)
    for rtype in ("MedicationAdministration", "ServiceRequest", "Provenance"):
        assert result.searched_types[rtype] == 200, rtype
        assert result.resources_by_type[rtype] == 1, rtype
    assert result.search_strategies["ServiceRequest"] == "subject"
    assert "Organization" not in result.searched_types
    asked = [str(r.url) for r in payer.requests if "ServiceRequest" in str(r.url)]
    assert asked and all("subject=p1" in u for u in asked)


def test_without_resource_types_the_fixed_list_is_searched() -> None:
    plans = plan_searches({"resourceType": "CapabilityStatement", "rest": [{"mode": "server"}]})
    assert [p.resource_type for p in plans] == list(FALLBACK_TYPES)
    assert plans[0].param == "_id"


def test_observation_behind_a_category_is_recovered_from_every_category() -> None:
    payer = CategoryPayer(everything="404", resources=[*patient_record(), *observations(12)])
    result = sync(payer, refresh_creds(), capability=capability_statement())
    assert result.resources_by_type["Observation"] == 12
    assert result.search_strategies["Observation"] == "patient+category"
    assert result.searched_types["Observation"] == 200
    assert any(f.code == "category_required" for f in result.findings)
    assert not any(f.code == "search_failed" for f in result.findings)
    assert result.outcome == "completed"


def test_a_required_category_combination_skips_the_refused_search() -> None:
    combo = {
        "url": COMBINATION,
        "extension": [
            {"url": "required", "valueString": "patient"},
            {"url": "required", "valueString": "category"},
        ],
    }
    cap = capability_statement()
    for res in cap["rest"][0]["resource"]:
        if res["type"] == "Observation":
            res["extension"] = [combo]
    payer = CategoryPayer(everything="404", resources=[*patient_record(), *observations(5)])
    result = sync(payer, refresh_creds(), capability=cap)
    assert result.resources_by_type["Observation"] == 5
    observation_queries = [
        parse_qs(r.url.query.decode())
        for r in payer.requests
        if r.url.path.endswith("/Observation")
    ]
    assert observation_queries and all("category" in q for q in observation_queries)
    assert not any(f.code == "category_required" for f in result.findings)


class LeadingEmptyPages(MockPayer):
    """Cursor paging that serves two empty pages, each with a fresh next link, before data."""

    def _page(
        self, items: list[dict[str, Any]], query: dict[str, list[str]], key: str
    ) -> httpx.Response:
        if key != "everything":
            return super()._page(items, query, key)
        cursor = query.get("cursor", ["start"])[0]
        if cursor in ("start", "e1"):
            following = "e1" if cursor == "start" else "e2"
            return self._json(
                {
                    "resourceType": "Bundle",
                    "type": "searchset",
                    "link": [
                        {"relation": "next",
                         "url": f"{BASE}/Patient/p1/$everything?cursor={following}"},
                    ],
                }
            )  # fmt: skip
        return super()._page(items, {"_count": ["50"]}, key)


def test_empty_cursor_pages_before_the_data_are_followed() -> None:
    payer = LeadingEmptyPages()
    result = sync(payer, refresh_creds())
    assert result.resources_by_type["ExplanationOfBenefit"] == 5
    codes = {f.code for f in result.findings}
    assert "empty_page" in codes and "empty_pages" not in codes
    assert result.everything.support_level == "paged"


def test_ids_longer_than_r4_allows_are_fetched_and_named() -> None:
    long_id = "x" * 90
    payer = MockPayer()
    payer.readable[f"Practitioner/{long_id}"] = {"resourceType": "Practitioner", "id": long_id}
    payer.resources[-1]["provider"] = {"reference": f"Practitioner/{long_id}"}
    result = sync(payer, refresh_creds())
    assert any(f.code == "id_too_long" for f in result.findings)
    fetched = [str(r.url) for r in payer.requests if long_id in str(r.url)]
    assert fetched, "the long-id reference was not fetched"
    assert not any(long_id in u for u in result.references.unresolved)
