"""A small in-memory FHIR payer for sync unit tests, served through httpx.MockTransport."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

import httpx

BASE = "https://fhir.payer.example/r4"
TOKEN_URL = "https://fhir.payer.example/oauth/token"


def patient_record(n_eobs: int = 5) -> list[dict[str, Any]]:
    """A CARIN BB-shaped record: Patient, Coverage, EOBs, Condition, MedicationRequest, refs."""
    out: list[dict[str, Any]] = [
        {
            "resourceType": "Patient",
            "id": "p1",
            "name": [{"family": "Doe", "given": ["Jane"]}],
            "gender": "female",
            "birthDate": "1970-01-01",
        },
        {
            "resourceType": "Coverage",
            "id": "c1",
            "status": "active",
            "beneficiary": {"reference": "Patient/p1"},
            "payor": [{"reference": "Organization/org1"}],
        },
        {"resourceType": "Organization", "id": "org1", "name": "Example Health Plan"},
        {
            "resourceType": "Condition",
            "id": "cond1",
            "subject": {"reference": f"{BASE}/Patient/p1"},
            "code": {"text": "Hypertension"},
        },
        {
            "resourceType": "MedicationRequest",
            "id": "mr1",
            "status": "active",
            "intent": "order",
            "subject": {"reference": "Patient/p1"},
            "contained": [
                {"resourceType": "Medication", "id": "med1", "code": {"text": "lisinopril"}}
            ],
            "medicationReference": {"reference": "#med1"},
        },
    ]
    for i in range(n_eobs):
        out.append(
            {
                "resourceType": "ExplanationOfBenefit",
                "id": f"eob{i}",
                "status": "active",
                "type": {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/claim-type",
                            "code": "professional",
                        }
                    ]
                },
                "use": "claim",
                "patient": {"reference": "Patient/p1"},
                "created": "2024-01-01",
                "insurer": {"reference": "Organization/org1"},
                "provider": {"reference": f"Practitioner/pr{i % 2}"},
                "outcome": "complete",
                "insurance": [{"focal": True, "coverage": {"reference": "Coverage/c1"}}],
            }
        )
    return out


@dataclass
class MockPayer:
    """Configurable behaviours of one payer; `requests` records every request seen."""

    resources: list[dict[str, Any]] = field(default_factory=patient_record)
    # Practitioners that exist only as reads (not part of $everything)
    readable: dict[str, dict[str, Any]] = field(
        default_factory=lambda: {
            "Practitioner/pr0": {"resourceType": "Practitioner", "id": "pr0"},
            "Practitioner/pr1": {"resourceType": "Practitioner", "id": "pr1"},
        }
    )
    everything: str = "ok"  # ok | 404 | 405 | one_page_no_link
    paging: str = "ok"  # ok | loop | cross_origin | empty | relative
    page_size_cap: int | None = None
    token: str | None = None
    expire_after: int | None = None  # requests served per token
    refresh_token: str = "refresh-1"
    rotate: bool = False
    throttle_first: bool = False
    content_type: str = "application/fhir+json"
    requests: list[httpx.Request] = field(default_factory=list)
    _served_with_token: int = 0
    _throttled: bool = False
    _tokens_issued: int = 0

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        url = request.url
        if str(url).startswith(TOKEN_URL):
            return self._token(request)
        if self.token is not None:
            if request.headers.get("authorization") != f"Bearer {self.token}" or (
                self.expire_after is not None and self._served_with_token >= self.expire_after
            ):
                return httpx.Response(401, headers={"WWW-Authenticate": "Bearer"})
            self._served_with_token += 1
        if self.throttle_first and not self._throttled:
            self._throttled = True
            return httpx.Response(429, headers={"Retry-After": "0"})
        path = url.path.removeprefix("/r4/")
        query = parse_qs(url.query.decode())
        if path == "Patient/p1/$everything":
            if self.everything == "404":
                return self._json(
                    {
                        "resourceType": "OperationOutcome",
                        "issue": [
                            {
                                "severity": "error",
                                "code": "not-supported",
                                "diagnostics": "Operation $everything not supported",
                            }
                        ],
                    },
                    404,
                )
            if self.everything == "405" and request.method == "GET":
                return httpx.Response(405)
            if self.everything == "one_page_no_link":
                return self._json(
                    {
                        "resourceType": "Bundle",
                        "type": "searchset",
                        "entry": [{"resource": r} for r in self.resources],
                    }
                )
            return self._page(self.resources, query, "everything")
        if path.count("/") == 0 and path[:1].isupper():
            if path == "Patient":
                items = [
                    r
                    for r in self.resources
                    if r["resourceType"] == "Patient" and r["id"] == query.get("_id", [""])[0]
                ]
            else:
                items = [
                    r for r in self.resources if r["resourceType"] == path and "p1" in json.dumps(r)
                ]
            return self._page(items, query, path)
        if path.count("/") == 1:
            for r in self.resources:
                if f"{r['resourceType']}/{r['id']}" == path:
                    return self._json(r)
            if path in self.readable:
                return self._json(self.readable[path])
            return self._json(
                {
                    "resourceType": "OperationOutcome",
                    "issue": [{"severity": "error", "code": "not-found"}],
                },
                404,
            )
        return httpx.Response(404)

    def _json(self, data: dict[str, Any], status: int = 200) -> httpx.Response:
        return httpx.Response(
            status, content=json.dumps(data).encode(), headers={"Content-Type": self.content_type}
        )

    def _page(
        self, items: list[dict[str, Any]], query: dict[str, list[str]], key: str
    ) -> httpx.Response:
        count = int(query.get("_count", ["50"])[0])
        if self.page_size_cap:
            count = min(count, self.page_size_cap)
        offset = int(query.get("ct", ["0"])[0])
        page = items[offset : offset + count]
        links = [{"relation": "self", "url": f"{BASE}/Patient/p1/$everything"}]
        nxt = offset + count
        if nxt < len(items):
            href = f"{BASE}/{'Patient/p1/$everything' if key == 'everything' else key}?ct={nxt}&_count={count}"
            if key != "everything" and "patient" in query:
                href += "&patient=p1"
            if self.paging == "loop" and offset > 0:
                href = f"{BASE}/Patient/p1/$everything?ct=0&_count={count}"
            if self.paging == "cross_origin":
                href = href.replace("fhir.payer.example", "fhir.attacker.example")
            if self.paging == "relative":
                href = href.removeprefix(BASE + "/")
            links.append({"relation": "next", "url": href})
        if self.paging == "empty" and offset > 0:
            page = []
            links.append(
                {
                    "relation": "next",
                    "url": f"{BASE}/Patient/p1/$everything?ct={offset + count}&_count={count}",
                }
            )
        return self._json(
            {
                "resourceType": "Bundle",
                "type": "searchset",
                "total": len(items),
                "link": links,
                "entry": [
                    {"fullUrl": f"{BASE}/{r['resourceType']}/{r['id']}", "resource": r}
                    for r in page
                ],
            }
        )

    def _token(self, request: httpx.Request) -> httpx.Response:
        form = parse_qs(request.content.decode())
        if form.get("refresh_token", [""])[0] != self.refresh_token:
            return httpx.Response(
                400, json={"error": "invalid_grant", "error_description": "refresh token unknown"}
            )
        self._tokens_issued += 1
        self.token = f"access-{self._tokens_issued}"
        self._served_with_token = 0
        body: dict[str, Any] = {
            "access_token": self.token,
            "token_type": "Bearer",
            "expires_in": 3600,
        }
        if self.rotate:
            self.refresh_token = f"refresh-{self._tokens_issued + 1}"
        body["refresh_token"] = self.refresh_token
        body["refresh_token_expires_in"] = 86400 * 365
        return httpx.Response(200, json=body)
