"""Issue 18, round two (items 4, 5, 7, 8): what hostile servers can make probe store or print.

- Secrets: a next link carrying the token under a name probe does not know (``?t=``, ``?jwt=``,
  in the path), an OperationOutcome echoing ``Bearer <token>``, a token endpoint echoing the
  ``client_secret_basic`` header, a token with CR/LF in it: no encoding of any secret reaches
  the store or the output, and stored URLs keep only harmless query parameters.
- NUL and lone surrogates in server strings are stored the same on SQLite and PostgreSQL; a
  target one of whose observations the database rejected is ``failed``, never ``done``.
- Terminal, XML and Markdown injection: escape sequences, OSC 8 links, bidi overrides and rich
  markup are shown inert; JUnit is well-formed XML; Markdown carries no raw HTML.
- Credentials in a base URL are never printed.
"""

from __future__ import annotations

import base64
import io
import json
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import anyio
import httpx
import pytest
import yaml
from rich.console import Console
from sqlalchemy import select, text
from sqlalchemy.exc import DataError

from probe.cli.progress import LogReporter, summary_table
from probe.cli.render import report_json, report_table, sync_json, sync_tables
from probe.crawl.crawler import CrawlSummary, TargetOutcome, crawl, select_targets
from probe.crawl.options import CrawlOptions
from probe.directory.schema import Directory, parse_directory, targets
from probe.directory.secrets import SecretSource
from probe.http.limits import Limits
from probe.http.redact import KNOWN_SECRETS, register_secret
from probe.models import Exchange, ExtractStep
from probe.store import writer as writer_module
from probe.store.handle import Store
from probe.store.sanitize import strip_url_secrets
from probe.store.tables import (
    Base,
    CheckResultRow,
    HttpRequestRow,
    ProbeRunRow,
    RunKind,
    RunStatus,
    RunTargetRow,
    SyncJobRow,
    TargetStatus,
)
from probe.sync.result import SyncResult
from tests.discovery_docs import capability_statement, smart_configuration
from tests.drift.fleet_runs import Quiet
from tests.servers import Route, serve

TOKEN = "s3cr3t/T0ken+value=xyz789"
CLIENT_ID = "client-1"
CLIENT_SECRET = "basic:Secret/42&more"
REFRESH = "refresh-token-abcdef-123456"
CRLF_TOKEN = "crlf-first-half-1234\r\ncrlf-second-half-5678"
ENV = {
    "ECHO_TOKEN": TOKEN,
    "BASIC_SECRET": CLIENT_SECRET,
    "BASIC_REFRESH": REFRESH,
    "CRLF_TOKEN": CRLF_TOKEN,
}
BASIC = base64.b64encode(
    f"{quote(CLIENT_ID, safe='')}:{quote(CLIENT_SECRET, safe='')}".encode()
).decode()

#: Every form in which a secret must never be stored or printed.
FORBIDDEN = [
    TOKEN,
    quote(TOKEN, safe=""),
    quote_plus(TOKEN),
    base64.b64encode(TOKEN.encode()).decode(),
    CLIENT_SECRET,
    quote(CLIENT_SECRET, safe=""),
    BASIC,
    base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode(),
    REFRESH,
    "crlf-first-half-1234",
    "crlf-second-half-5678",
]

ESCAPES = "\x1b[2J\x1b]8;;https://evil.example/\x07click\x1b]8;;\x07\u202e\x9b31m\x07\x08"
MARKUP = "[bold red]PWNED[/bold red][link=https://evil.example]x[/link]"
HOSTILE_NAME = f"Evil{ESCAPES}{MARKUP}"
#: What no printed output may contain once a hostile server's strings went through it.
CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


@pytest.fixture(autouse=True)
def _forget_secrets() -> Iterator[None]:
    KNOWN_SECRETS.forget_all()
    yield
    KNOWN_SECRETS.forget_all()


def _directory() -> Directory:
    def payer(name: str, host: str, credentials: dict[str, Any] | None) -> dict[str, Any]:
        endpoint: dict[str, Any] = {"base_url": f"https://{host}/fhir"}
        if credentials is not None:
            endpoint["credentials"] = credentials
            endpoint["test_patients"] = [{"label": "p1", "id": "p1"}]
        return {"name": name, "endpoints": [endpoint]}

    payers = [
        payer("Echo", "echo.example", {"kind": "bearer", "token": {"env": "ECHO_TOKEN"}}),
        payer(
            "Basic",
            "basic.example",
            {
                "kind": "refresh_token",
                "client_id": CLIENT_ID,
                "client_secret": {"env": "BASIC_SECRET"},
                "refresh_token": {"env": "BASIC_REFRESH"},
                "token_url": "https://basic.example/oauth/token",
            },
        ),
        payer("Crlf", "crlf.example", {"kind": "bearer", "token": {"env": "CRLF_TOKEN"}}),
        payer("Nul", "nul.example", None),
    ]
    text_ = yaml.safe_dump({"version": 1, "payers": payers})
    return parse_directory(text_, Path("round-two.yaml"))


def _json(status: int, body: Any) -> httpx.Response:
    return httpx.Response(
        status, content=json.dumps(body).encode(), headers={"Content-Type": "application/fhir+json"}
    )


def _outcome(text_: str) -> dict[str, Any]:
    return {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": "security", "diagnostics": text_}],
        "text": {"status": "generated", "div": f"<div>{text_}</div>"},
    }


class HostileFleet:
    """Four payers: one echoes its token through next links and an OperationOutcome, one
    echoes the client_secret_basic header from its token endpoint, one receives a token with
    CR/LF in it, one serves a CapabilityStatement with NUL, surrogates and escape sequences."""

    def __init__(self) -> None:
        self.urls: list[str] = []

    async def handler(self, request: httpx.Request) -> httpx.Response:
        url = str(request.url)
        self.urls.append(url)
        host, path = request.url.host, request.url.path
        base = f"https://{host}/fhir"
        auth = request.headers.get("authorization", "")
        if path.endswith("/metadata"):
            doc = capability_statement()
            if host == "nul.example":
                doc["fhirVersion"] = "4.0.1\x00\ud800"
                doc["software"] = {"name": HOSTILE_NAME, "version": "1\x00"}
                doc["publisher"] = "pub\x00lisher"
            return _json(200, doc)
        if path.endswith("smart-configuration"):
            conf = smart_configuration()
            conf["token_endpoint"] = f"https://{host}/oauth/token"
            return _json(200, conf)
        if path == "/oauth/token":
            # echoes the client_secret_basic header, with and without its scheme
            echoed = auth.removeprefix("Basic ")
            return httpx.Response(
                400,
                json={
                    "error": "invalid_client",
                    "error_description": f"rejected {auth}; credential {echoed} unknown",
                },
            )
        if path.endswith("/Patient") and not auth:
            return httpx.Response(401)
        if host == "crlf.example":
            first, _, second = auth.removeprefix("Bearer ").partition("\r\n")
            return _json(401, _outcome(f"token {auth} refused; line 1: {first}; line 2: {second}"))
        if path.endswith("/$everything") and "t" not in request.url.params:
            bundle = {
                "resourceType": "Bundle",
                "type": "searchset",
                "link": [
                    {
                        "relation": "next",
                        "url": f"{base}/Patient/p1/$everything?t={quote(TOKEN)}&_count=10",
                    }
                ],
                "entry": [{"resource": {"resourceType": "Patient", "id": "p1"}}],
            }
            return _json(200, bundle)
        if "t" in request.url.params:
            nxt = f"{base}/page/{quote(TOKEN, safe='')}?jwt={TOKEN}&_getpages=abc&page=2"
            bundle = {
                "resourceType": "Bundle",
                "type": "searchset",
                "link": [{"relation": "next", "url": nxt}],
                "entry": [{"resource": {"resourceType": "Coverage", "id": "c1"}}],
            }
            return _json(200, bundle)
        return _json(400, _outcome(f"invalid header Authorization: {auth} (jwt={TOKEN})"))


def _crawl(store: Store, fleet: HostileFleet, directory: Directory | None = None) -> CrawlSummary:
    d = directory or _directory()
    options = CrawlOptions(
        concurrency=4, per_host=2, rate=1000, limits=Limits(max_retries=0), portal=False
    )

    async def go() -> CrawlSummary:
        return await crawl(
            store,
            d,
            select_targets(d),
            options,
            Quiet(),
            secrets=SecretSource(env=ENV),
            transport=httpx.MockTransport(fleet.handler),
        )

    return anyio.run(go)


def _everything_stored(store: Store) -> str:
    """Every row of every table, as text (JSON columns included)."""
    parts: list[str] = []
    with store.engine.connect() as conn:
        for table in Base.metadata.sorted_tables:
            for row in conn.execute(select(table)):
                parts.append(repr(tuple(row)))
                parts.append(json.dumps([str(v) for v in row], ensure_ascii=False))
    return "\n".join(parts)


def _assert_no_secret(where: str, haystack: str) -> None:
    for form in FORBIDDEN:
        assert form not in haystack, f"{form!r} found in {where}"


# -- 4. secrets -----------------------------------------------------------------------------------


def test_no_encoding_of_any_secret_reaches_the_store(store: Store) -> None:
    fleet = HostileFleet()
    summary = _crawl(store, fleet)
    assert summary.status is RunStatus.COMPLETED
    assert any(TOKEN in u or quote(TOKEN) in u for u in fleet.urls)  # the attack happened
    stored = _everything_stored(store)
    _assert_no_secret("the store", stored)
    with store.session() as s:
        urls = list(s.scalars(select(HttpRequestRow.url)))
        details = list(s.scalars(select(SyncJobRow.details)))
    echo = [u for u in urls if "echo.example" in u]
    assert any("?t=REDACTED&_count=10" in u for u in echo), echo
    assert any("/page/REDACTED?jwt=REDACTED&_getpages=abc&page=2" in u for u in echo), echo
    assert len(details) == 3  # one sync per credentialed payer, each with its findings
    # what the findings say, and the JSON probe prints, hold no secret either
    for outcome in summary.outcomes:
        for sync in outcome.syncs:
            _assert_no_secret("the crawl summary", repr(sync))


def test_stored_urls_keep_only_harmless_parameters() -> None:
    assert strip_url_secrets("https://h.example/r4/Patient?_count=1") == (
        "https://h.example/r4/Patient?_count=1"
    )
    kept = "https://h.example/r4?_getpages=x&_getpagesoffset=10&_count=50&_format=json&page=2"
    assert strip_url_secrets(kept) == kept
    assert strip_url_secrets("https://h.example/r4/x?t=abc&jwt=def&_id=1") == (
        "https://h.example/r4/x?t=REDACTED&jwt=REDACTED&_id=1"
    )
    assert strip_url_secrets("https://u:pw@h.example/r4?eyJhbGciOi") == (
        "https://REDACTED@h.example/r4?REDACTED"
    )
    assert strip_url_secrets("https://h.example/r4/x#k=v") == "https://h.example/r4/x#k=REDACTED"


def test_every_encoding_of_a_registered_secret_is_scrubbed() -> None:
    from probe.http.redact import scrub_secrets

    register_secret(TOKEN)
    register_secret(CRLF_TOKEN)
    KNOWN_SECRETS.register_basic(CLIENT_ID, CLIENT_SECRET)
    echo = " | ".join(
        [
            TOKEN,
            quote(TOKEN, safe=""),
            quote_plus(TOKEN),
            TOKEN.replace("/", "\\/"),
            base64.b64encode(TOKEN.encode()).decode(),
            BASIC,
            CLIENT_SECRET,
            "crlf-first-half-1234",
            "crlf-second-half-5678",
            json.dumps(CRLF_TOKEN),
            "Bearer abcdefghijklmnopqrstuvwxyz0123",  # an unknown bearer credential too
        ]
    )
    scrubbed = scrub_secrets(echo)
    _assert_no_secret("scrubbed text", scrubbed)
    assert "abcdefghijklmnopqrstuvwxyz0123" not in scrubbed
    assert "Bearer REDACTED" in scrubbed


def test_the_json_and_tables_probe_prints_hold_no_secret() -> None:
    register_secret(TOKEN)
    KNOWN_SECRETS.register_basic(CLIENT_ID, CLIENT_SECRET)
    result = SyncResult(
        base_url="https://echo.example/fhir",
        patient_id="p1",
        patient_label="p1",
        created_at=datetime.now(UTC),
    )
    result.add_finding("failed", f"server said: Bearer {TOKEN}; Basic {BASIC}", None)
    result.add_finding("paging", f"next link https://echo.example/x?t={quote(TOKEN)}", None)
    out = sync_json(result)
    console = Console(file=io.StringIO(), width=300)
    for table in sync_tables(result):
        console.print(table)
    printed = console.file.getvalue()  # type: ignore[attr-defined]
    for where, haystack in (("sync JSON", out), ("sync tables", printed)):
        _assert_no_secret(where, haystack)


# -- 5. NUL, surrogates, and observations the database rejects ------------------------------------


def test_nul_and_surrogates_are_stored_on_every_backend(store: Store) -> None:
    fleet = HostileFleet()
    d = _directory()
    only_nul = Directory.model_validate(
        {"version": 1, "payers": [p.model_dump() for p in d.payers if p.name == "Nul"]}
    )
    summary = _crawl(store, fleet, only_nul)
    assert summary.status is RunStatus.COMPLETED
    [outcome] = summary.outcomes
    assert outcome.error is None
    with store.session() as s:
        [target] = s.scalars(select(RunTargetRow)).all()
        checks = s.scalars(select(CheckResultRow)).all()
        run = s.scalars(select(ProbeRunRow)).one()
    assert target.status == "done"
    assert len(checks) == len(outcome.checks)  # every check stored, none lost
    version = next(c for c in checks if c.check_id == "metadata.fhir_version")
    assert "\x00" not in version.message and "4.0.1" in version.message
    assert run.status == "completed" and not run.note
    assert writer_rejections(store) == 0


def writer_rejections(store: Store) -> int:
    with store.engine.connect() as conn:
        return int(conn.scalar(text("select count(*) from run_targets where status = 'failed'")))


def _reject_requests_to(monkeypatch: pytest.MonkeyPatch, marker: str) -> None:
    """The database refuses every batch holding a request row whose URL contains `marker`, as
    PostgreSQL refuses a NUL byte, whichever way the writer sends its rows."""
    real = writer_module._write

    def picky(conn: Any, run_id: int, batch: Any, prepared: Any = None) -> int:
        if any(marker in str(r.get("url")) for r in batch.requests):
            raise DataError("INSERT", {}, Exception('invalid byte sequence for encoding "UTF8"'))
        return real(conn, run_id, batch, prepared)

    monkeypatch.setattr(writer_module, "_write", picky)


def test_a_rejected_observation_fails_its_target(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    _reject_requests_to(monkeypatch, "reject-me")
    run_id = store.start_run(RunKind.NIGHTLY)
    ids = store.upsert_directory(_directory())
    endpoints = [ids[t.key] for t in targets(_directory())]
    bad, good = endpoints[0], endpoints[1]
    with store.writer(run_id) as writer:
        for endpoint, path in ((bad, "reject-me"), (good, "metadata")):
            ex = Exchange(method="GET", url=f"https://x.example/{path}", step=ExtractStep.DISCOVERY)
            writer.add_exchanges(endpoint, [ex])
            writer.mark_target(endpoint, TargetStatus.DONE)
    assert set(writer.rejected_targets()) == {bad}
    with store.session() as s:
        rows = {r.endpoint_id: r for r in s.scalars(select(RunTargetRow))}
    assert rows[good].status == "done"
    assert rows[bad].status == "failed"
    assert (rows[bad].error or "").startswith("store_rejected: the store rejected an observation")


def test_a_crawl_whose_observation_was_rejected_does_not_mark_it_done(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    _reject_requests_to(monkeypatch, "nul.example")
    summary = _crawl(store, HostileFleet())
    by_name = {o.target.payer.name: o for o in summary.outcomes}
    assert (by_name["Nul"].error or "").startswith("store_rejected:")
    assert by_name["Echo"].error is None
    with store.session() as s:
        status = {r.endpoint_id: r.status for r in s.scalars(select(RunTargetRow))}
        run = s.scalars(select(ProbeRunRow)).one()
    assert status[by_name["Nul"].endpoint_id] == "failed"
    assert status[by_name["Echo"].endpoint_id] == "done"
    assert "rejected observations of 1 endpoint" in (run.note or "")


# -- 7. terminal, XML and Markdown injection ------------------------------------------------------


def _hostile_capability() -> bytes:
    doc = capability_statement()
    doc["fhirVersion"] = f"4.0.1{ESCAPES}{MARKUP}"
    doc["software"] = {"name": HOSTILE_NAME}
    return json.dumps(doc).encode()


def test_probe_check_prints_server_strings_inert() -> None:
    routes = {
        "/fhir/metadata": Route(
            200, _hostile_capability(), {"Content-Type": "application/fhir+json"}
        ),
    }
    with serve(routes) as (root, _seen):
        for fmt in ("table", "json"):
            done = subprocess.run(
                [sys.executable, "-m", "probe", "check", f"{root}/fhir", "--format", fmt],
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
                env={"COLUMNS": "400", "PATH": "/usr/bin:/bin", "TERM": "xterm-256color"},
            )
            assert done.returncode in (0, 1), done.stderr
            assert "2J" not in done.stdout.replace("\ufffd[2J", "") or "\x1b" not in done.stdout
            assert not CONTROL.search(done.stdout.replace("\n", "")), fmt
            if fmt == "table":
                assert "[bold red]PWNED[/bold red]" in done.stdout  # shown, not interpreted


def test_tables_and_log_lines_escape_markup_and_controls() -> None:
    from probe.models import Report

    d = parse_directory(
        yaml.safe_dump(
            {
                "version": 1,
                "payers": [
                    {"name": HOSTILE_NAME, "endpoints": [{"base_url": "https://e.example/r4"}]}
                ],
            }
        ),
        Path("x.yaml"),
    )
    [target] = targets(d)
    outcome = TargetOutcome(target, 1, error=f"probe error {ESCAPES}{MARKUP}")
    console = Console(file=io.StringIO(), width=400, force_terminal=True)
    console.print(summary_table([outcome]))
    stream = io.StringIO()
    LogReporter(stream).target_done(outcome, 1, 1)
    for printed in (console.file.getvalue(), stream.getvalue()):  # type: ignore[attr-defined]
        assert "\x1b[2J" not in printed and "\x1b]8;;https://evil" not in printed
        assert "\u202e" not in printed and "\x9b" not in printed and "\x07" not in printed
        assert "[bold red]PWNED[/bold red]" in printed
    assert "\x1b" not in stream.getvalue()
    empty = Report(base_url="https://e.example/r4", started_at=datetime.now(UTC))
    table_console = Console(file=io.StringIO(), width=200, force_terminal=True)
    table_console.print(report_table(empty))
    assert "\x1b]8" not in table_console.file.getvalue()  # type: ignore[attr-defined]
    assert not CONTROL.search(report_json(empty).replace("\n", ""))


def test_prerelease_reports_are_well_formed_whatever_the_server_sent(tmp_path: Path) -> None:
    routes = {
        "/fhir/metadata": Route(
            200, _hostile_capability(), {"Content-Type": "application/fhir+json"}
        ),
    }
    with serve(routes) as (root, _seen):
        junit, markdown = tmp_path / "junit.xml", tmp_path / "report.md"
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "probe",
                "prerelease",
                f"{root}/fhir",
                "--junit",
                str(junit),
                "--markdown",
                str(markdown),
                "--timeout",
                "5",
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            env={"COLUMNS": "300", "PATH": "/usr/bin:/bin"},
        )
    assert done.returncode in (0, 1), done.stderr
    assert not CONTROL.search(done.stdout.replace("\n", ""))
    xml = junit.read_text(encoding="utf-8")
    ET.fromstring(xml)  # noqa: S314 (our own output): well-formed XML 1.0
    assert not re.search("[\x00-\x08\x0b\x0c\x0e-\x1f]", xml)
    md = markdown.read_text(encoding="utf-8")
    assert not CONTROL.search(md.replace("\n", ""))
    assert "[bold red]" not in md  # brackets escaped: no link or markup syntax
    assert "\\[bold red\\]PWNED" in md


def test_markdown_escapes_html_and_markdown_syntax() -> None:
    from probe.prerelease.report import _md, _md_code

    assert _md("<img src=x onerror=alert(1)>") == "&lt;img src=x onerror=alert(1)&gt;"
    assert _md("a|b *c* _d_ [e](f) `g`") == "a\\|b \\*c\\* \\_d\\_ \\[e\\](f) \\`g\\`"
    assert _md(f"x{ESCAPES}\ny").count("\x1b") == 0
    assert _md_code("a`b|c") == "``a`b\\|c``"


# -- 8. credentials in a base URL -----------------------------------------------------------------


def test_userinfo_in_a_server_url_is_never_stored_or_printed() -> None:
    from probe.http.redact import redact_url

    url = "https://user:PASSWORD9@h.example/fhir/Patient?_count=1"
    assert "PASSWORD9" not in strip_url_secrets(url)
    assert "PASSWORD9" not in redact_url(url)
    from probe.store.sanitize import scrub, strip_text_secrets

    assert "PASSWORD9" not in strip_text_secrets(f"redirected to {url}")
    assert "PASSWORD9" not in json.dumps(scrub({"location": url}))


def test_long_and_many_secrets_are_scrubbed() -> None:
    """A 2,600-character key among hundreds of secrets: no recursion limit, every form gone.
    (Its speed is measured in bench/scrub.py, not here.)"""
    import secrets as random_secrets

    from probe.http.redact import scrub_secrets

    pem_like = (
        "-----BEGIN PRIVATE KEY-----\n"
        + "\n".join(random_secrets.token_urlsafe(48) for _ in range(40))
        + "\n-----END PRIVATE KEY-----\n"
    )
    register_secret(pem_like)  # 2,600 characters: no recursion limit in the matcher
    for _ in range(300):
        register_secret(random_secrets.token_urlsafe(24))
    text = f"server said {pem_like} and {json.dumps(pem_like)} " + "ordinary words " * 250
    out = scrub_secrets(text)
    assert "BEGIN PRIVATE KEY" not in out and pem_like.splitlines()[5] not in out
