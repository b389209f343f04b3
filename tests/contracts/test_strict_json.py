"""Strict JSON beyond the CLI contracts: the drift webhook's body and the shared writer."""

from __future__ import annotations

from datetime import UTC, datetime

import anyio
import httpx
import pytest

from probe.cli.machine import contract_json, strict_json
from probe.drift.classify import ChangeKind
from probe.drift.events import DriftEvent
from probe.drift.notify import notify_webhook
from tests.contracts.conftest import contract_validator, strict_loads


def event(before: float, after: float) -> DriftEvent:
    return DriftEvent(
        run_id=2,
        previous_run_id=1,
        endpoint_id=1,
        payer="Acme",
        environment="production",
        base_url="https://fhir.acme.example/r4",
        kind=ChangeKind.NOTABLE,
        change_id="behaviour.sync.slower",
        path="/sync/median_s",
        before=before,
        after=after,
        reason="slower",
        detected_at=datetime(2026, 1, 2, tzinfo=UTC),
        id=1,
    )


def test_the_webhook_body_is_strict_json() -> None:
    bodies: list[bytes] = []

    def handler(request: httpx.Request) -> httpx.Response:
        bodies.append(request.content)
        return httpx.Response(204)

    async def go() -> None:
        result = await notify_webhook(
            "https://hooks.example/drift",
            [event(0.5, float("inf")), event(float("nan"), 2.0)],
            transport=httpx.MockTransport(handler),
        )
        assert result.delivered

    anyio.run(go)
    posted = strict_loads(bodies[0].decode())
    assert {(e["before"], e["after"]) for e in posted} == {(0.5, None), (None, 2.0)}


def test_contract_json_writes_no_nan_and_stamps_the_version() -> None:
    text = contract_json("drift", {"events": [event(float("-inf"), float("nan")).to_json()]})
    doc = strict_loads(text)
    contract_validator("drift").validate(doc)
    assert (doc["events"][0]["before"], doc["events"][0]["after"]) == (None, None)
    assert strict_loads(strict_json({"x": [1.5, float("inf")]})) == {"x": [1.5, None]}
    with pytest.raises(KeyError):
        contract_json("nosuch", {})
