"""End to end: two nightly crawls of a simulated fleet, payers changed in between, drift events.

The fleet payers change the way real releases do: a resource type dropped, the JWKS key
rotated, the token endpoint moved (fleet hook ``probe.fleet.changes``), paging broken (the same
payer config with the ``paging_loop`` archetype added). An unchanged payer shows no drift.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from probe.drift.classify import ChangeKind
from probe.drift.events import detect_drift, list_drift_events
from probe.drift.settings import DriftSettings
from probe.fleet.changes import PayerChange
from probe.store.handle import Store
from probe.store.tables import RunStatus
from tests.drift.conftest import Webhook
from tests.drift.fleet_runs import crawl_fleet

B, N = ChangeKind.BREAKING, ChangeKind.NOTABLE
SLUGS = ("steady", "dropper", "rotator", "mover", "opener", "pager")
BEFORE = [{"slug": s} for s in SLUGS]
AFTER = [{"slug": s} for s in SLUGS[:-2]] + [
    {"slug": "opener", "archetypes": ["open_data"]},
    {"slug": "pager", "archetypes": [{"paging_loop": {"after_page": 1}}]},
]
CHANGES = {
    "dropper": PayerChange(drop_resource_types=("Immunization",)),
    "rotator": PayerChange(jwks_key_id="fleet-issuer-2"),
    "mover": PayerChange(token_path="oauth2/token"),
}
PAGE = 5  # small pages, so the paging loop (after page 1) is reached
DROP = {"dropper": CHANGES["dropper"]}


def events_by_payer(store: Store, run_id: int) -> dict[str, dict[str, ChangeKind]]:
    with store.session() as s:
        events = list_drift_events(s, run_id=run_id)
    out: dict[str, dict[str, ChangeKind]] = {}
    for e in events:
        out.setdefault(e.payer, {})[e.change_id] = e.kind
    return out


def test_five_fleet_changes_become_the_right_drift_events(store: Store, tmp_path: Path) -> None:
    first = crawl_fleet(store, tmp_path, BEFORE, page_size=PAGE)
    assert first.status is RunStatus.COMPLETED
    assert first.drift is not None and first.drift.detection is not None
    assert first.drift.detection.without_previous == len(SLUGS)
    assert all(s.outcome == "completed" for o in first.outcomes for s in o.syncs)

    second = crawl_fleet(store, tmp_path, AFTER, CHANGES, page_size=PAGE)
    assert second.status is RunStatus.COMPLETED
    assert second.drift is not None and second.drift.detection is not None
    assert second.drift.detection.compared == len(SLUGS)
    found = events_by_payer(store, second.run_id)

    assert "Steady" not in found  # nothing changed, nothing reported
    assert found["Dropper"] == {"capability.resource.removed:Immunization": B}
    assert found["Rotator"] == {
        "jwks.key.removed:fleet-issuer-1": B,
        "jwks.key.added:fleet-issuer-2": N,
    }
    assert found["Mover"] == {
        "smart.endpoint.changed:token_endpoint": B,
        "capability.oauth_uri.changed:token": B,
    }
    # A search without a token was refused (401) and now gets member data.
    assert found["Opener"] == {"behaviour.anonymous_access.opened": B}
    # The moved token endpoint still works (apps that read the SMART configuration follow it).
    mover = next(o for o in second.outcomes if o.target.payer.name == "Mover")
    assert [s.outcome for s in mover.syncs] == ["completed", "completed"]
    pager = found["Pager"]
    assert pager["behaviour.paging.broken:paging_loop"] is B
    assert pager["behaviour.everything.down"] is B
    assert set(pager) <= {
        "behaviour.paging.broken:paging_loop",
        "behaviour.everything.down",
        "behaviour.sync.outcome_changed:member 1",
        "behaviour.sync.outcome_changed:member 2",
    }

    with store.session() as s:
        token = next(
            e
            for e in list_drift_events(s, run_id=second.run_id)
            if e.change_id == "smart.endpoint.changed:token_endpoint"
        )
    assert token.previous_run_id == first.run_id
    assert token.before.endswith("/payers/mover/oauth/token")
    assert token.after.endswith("/payers/mover/oauth2/token")

    # Detecting the run again is idempotent; a third, unchanged night shows no drift.
    assert detect_drift(store, second.run_id).new_events == []
    third = crawl_fleet(store, tmp_path, AFTER, CHANGES, page_size=PAGE)
    assert third.drift is not None and third.drift.detection is not None
    assert third.drift.detection.events == []


def test_new_drift_events_are_posted_to_the_webhook(
    store: Store, tmp_path: Path, webhook: Webhook
) -> None:
    crawl_fleet(store, tmp_path, BEFORE[:2])
    settings = DriftSettings(observe_keys=True, webhook_url=webhook.url)
    summary = crawl_fleet(store, tmp_path, BEFORE[:2], DROP, drift=settings)
    assert summary.drift is not None and summary.drift.notification is not None
    assert summary.drift.notification.delivered
    assert len(webhook.received) == 1
    post = webhook.received[0]
    assert post["path"] == "/hooks/drift-secret-path"
    assert post["headers"]["Content-Type"] == "application/json"
    body = post["body"]
    assert isinstance(body, list)
    assert [(e["payer"], e["change_id"], e["kind"]) for e in body] == [
        ("Dropper", "capability.resource.removed:Immunization", "breaking")
    ]
    event = body[0]
    assert event["run_id"] == summary.run_id and event["endpoint"]["base_url"].endswith(
        "/dropper/fhir"
    )
    assert set(event) == {
        "id",
        "run_id",
        "previous_run_id",
        "payer",
        "endpoint",
        "kind",
        "change_id",
        "path",
        "before",
        "after",
        "reason",
        "detected_at",
    }
    # No secret of the fleet's client appears in what was posted.
    secrets = (tmp_path / "fleet-secrets.yaml").read_text()
    for line in secrets.splitlines():
        value = line.split(":", 1)[1].strip()
        assert value not in json.dumps(body)
    # The webhook's secret path is not in the summary line either.
    assert "drift-secret-path" not in summary.drift.notification.summary()
    # Nothing new next night: nothing posted.
    crawl_fleet(store, tmp_path, BEFORE[:2], DROP, drift=settings)
    assert len(webhook.received) == 1


@pytest.mark.parametrize("failure", ["http_500", "refused"])
def test_a_failing_webhook_is_logged_and_never_fails_the_run(
    store: Store,
    tmp_path: Path,
    webhook: Webhook,
    caplog: pytest.LogCaptureFixture,
    failure: str,
) -> None:
    crawl_fleet(store, tmp_path, BEFORE[:2])
    if failure == "http_500":
        webhook.status = 500
        url = webhook.url
    else:
        url = "http://127.0.0.1:9/hooks/nobody-listens"
    settings = DriftSettings(observe_keys=True, webhook_url=url, webhook_timeout=2)
    with caplog.at_level(logging.WARNING, logger="probe.drift.notify"):
        summary = crawl_fleet(store, tmp_path, BEFORE[:2], DROP, drift=settings)
    assert summary.status is RunStatus.COMPLETED
    assert summary.drift is not None and summary.drift.notification is not None
    note = summary.drift.notification
    assert not note.delivered
    assert ("HTTP 500" if failure == "http_500" else "ConnectError") in (note.error or "")
    assert any("drift webhook" in r.getMessage() for r in caplog.records)
    assert all("nobody-listens" not in r.getMessage() for r in caplog.records)
    # The events were stored all the same.
    assert events_by_payer(store, summary.run_id)["Dropper"] == {
        "capability.resource.removed:Immunization": B
    }
