"""Reading login, consent and interstitial pages: pure functions over page snapshots.

A :class:`PageSnapshot` lists a page's form fields and clickable controls with the attributes the
heuristics need (type, name, id, autocomplete, label text, visibility). The browser builds one
from the live DOM (``probe.authorize.browser``); :func:`snapshot_from_html` builds one from
static HTML, so every rule here is testable without a browser. Phrase lists are documented in
docs/authorize.md.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import Any

TEXT_TYPES = frozenset({"", "text", "email", "tel", "number"})

#: Login error wording that means the credentials (or the account) were refused.
LOGIN_ERROR_PHRASES = (
    "invalid username or password",
    "incorrect username or password",
    "invalid user id or password",
    "username or password is incorrect",
    "username or password you entered is incorrect",
    "invalid email or password",
    "incorrect email or password",
    "invalid credentials",
    "invalid password",
    "incorrect password",
    "wrong password",
    "invalid login",
    "login failed",
    "sign in failed",
    "sign-in failed",
    "account is not yet active",
    "account is not active",
    "account has not been activated",
    "account is locked",
    "account has been locked",
    "account locked",
    "account is disabled",
    "account has been disabled",
    "too many failed",
)

#: Page wording that means the member or plan cannot use the API.
INELIGIBLE_PHRASES = (
    "not eligible",
    "no longer eligible",
    "no active coverage",
    "coverage is not active",
    "coverage has ended",
    "not an eligible member",
    "no eligible plan",
    "plan does not support",
    "eligibility could not be verified",
)

#: Callback error codes that mean the member or plan is not eligible (beyond access_denied).
INELIGIBLE_ERRORS = frozenset(
    {"query_ineligible", "ineligible", "not_eligible", "member_not_eligible", "plan_ineligible"}
)

#: Identity-verification vendors: display name -> hosts (a host or any subdomain of it).
IDV_VENDORS: Mapping[str, tuple[str, ...]] = {
    "ID.me": ("id.me",),
    "1upHealth": ("1up.health", "1uphealth.care"),
    "Edifecs": ("edifecs.com", "edifecsfedcloud.com"),
    "Smile CDR": ("smilecdr.com",),
    "CLEAR": ("clearme.com",),
    "Login.gov": ("login.gov",),
}
#: Page names of the vendors (title or heading), matched together with IDV_PHRASES.
IDV_NAMES: Mapping[str, tuple[str, ...]] = {
    "ID.me": ("id.me",),
    "1upHealth": ("1uphealth", "1up health", "1up.health"),
    "Edifecs": ("edifecs",),
    "Smile CDR": ("smile cdr", "smilecdr", "smile digital health"),
    "CLEAR": ("clear",),
    "Login.gov": ("login.gov",),
}
IDV_PHRASES = (
    "verify your identity",
    "identity verification",
    "verify identity",
    "confirm your identity",
    "prove your identity",
    "identity proofing",
)

_APPROVE = (
    ("allow", 0),
    ("authorize", 0),
    ("authorise", 0),
    ("approve", 0),
    ("accept", 0),
    ("agree", 0),
    ("grant", 0),
    ("consent", 1),
    ("share", 1),
    ("continue", 2),
    ("yes", 2),
    ("ok", 3),
)
_DECLINE = (
    ("deny", 0),
    ("decline", 0),
    ("don't allow", 0),
    ("do not allow", 0),
    ("reject", 0),
    ("cancel", 1),
    ("not now", 1),
    ("no", 2),
)
_NEGATED = re.compile(r"\b(don't|do not|not|never|no)\b")
_SIGN_IN = ("sign in", "log in", "login", "sign on", "signin", "next", "submit", "continue")
_USER_WORDS = re.compile(r"user|login|e-?mail|member|account|subscriber|\bid\b", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Field:
    """One form field: `index` is its handle on the page."""

    index: int
    tag: str = "input"
    type: str = "text"
    name: str = ""
    id: str = ""
    autocomplete: str = ""
    label: str = ""
    visible: bool = True
    form: int | None = None
    checked: bool = False


@dataclass(frozen=True, slots=True)
class Control:
    """One clickable control (button, submit input, link): `index` is its handle on the page."""

    index: int
    kind: str = "button"
    text: str = ""
    type: str = ""
    visible: bool = True
    form: int | None = None


@dataclass(frozen=True, slots=True)
class PageSnapshot:
    """What the heuristics see of a page: host, title, headings, visible text, fields, controls."""

    host: str = ""
    title: str = ""
    headings: tuple[str, ...] = ()
    text: str = ""
    fields: tuple[Field, ...] = ()
    controls: tuple[Control, ...] = ()


@dataclass(frozen=True, slots=True)
class LoginForm:
    """The username and/or password field of a login step, and how to submit it."""

    username: Field | None
    password: Field | None
    submit: Control | None


def _norm(text: str) -> str:
    return " ".join(text.lower().replace("\u2019", "'").split())


def _contains_phrase(text: str, phrases: Iterable[str]) -> str | None:
    low = _norm(text)
    return next((p for p in phrases if p in low), None)


def _username_score(field: Field) -> int:
    auto = field.autocomplete.lower().split()
    score = 0
    if "username" in auto or "email" in auto:
        score += 10
    if field.type == "email":
        score += 4
    if _USER_WORDS.search(f"{field.name} {field.id}"):
        score += 5
    if _USER_WORDS.search(field.label):
        score += 5
    return score


def _is_text(field: Field) -> bool:
    return field.tag == "input" and field.type in TEXT_TYPES and field.visible


def login_form(page: PageSnapshot) -> LoginForm | None:
    """The login step on this page (username, password or both), or None when it has none."""
    passwords = [f for f in page.fields if f.visible and f.type == "password"]
    password = next(
        (f for f in passwords if "current-password" in f.autocomplete.lower()),
        passwords[0] if passwords else None,
    )
    if password is not None and "new-password" in password.autocomplete.lower():
        password = None  # a sign-up form, not a sign-in
    scored = [(f, _username_score(f)) for f in page.fields if _is_text(f)]
    if password is not None:
        scored = [(f, s) for f, s in scored if f.form == password.form]
    candidates = sorted((pair for pair in scored if pair[1] > 0), key=lambda p: -p[1])
    username = candidates[0][0] if candidates else None
    if username is None and password is not None:
        before = [f for f, _ in scored if f.index < password.index]
        username = before[-1] if before else None
    if username is None and password is None:
        return None
    anchor = password if password is not None else username
    form = anchor.form if anchor is not None else None
    return LoginForm(username, password, submit_control(page, form))


def submit_control(page: PageSnapshot, form: int | None) -> Control | None:
    """The control that submits a login step: the form's submit button, else sign-in wording."""
    visible = [c for c in page.controls if c.visible and c.kind != "link"]
    in_form = [c for c in visible if form is not None and c.form == form]
    submit = next((c for c in in_form if c.type == "submit"), None)
    if submit is not None:
        return submit
    for word in _SIGN_IN:
        found = next((c for c in in_form or visible if word in _norm(c.text)), None)
        if found is not None:
            return found
    return None


def _rank(text: str, words: tuple[tuple[str, int], ...], negated_ok: bool) -> int | None:
    low = _norm(text)
    if not low or len(low) > 60:
        return None
    if not negated_ok and _NEGATED.search(low):
        return None
    for word, rank in words:
        if re.search(rf"(?<![\w']){re.escape(word)}(?![\w'])", low):
            return rank
    return None


def consent_control(page: PageSnapshot, decline: bool = False) -> Control | None:
    """The control that approves (or, with `decline`, declines) on a consent page, if any."""
    best: tuple[int, int, Control] | None = None
    for control in page.controls:
        if not control.visible:
            continue
        if decline:
            rank = _rank(control.text, _DECLINE, negated_ok=True)
        else:
            rank = _rank(control.text, _APPROVE, negated_ok=False)
            if rank is not None and _rank(control.text, _DECLINE[:5], negated_ok=True) is not None:
                rank = None  # "Deny and continue"
        if rank is not None and (best is None or (rank, control.index) < best[:2]):
            best = (rank, control.index, control)
    return None if best is None else best[2]


def consent_checkboxes(page: PageSnapshot, control: Control) -> list[Field]:
    """Unchecked visible checkboxes (scope choices) in the approving control's form."""
    return [
        f
        for f in page.fields
        if f.type == "checkbox"
        and f.visible
        and not f.checked
        and (control.form is None or f.form == control.form)
    ]


def sign_in_control(page: PageSnapshot) -> Control | None:
    """A control that starts a sign-in (e.g. opens the login popup) on a page without fields."""
    for word in _SIGN_IN[:5]:
        found = next((c for c in page.controls if c.visible and word in _norm(c.text)), None)
        if found is not None:
            return found
    return None


def login_error(page: PageSnapshot) -> str | None:
    """The login-error phrase the page shows (refused credentials, inactive or locked account)."""
    return _contains_phrase(
        f"{page.title} {' '.join(page.headings)} {page.text}", LOGIN_ERROR_PHRASES
    )


def ineligible_phrase(text: str | None) -> str | None:
    """The not-eligible phrase in `text` (a page's or an error description's), if any."""
    return _contains_phrase(text or "", INELIGIBLE_PHRASES)


def ineligible_description(text: str | None) -> str | None:
    """The not-eligible wording of a callback's error_description (also a bare "ineligible")."""
    found = ineligible_phrase(text)
    if found is None and re.search(r"\bineligib", _norm(text or "")):
        return "ineligible"
    return found


def host_vendor(host: str) -> str | None:
    """The identity-verification vendor whose domain `host` belongs to, if any."""
    low = host.lower().rstrip(".")
    for vendor, domains in IDV_VENDORS.items():
        if any(low == d or low.endswith("." + d) for d in domains):
            return vendor
    return None


def page_vendor(page: PageSnapshot) -> str | None:
    """The vendor a page names in its title or a heading together with identity verification."""
    for text in (page.title, *page.headings):
        low = _norm(text)
        if not _contains_phrase(low, IDV_PHRASES):
            continue
        for vendor, names in IDV_NAMES.items():
            if any(re.search(rf"(?<![\w.]){re.escape(n)}(?![\w])", low) for n in names):
                return vendor
    return None


def identity_vendor(page: PageSnapshot, authorization_host: str) -> str | None:
    """The identity-verification vendor this page belongs to (by host, unless the authorization
    server itself is hosted there, or by its title/heading), or None."""
    vendor = host_vendor(page.host)
    if vendor is not None and vendor != host_vendor(authorization_host):
        return vendor
    return page_vendor(page)


def snapshot_from_dict(data: Mapping[str, Any]) -> PageSnapshot:
    """A snapshot from the browser's extraction script's JSON (unknown keys ignored)."""

    def text(value: Any, limit: int = 500) -> str:
        """`value` as bounded text ("" for None)."""
        return str(value or "")[:limit]

    fields = tuple(
        Field(
            index=int(f.get("index", 0)),
            tag=text(f.get("tag")).lower(),
            type=text(f.get("type")).lower(),
            name=text(f.get("name")),
            id=text(f.get("id")),
            autocomplete=text(f.get("autocomplete")),
            label=text(f.get("label")),
            visible=bool(f.get("visible")),
            form=None if f.get("form") is None else int(f["form"]),
            checked=bool(f.get("checked")),
        )
        for f in data.get("fields") or []
    )
    controls = tuple(
        Control(
            index=int(c.get("index", 0)),
            kind=text(c.get("kind")),
            text=text(c.get("text"), 200),
            type=text(c.get("type")).lower(),
            visible=bool(c.get("visible")),
            form=None if c.get("form") is None else int(c["form"]),
        )
        for c in data.get("controls") or []
    )
    return PageSnapshot(
        host=text(data.get("host")),
        title=text(data.get("title"), 300),
        headings=tuple(text(h, 300) for h in data.get("headings") or []),
        text=text(data.get("text"), 20_000),
        fields=fields,
        controls=controls,
    )


class _SnapshotParser(HTMLParser):
    """Static HTML -> snapshot: style, `hidden` and type=hidden make things invisible."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.fields: list[dict[str, Any]] = []
        self.controls: list[dict[str, Any]] = []
        self.title = ""
        self.headings: list[str] = []
        self.text: list[str] = []
        self.labels_for: dict[str, str] = {}
        self._stack: list[tuple[str, bool]] = []  # (tag, hidden)
        self._form: int | None = None
        self._forms = 0
        self._index = 0
        self._capture: list[tuple[str, dict[str, Any] | None, list[str]]] = []

    def _hidden(self) -> bool:
        return any(hidden for _, hidden in self._stack)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        """Record fields, controls, labels, headings and visibility as elements open."""
        a = {k: v or "" for k, v in attrs}
        hidden = "hidden" in a or "display:none" in a.get("style", "").replace(" ", "")
        if tag == "form":
            self._form = self._forms
            self._forms += 1
        if tag in ("input", "textarea", "select"):
            kind = a.get("type", "text").lower() if tag == "input" else tag
            self._index += 1
            entry = {
                "index": self._index,
                "tag": tag,
                "type": kind,
                "name": a.get("name", ""),
                "id": a.get("id", ""),
                "autocomplete": a.get("autocomplete", ""),
                "label": " ".join([a.get("aria-label", ""), a.get("placeholder", "")]).strip(),
                "visible": not (hidden or self._hidden() or kind == "hidden"),
                "form": self._form,
                "checked": "checked" in a,
            }
            self.fields.append(entry)
            for captured, label, _ in self._capture:
                if captured == "label" and label is not None:
                    label.setdefault("wraps", []).append(entry)
            if kind in ("submit", "button", "image"):
                self._index += 1
                self.controls.append(
                    {
                        "index": self._index,
                        "kind": "input",
                        "text": a.get("value", "") or a.get("aria-label", ""),
                        "type": "submit" if kind in ("submit", "image") else "button",
                        "visible": entry["visible"],
                        "form": self._form,
                    }
                )
            return
        if tag in ("button", "a", "label", "title", "h1", "h2", "h3"):
            control: dict[str, Any] | None = None
            if tag == "button" or (tag == "a" and "href" in a):
                self._index += 1
                control = {
                    "index": self._index,
                    "kind": "link" if tag == "a" else "button",
                    "type": a.get("type", "submit").lower() if tag == "button" else "",
                    "visible": not (hidden or self._hidden()),
                    "form": self._form if tag == "button" else None,
                    "for": "",
                }
            if tag == "label":
                control = {"for": a.get("for", "")}
            self._capture.append((tag, control, []))
        if tag not in ("input", "br", "img", "meta", "link", "hr"):
            self._stack.append((tag, hidden))

    def handle_endtag(self, tag: str) -> None:
        """Finish the element's captured text (title, heading, label, control)."""
        if tag == "form":
            self._form = None
        while self._stack:
            top, _ = self._stack.pop()
            if top == tag:
                break
        if self._capture and self._capture[-1][0] == tag:
            _, control, words = self._capture.pop()
            text = " ".join(" ".join(words).split())
            if tag == "title":
                self.title = text
            elif tag in ("h1", "h2", "h3"):
                self.headings.append(text)
            elif tag == "label" and control is not None:
                if control.get("for"):
                    self.labels_for[control["for"]] = text
                for wrapped in control.get("wraps", []):
                    wrapped["label"] = f"{text} {wrapped['label']}".strip()
            elif control is not None and tag in ("button", "a"):
                control["text"] = text
                control.pop("for", None)
                self.controls.append(control)

    def handle_data(self, data: str) -> None:
        """Add text to open captures and, when visible, to the page text."""
        for _, _, words in self._capture:
            words.append(data)
        if not self._hidden() and not any(
            t in ("title", "script", "style") for t, _ in self._stack
        ):
            self.text.append(data)


def snapshot_from_html(html: str, host: str = "") -> PageSnapshot:
    """A snapshot of static HTML (no scripts run), for pages known in advance and for tests."""
    parser = _SnapshotParser()
    parser.feed(html)
    parser.close()
    for field in parser.fields:
        extra = parser.labels_for.get(field["id"]) if field["id"] else None
        if extra:
            field["label"] = f"{extra} {field['label']}".strip()
    data = {
        "host": host,
        "title": parser.title,
        "headings": parser.headings,
        "text": " ".join(" ".join(parser.text).split()),
        "fields": [f for f in parser.fields if f["type"] not in ("submit", "button", "image")],
        "controls": sorted(parser.controls, key=lambda c: c["index"]),
    }
    return snapshot_from_dict(data)
