"""`probe run` signs test members in through headless Chromium when their authorization is due.

A small fleet on real loopback sockets, with the consent, ineligible and identity-verification
journeys (and a member whose password is wrong): the attempts are stored as observed with their
outcomes, the sync uses the refresh token the browser got, a second crawl within `every` opens
no browser for a member it holds a token for, and a refused refresh token is answered by a new
sign-in and one more sync. No secret reaches the database or the logs.
"""

from __future__ import annotations

import io
import json
import logging
from collections import Counter
from pathlib import Path
from typing import Any

import anyio
import pytest
import yaml
from sqlalchemy import select

import probe.authorize.session as session_module
import probe.crawl.authorizing as authorizing
from probe.authorize.token import TokenResult
from probe.cli.progress import LogReporter
from probe.crawl.authorizing import AuthorizationTimes
from probe.crawl.crawler import CrawlSummary, crawl, select_targets
from probe.crawl.options import CrawlOptions
from probe.directory.schema import Directory
from probe.directory.secrets import SecretSource, TokenStore
from probe.fleet.catalog import (
    member_login_secrets,
    member_secret_key,
    secret_key,
    with_member_logins,
)
from probe.fleet.config import parse_fleet_config
from probe.fleet.serve import running_fleet
from probe.http.limits import Limits
from probe.store.handle import Store
from probe.store.tables import AuthorizationAttemptRow, Base, EndpointRow, RunStatus, SyncJobRow
from tests.authorize.conftest import ensure_chromium, free_port

pytestmark = pytest.mark.slow

PAYERS = {
    "consent": {"journey": "consent", "client_auth": "client_secret_basic"},
    "ineligible": {"journey": "ineligible", "client_auth": "none"},
    "idv": {"journey": "identity_verification", "client_auth": "client_secret_post"},
    "wrong-pw": {"journey": "consent", "client_auth": "client_secret_basic"},
}
WRONG_PASSWORD = "Pw-wrong-5c1d9e"  # a distinctive wrong member password


def fleet_config() -> Any:
    payers = [{"slug": slug, "patients": 1, "oauth": oauth} for slug, oauth in PAYERS.items()]
    return parse_fleet_config({"seed": 31, "hosts": 2, "payers": payers})


def options(token_store: Path) -> CrawlOptions:
    return CrawlOptions(
        rate=200,
        per_host=4,
        limits=Limits(total_timeout=20, max_retries=1, backoff_base=0.05),
        token_store=token_store,
        portal=False,
        endpoint_deadline=180,
    )


def slug_of(base_url: str) -> str:
    return base_url.split("/payers/")[1].split("/")[0]


def attempts_by_slug(store: Store) -> dict[str, list[tuple[str | None, str, bool, str]]]:
    out: dict[str, list[tuple[str | None, str, bool, str]]] = {}
    with store.session() as s:
        rows = s.execute(
            select(
                EndpointRow.base_url,
                AuthorizationAttemptRow.outcome,
                AuthorizationAttemptRow.state,
                AuthorizationAttemptRow.query_ineligible,
                AuthorizationAttemptRow.origin,
            )
            .join(EndpointRow, EndpointRow.id == AuthorizationAttemptRow.endpoint_id)
            .order_by(AuthorizationAttemptRow.id)
        ).all()
    for base_url, outcome, state, ineligible, origin in rows:
        out.setdefault(slug_of(base_url), []).append((outcome, state, ineligible, origin))
    return out


def syncs_of_run(store: Store, run_id: int) -> dict[str, tuple[str, list[dict[str, Any]]]]:
    with store.session() as s:
        rows = s.execute(
            select(EndpointRow.base_url, SyncJobRow.outcome, SyncJobRow.details)
            .join(EndpointRow, EndpointRow.id == SyncJobRow.endpoint_id)
            .where(SyncJobRow.run_id == run_id)
        ).all()
    out: dict[str, tuple[str, list[dict[str, Any]]]] = {}
    for base_url, outcome, details in rows:
        data = details if isinstance(details, dict) else json.loads(details)
        out[slug_of(base_url)] = (outcome, data.get("findings", []))
    return out


def every_text_in_the_database(store: Store) -> str:
    parts: list[str] = []
    with store.engine.connect() as conn:
        for table in Base.metadata.sorted_tables:
            for row in conn.execute(table.select()):
                parts.append(json.dumps(list(row), default=str))
    return "\n".join(parts)


def test_crawl_authorizes_members_when_due(
    store: Store,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ensure_chromium()
    seen: list[tuple[str, str, TokenResult]] = []
    real_exchange = session_module.exchange_code

    async def spy(*args: Any, **kwargs: Any) -> TokenResult:
        result = await real_exchange(*args, **kwargs)
        seen.append((args[2], args[3], result))
        return result

    monkeypatch.setattr(session_module, "exchange_code", spy)
    tokens = tmp_path / "tokens.yaml"
    box: dict[str, Any] = {}

    async def go() -> None:
        async with running_fleet(fleet_config()) as fleet:
            values = fleet.secrets()
            box["client secrets"] = [v for k, v in values.items() if k.endswith("/client_secret")]
            for slug in PAYERS:  # the directory's own refresh tokens do not work: only the
                values[secret_key(slug, "refresh_token")] = f"not-a-valid-refresh-{slug}-0f3a"
            secrets_file = tmp_path / "secrets.yaml"
            directory: Directory = with_member_logins(
                fleet.directory(str(secrets_file)), free_port()
            )
            values |= member_login_secrets(directory)
            patient = fleet.patients("wrong-pw")[0]
            values[member_secret_key("wrong-pw", patient, "password")] = WRONG_PASSWORD
            secrets_file.write_text(yaml.safe_dump(values))
            box["keys"] = {
                slug: f"{fleet.base_url(slug).rstrip('/')}|{fleet.credentials(slug).client_id}"
                for slug in PAYERS
            }

            async def one_crawl() -> CrawlSummary:
                return await crawl(
                    store,
                    directory,
                    select_targets(directory),
                    options(tokens),
                    LogReporter(io.StringIO()),
                    secrets=SecretSource(secrets_file),
                )

            box["first"] = await one_crawl()
            box["first tokens"] = dict(yaml.safe_load(tokens.read_text()))
            box["after first"] = attempts_by_slug(store)
            box["second"] = await one_crawl()
            box["after second"] = attempts_by_slug(store)
            # The consent member's refresh token is refused now (its time is still fresh).
            TokenStore(tokens).put(box["keys"]["consent"], "refused-refresh-token-77aa")
            box["third"] = await one_crawl()
            box["after third"] = attempts_by_slug(store)

    with caplog.at_level(logging.DEBUG):
        anyio.run(go)

    for run in ("first", "second", "third"):
        assert box[run].status is RunStatus.COMPLETED

    # -- first crawl: every member signs in once, each attempt stored as observed --
    first = box["after first"]
    assert first["consent"] == [("authorized", "exchanged", False, "observed")]
    assert first["ineligible"] == [("ineligible", "failed", True, "observed")]
    assert first["idv"] == [("identity_verification", "failed", False, "observed")]
    assert first["wrong-pw"] == [("login_failed", "failed", False, "observed")]
    syncs = syncs_of_run(store, box["first"].run_id)
    # The directory's refresh token is invalid, so a completed sync used the browser's token.
    assert syncs["consent"][0] == "completed"
    assert any(
        f["code"] == "authorized_in_browser" and "no refresh token" in f["message"]
        for f in syncs["consent"][1]
    ), syncs["consent"]
    for slug in ("ineligible", "idv", "wrong-pw"):
        assert syncs[slug][0] == "auth_failed", syncs[slug]
    stored = box["first tokens"]
    assert set(stored) == {box["keys"]["consent"]}
    times = AuthorizationTimes(tokens)
    assert times.path is not None and times.path.exists()
    assert times.path.stat().st_mode & 0o777 == 0o600
    assert times.last(box["keys"]["consent"]) is not None

    # -- second crawl, within `every`: no browser for the consent member --
    second = box["after second"]
    assert len(second["consent"]) == 1
    assert syncs_of_run(store, box["second"].run_id)["consent"][0] == "completed"
    # Members without a refresh token are still due (each attempt stored again).
    assert [a[0] for a in second["ineligible"]] == ["ineligible", "ineligible"]

    # -- third crawl: the refused refresh token triggers a new sign-in and one more sync --
    third = box["after third"]
    assert [a[0] for a in third["consent"]] == ["authorized", "authorized"]
    outcome, findings = syncs_of_run(store, box["third"].run_id)["consent"]
    assert outcome == "completed"
    assert any("refresh token was refused" in f["message"] for f in findings), findings
    # When the token stopped working is recorded: the sign-in that issued it, and the day.
    stopped = [f["message"] for f in findings if f["code"] == "refresh_token_stopped"]
    assert len(stopped) == 1 and "was refused on" in stopped[0] and "days later" in stopped[0]
    assert TokenStore(tokens).get(box["keys"]["consent"]) != "refused-refresh-token-77aa"

    # -- no secret in the database (every column of every table) or the logs --
    assert seen, "the code exchanges were observed"
    secrets: dict[str, str] = {"wrong password": WRONG_PASSWORD}
    for i, (code, verifier, token) in enumerate(seen):
        secrets[f"code {i}"] = code
        secrets[f"verifier {i}"] = verifier
        if token.access_token:
            secrets[f"access token {i}"] = token.access_token
        if token.refresh_token:
            secrets[f"refresh token {i}"] = token.refresh_token
    for i, value in enumerate(box["client secrets"]):
        secrets[f"client secret {i}"] = value
    secrets["refused refresh token"] = "refused-refresh-token-77aa"
    database = every_text_in_the_database(store)
    logs = caplog.text + "\n".join(r.getMessage() for r in caplog.records)
    assert "authorize" in logs
    for where, text in (("the database", database), ("the logs", logs)):
        for what, value in secrets.items():
            assert value not in text, f"the {what} leaked into {where}"


def test_crawl_without_a_browser_says_so_once_and_syncs(
    store: Store,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    why = "chromium is not installed: apt-get install chromium"
    monkeypatch.setattr(authorizing, "login_unavailable", lambda: why)
    box: dict[str, Any] = {}

    async def go() -> None:
        async with running_fleet(fleet_config()) as fleet:
            secrets_file = tmp_path / "secrets.yaml"
            directory = with_member_logins(fleet.directory(str(secrets_file)), free_port())
            values = fleet.secrets() | member_login_secrets(directory)
            secrets_file.write_text(yaml.safe_dump(values))
            box["summary"] = await crawl(
                store,
                directory,
                select_targets(directory),
                options(tmp_path / "tokens.yaml"),
                LogReporter(io.StringIO()),
                secrets=SecretSource(secrets_file),
            )

    with caplog.at_level(logging.WARNING):
        anyio.run(go)
    summary: CrawlSummary = box["summary"]
    assert summary.status is RunStatus.COMPLETED
    assert attempts_by_slug(store) == {}
    syncs = syncs_of_run(store, summary.run_id)
    assert set(syncs) == set(PAYERS)
    for outcome, findings in syncs.values():
        # The directory's refresh tokens still work, so the syncs run as before.
        assert outcome == "completed"
        assert [f["code"] for f in findings if f["code"].startswith("authorize")] == [
            "authorize_unavailable"
        ]
    said = [r.getMessage() for r in caplog.records if why in r.getMessage()]
    assert len(said) == 1, said
    assert "Traceback" not in caplog.text


def test_browsers_at_once_are_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """At most `browsers` attempts run at once, whatever the crawl's concurrency."""
    from probe.authorize.outcome import AttemptResult, Outcome, Verdict

    running = Counter[str]()
    peak: list[int] = []

    async def fake_attempt(options: Any, **_: Any) -> AttemptResult:
        running["now"] += 1
        peak.append(running["now"])
        await anyio.sleep(0.05)
        running["now"] -= 1
        return AttemptResult(
            base_url=options.base_url,
            verdict=Verdict(Outcome.DENIED, "access_denied", None),
            started_at="2026-12-06T00:00:00+00:00",
            duration_ms=1.0,
            evidence={},
        )

    monkeypatch.setattr(session_module, "run_attempt", fake_attempt)
    stored: list[str] = []

    class Writer:
        def add_authorization_attempt(self, endpoint_id: int, outcome: str, *_: Any) -> bool:
            stored.append(outcome)
            return True

    secrets_file = tmp_path / "secrets.yaml"
    secrets_file.write_text(yaml.safe_dump({"u": "member", "p": "pw-123456", "c": "cs-123456"}))
    logins = authorizing.MemberLogins(
        writer=Writer(),  # type: ignore[arg-type]
        secrets=SecretSource(secrets_file),
        token_store=TokenStore(None),
        browsers=2,
        unavailable=lambda: None,
    )
    text = f"""
secrets_file: {secrets_file}
payers:
  - name: A
    endpoints:
      - base_url: https://a.example/fhir
        credentials: {{kind: refresh_token, client_id: app, client_secret: {{secret: c}},
                       refresh_token: {{secret: c}}}}
        test_patients:
""" + "".join(
        f"""          - label: m{i}
            id: p{i}
            authorize: {{username: {{secret: u}}, password: {{secret: p}},
                         redirect_port: {18000 + i}}}
"""
        for i in range(6)
    )
    from probe.directory.schema import parse_directory

    endpoint = parse_directory(text, tmp_path / "e.yaml").payers[0].endpoints[0]

    async def go() -> None:
        async with anyio.create_task_group() as tg:
            for i, patient in enumerate(endpoint.test_patients):
                login = authorizing.login_target(endpoint.base_url, i, endpoint, patient)
                assert login is not None
                tg.start_soon(logins._attempt, login, 60.0)

    anyio.run(go)
    assert stored == ["denied"] * 6
    assert max(peak) == 2
