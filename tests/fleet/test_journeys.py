"""The member login journeys: each walked with a real PKCE authorization, pages parsed as HTML."""

from __future__ import annotations

import base64
import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urljoin, urlsplit

import httpx
import pytest

from probe.fleet import journeys
from probe.fleet.app import Fleet
from probe.fleet.config import JOURNEYS, load_fleet_config, parse_fleet_config
from probe.fleet.oauth import MEMBER_PASSWORD

from .conftest import make_fleet

pytestmark = pytest.mark.anyio
Client = Callable[[Fleet], httpx.AsyncClient]
VERIFIER = "k" * 43 + "-journeys-verifier"
REDIRECT = "http://127.0.0.1:8765/callback"
SCOPE = "launch/patient openid fhirUser offline_access patient/*.read"
_VOID = {"input", "meta", "br", "hr", "img", "link"}


@dataclass
class Form:
    """One <form>: its action, method, inputs (as parsed) and submit buttons in order."""

    action: str
    method: str
    inputs: list[dict[str, str]] = field(default_factory=list)
    buttons: list[dict[str, str]] = field(default_factory=list)


class Page(HTMLParser):
    """The parts of a journey page the tests look at."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.title = ""
        self.forms: list[Form] = []
        self.links: list[dict[str, str]] = []
        self.labels: list[dict[str, str]] = []
        self.elements: dict[str, dict[str, str]] = {}
        self.text: list[str] = []
        self._open: list[dict[str, str]] = []  # the elements being read, innermost last
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs} | {"_tag": tag, "_text": ""}
        if "id" in a:
            self.elements[a["id"]] = a
        if tag == "form":
            self.forms.append(Form(a.get("action", ""), a.get("method", "get").lower()))
        elif tag == "input" and self.forms:
            self.forms[-1].inputs.append(a)
        elif tag == "button" and self.forms:
            self.forms[-1].buttons.append(a)
        elif tag == "a":
            self.links.append(a)
        elif tag == "label":
            self.labels.append(a)
        if tag not in _VOID:
            self._open.append(a)

    def handle_endtag(self, tag: str) -> None:
        while self._open:
            done = self._open.pop()
            if done["_tag"] == "title":
                self.title = done["_text"]
            if done["_tag"] == tag:
                break

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        for open_element in self._open:
            open_element["_text"] += data

    def link(self, text: str) -> dict[str, str]:
        """The <a> whose text is `text`."""
        return next(a for a in self.links if a["_text"].strip() == text)

    @property
    def all_text(self) -> str:
        """The page's text content."""
        return " ".join("".join(self.text).split())


def _challenge() -> str:
    digest = hashlib.sha256(VERIFIER.encode()).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def _request(fleet: Fleet, **extra: str) -> dict[str, str]:
    return {
        "response_type": "code",
        "client_id": fleet.credentials("p").client_id,
        "redirect_uri": REDIRECT,
        "state": "st-123",
        "scope": SCOPE,
        "aud": fleet.base_url("p"),
        "code_challenge": _challenge(),
        "code_challenge_method": "S256",
        **extra,
    }


def _fleet(journey: str, hosts: int = 2, **payer: Any) -> Fleet:
    return make_fleet(
        {"slug": "p", "oauth": {"client_auth": "none", "journey": journey}, **payer}, hosts=hosts
    )


def _fill(form: Form, username: str, password: str) -> dict[str, str]:
    """Fill a sign-in form the way a browser driver would: by input type, hidden ones as is."""
    data: dict[str, str] = {}
    for inp in form.inputs:
        kind = inp.get("type", "text")
        if kind == "hidden":
            data[inp["name"]] = inp["value"]
        elif kind == "password":
            data[inp["name"]] = password
        elif kind == "text":
            data[inp["name"]] = username
    return data


async def _sign_in(
    client: httpx.AsyncClient, fleet: Fleet, password: str = MEMBER_PASSWORD, **extra: str
) -> tuple[Page, httpx.Response]:
    """GET authorize, fill the sign-in form, POST it; the form's page and the POST's answer."""
    authorize = fleet.site("p").oauth_url("authorize")
    first = await client.get(authorize, params=_request(fleet, **extra))
    assert first.status_code == 200, first.text
    page = Page(first.text)
    form = page.forms[0]
    assert form.method == "post"
    data = _fill(form, fleet.patients("p")[0], password)
    answer = await client.post(urljoin(str(first.url), form.action), data=data)
    return page, answer


async def _consent_page(client: httpx.AsyncClient, answer: httpx.Response) -> tuple[Page, str]:
    assert answer.status_code == 303, answer.text
    consent = await client.get(answer.headers["location"])
    assert consent.status_code == 200, consent.text
    return Page(consent.text), str(consent.url)


def _callback(response: httpx.Response) -> dict[str, list[str]]:
    assert response.status_code == 302, response.text
    location = response.headers["location"]
    assert location.startswith(REDIRECT + "?")
    return parse_qs(urlsplit(location).query)


async def _submit(
    client: httpx.AsyncClient, url: str, form: Form, button: dict[str, str], **replace: list[str]
) -> httpx.Response:
    """Submit a consent form with one of its buttons (checked checkboxes included)."""
    data: dict[str, list[str]] = {}
    for inp in form.inputs:
        kind = inp.get("type", "text")
        if kind == "hidden" or (kind == "checkbox" and "checked" in inp):
            data.setdefault(inp["name"], []).append(inp["value"])
    data.update(replace)
    if "name" in button:
        data[button["name"]] = [button["value"]]
    return await client.post(urljoin(url, form.action), data=data)


async def _exchange(client: httpx.AsyncClient, fleet: Fleet, code: str) -> dict[str, Any]:
    response = await client.post(
        fleet.site("p").token_url,
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT,
            "client_id": fleet.credentials("p").client_id,
            "code_verifier": VERIFIER,
        },
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_journey_is_configurable_and_defaults_to_consent() -> None:
    config = parse_fleet_config(
        {"payers": [{"slug": "a"}, {"slug": "b", "oauth": {"journey": "popup"}}]}
    )
    assert [p.oauth.journey for p in config.payers] == ["consent", "popup"]
    assert set(journeys.LOGIN_FORMS) == set(JOURNEYS)
    with pytest.raises(Exception, match="journey"):
        parse_fleet_config({"payers": [{"slug": "a", "oauth": {"journey": "nope"}}]})


async def test_consent_allow_gives_a_code_that_exchanges(client_for: Client) -> None:
    fleet = _fleet("consent")
    client = client_for(fleet)
    login, answer = await _sign_in(client, fleet)
    assert login.title == "Sign in - P"
    user, password = login.elements["username"], login.elements["password"]
    assert user["autocomplete"] == "username" and user["name"] == "username"
    assert password["autocomplete"] == "current-password" and password["type"] == "password"
    assert {lb.get("for") for lb in login.labels} == {"username", "password"}
    assert login.forms[0].buttons[0]["_text"] == "Sign in"
    assert "password" not in answer.headers["location"]
    page, url = await _consent_page(client, answer)
    assert "patient/*.read" in page.all_text and "offline_access" in page.all_text
    form = page.forms[0]
    hidden = {i["name"]: i["value"] for i in form.inputs if i["type"] == "hidden"}
    assert hidden["state"] == "st-123" and hidden["redirect_uri"] == REDIRECT and hidden["txn"]
    assert [b["_text"] for b in form.buttons] == ["Allow"]
    assert page.link("Deny")
    query = _callback(await _submit(client, url, form, form.buttons[0]))
    assert query["state"] == ["st-123"]
    body = await _exchange(client, fleet, query["code"][0])
    assert body["patient"] == fleet.patients("p")[0]
    assert body["scope"] == SCOPE
    assert body["refresh_token"]
    # The session is spent: the same consent cannot be given twice.
    again = await _submit(client, url, form, form.buttons[0])
    assert again.status_code == 400


async def test_consent_deny_link(client_for: Client) -> None:
    fleet = _fleet("consent")
    client = client_for(fleet)
    _, answer = await _sign_in(client, fleet)
    page, url = await _consent_page(client, answer)
    query = _callback(await client.get(urljoin(url, page.link("Deny")["href"])))
    assert query == {"error": ["access_denied"], "state": ["st-123"]}


@pytest.mark.parametrize("journey", sorted(JOURNEYS))
async def test_wrong_password_re_renders_the_sign_in_page(
    client_for: Client, journey: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(journeys, "SLOW_LOGIN_S", 0.01)
    fleet = _fleet(journey)
    client = client_for(fleet)
    _, answer = await _sign_in(client, fleet, password="wrong", display="popup")
    assert answer.status_code == 200
    page = Page(answer.text)
    assert page.elements["login-message"]["_text"] == "Invalid username or password"
    assert page.title.startswith("Sign in - ")
    assert "wrong" not in answer.text
    hidden = {i["name"]: i["value"] for i in page.forms[0].inputs if i["type"] == "hidden"}
    assert hidden["state"] == "st-123"


async def test_consent_scopes_grants_only_the_checked_ones(client_for: Client) -> None:
    fleet = _fleet("consent_scopes")
    client = client_for(fleet)
    login, answer = await _sign_in(client, fleet)
    member = login.elements["member-id"]
    assert member["name"] == "memberId" and "autocomplete" not in member
    assert "autocomplete" not in login.elements["member-pwd"]
    assert login.forms[0].buttons[0]["_text"] == "Log in"
    page, url = await _consent_page(client, answer)
    form = page.forms[0]
    boxes = [i for i in form.inputs if i["type"] == "checkbox"]
    assert [b["value"] for b in boxes] == SCOPE.split()
    assert all("checked" in b and b["name"] == "scope" for b in boxes)
    assert [b["_text"] for b in form.buttons] == ["Authorize"]
    keep = ["launch/patient", "patient/*.read"]
    query = _callback(await _submit(client, url, form, form.buttons[0], scope=keep))
    assert query["state"] == ["st-123"]
    body = await _exchange(client, fleet, query["code"][0])
    assert body["scope"] == "launch/patient patient/*.read"
    assert "id_token" not in body  # openid was not granted


async def test_identity_verification_detours_to_another_host_and_never_ends(
    client_for: Client,
) -> None:
    fleet = _fleet("identity_verification")
    client = client_for(fleet)
    site = fleet.site("p")
    _, answer = await _sign_in(client, fleet)
    assert answer.status_code == 303
    location = urlsplit(answer.headers["location"])
    assert location.hostname == site.alt_host != site.host
    assert location.path == "/_idv/idme/p/verify"
    idv = await client.get(answer.headers["location"])
    assert idv.status_code == 200
    page = Page(idv.text)
    assert page.title == "ID.me - Verify your identity"
    form = page.forms[0]
    assert {i["name"] for i in form.inputs} == {"ssn", "document"}
    again = await client.post(
        urljoin(str(idv.url), form.action),
        data={"ssn": "123-45-6789"},
        files={"document": ("id.png", b"\x89PNG", "image/png")},
    )
    assert again.status_code == 200
    assert Page(again.text).title == "ID.me - Verify your identity"
    assert "could not verify" in again.text
    # Not served on the payer's own host, nor for another payer.
    wrong_host = answer.headers["location"].replace(site.alt_host, site.host)
    assert (await client.get(wrong_host)).status_code == 404


async def test_identity_verification_on_a_one_host_fleet_uses_the_spare_address(
    client_for: Client,
) -> None:
    fleet = _fleet("identity_verification", hosts=1)
    client = client_for(fleet)
    assert fleet.addresses == ["127.0.0.2", "127.0.0.3"]
    _, answer = await _sign_in(client, fleet)
    assert urlsplit(answer.headers["location"]).hostname == "127.0.0.3"
    assert (await client.get(answer.headers["location"])).status_code == 200


async def test_ineligible_member_gets_an_error_on_the_callback(client_for: Client) -> None:
    fleet = _fleet("ineligible")
    client = client_for(fleet)
    login, answer = await _sign_in(client, fleet)
    assert not login.elements.get("username")  # labels wrap the inputs, no ids
    assert [lb.get("for") for lb in login.labels] == [None, None]
    names = {
        i["name"]: i.get("autocomplete") for i in login.forms[0].inputs if i["type"] != "hidden"
    }
    assert names == {"userid": "username", "passwd": "current-password"}
    page, url = await _consent_page(client, answer)
    response = await _submit(client, url, page.forms[0], page.forms[0].buttons[0])
    assert "error_description=Member+is+not+eligible+for+this+plan" in response.headers["location"]
    assert _callback(response) == {
        "error": ["access_denied"],
        "error_description": ["Member is not eligible for this plan"],
        "state": ["st-123"],
    }


async def test_popup_journey(client_for: Client) -> None:
    fleet = _fleet("popup")
    client = client_for(fleet)
    authorize = fleet.site("p").oauth_url("authorize")
    landing = await client.get(authorize, params=_request(fleet))
    page = Page(landing.text)
    assert page.forms == []  # nothing to fill here: the form is in the popup
    button = page.elements["sign-in"]
    assert button["type"] == "button" and button["_text"] == "Sign in"
    assert "window.open(" in landing.text
    popup = await client.get(button["data-popup"])
    assert parse_qs(urlsplit(button["data-popup"]).query)["display"] == ["popup"]
    popup_page = Page(popup.text)
    form = popup_page.forms[0]
    data = _fill(form, fleet.patients("p")[0], "password")
    done = await client.post(urljoin(str(popup.url), form.action), data=data)
    assert done.status_code == 200
    done_page = Page(done.text)
    assert "window.opener.location.assign" in done.text and "window.close()" in done.text
    consent = await client.get(done_page.elements["signed-in"]["data-next"])
    consent_page = Page(consent.text)
    form = consent_page.forms[0]
    query = _callback(await _submit(client, str(consent.url), form, form.buttons[0]))
    assert query["state"] == ["st-123"]
    assert (await _exchange(client, fleet, query["code"][0]))["patient"]


async def test_slow_sign_in(client_for: Client, monkeypatch: pytest.MonkeyPatch) -> None:
    assert journeys.SLOW_LOGIN_S == 3.0
    monkeypatch.setattr(journeys, "SLOW_LOGIN_S", 0.3)
    fleet = _fleet("slow")
    client = client_for(fleet)
    started = time.monotonic()
    _, answer = await _sign_in(client, fleet)
    assert time.monotonic() - started >= 0.3
    page, url = await _consent_page(client, answer)
    query = _callback(await _submit(client, url, page.forms[0], page.forms[0].buttons[0]))
    assert query["state"] == ["st-123"]
    await _exchange(client, fleet, query["code"][0])


async def test_drops_state(client_for: Client) -> None:
    fleet = _fleet("drops_state")
    client = client_for(fleet)
    _, answer = await _sign_in(client, fleet)
    page, url = await _consent_page(client, answer)
    query = _callback(await _submit(client, url, page.forms[0], page.forms[0].buttons[0]))
    assert set(query) == {"code"}
    await _exchange(client, fleet, query["code"][0])
    _, answer = await _sign_in(client, fleet)
    page, url = await _consent_page(client, answer)
    denied = _callback(await client.get(urljoin(url, page.link("Deny")["href"])))
    assert denied == {"error": ["access_denied"]}


async def test_not_active(client_for: Client) -> None:
    fleet = _fleet("not_active")
    client = client_for(fleet)
    _, answer = await _sign_in(client, fleet)
    assert answer.status_code == 200
    page = Page(answer.text)
    message = "Your account is not yet active. Please try again in 24 hours."
    assert page.elements["login-message"]["_text"] == message
    assert page.forms[0].action.endswith("/oauth/authorize")


async def test_default_deny(client_for: Client) -> None:
    fleet = _fleet("default_deny")
    client = client_for(fleet)
    _, answer = await _sign_in(client, fleet)
    page, url = await _consent_page(client, answer)
    form = page.forms[0]
    first = form.buttons[0]
    assert first["_text"] == "Deny" and first["type"] == "submit" and "primary" in first["class"]
    assert "autofocus" in first
    query = _callback(await _submit(client, url, form, first))
    assert query == {"error": ["access_denied"], "state": ["st-123"]}
    # Submitting the form without a button (Enter in some browsers) denies too.
    _, answer = await _sign_in(client, fleet)
    page, url = await _consent_page(client, answer)
    query = _callback(await _submit(client, url, page.forms[0], {}))
    assert query["error"] == ["access_denied"]
    _, answer = await _sign_in(client, fleet)
    page, url = await _consent_page(client, answer)
    allowed = _callback(await client.get(urljoin(url, page.link("Allow access")["href"])))
    await _exchange(client, fleet, allowed["code"][0])


async def test_pages_escape_request_parameters(client_for: Client) -> None:
    fleet = _fleet("consent")
    client = client_for(fleet)
    evil = '"><script>alert(1)</script>'
    first = await client.get(
        fleet.site("p").oauth_url("authorize"), params=_request(fleet, state=evil)
    )
    assert "<script>alert" not in first.text
    _, answer = await _sign_in(client, fleet, state=evil)
    page, url = await _consent_page(client, answer)
    consent = await client.get(url)
    assert "<script>alert" not in consent.text
    query = _callback(await _submit(client, url, page.forms[0], page.forms[0].buttons[0]))
    assert query["state"] == [evil]


def test_demo_fleet_journeys() -> None:
    config = load_fleet_config(Path(journeys.__file__).parent / "data" / "demo-fleet.yaml")
    counts: dict[str, int] = {}
    for payer in config.payers:
        counts[payer.oauth.journey] = counts.get(payer.oauth.journey, 0) + 1
    assert len(config.payers) == 22
    assert counts["identity_verification"] == 1 and counts["ineligible"] == 1
    assert counts["consent"] > len(config.payers) // 2
