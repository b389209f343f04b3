"""The member login journeys behind a payer's ``oauth/authorize``: sign-in, consent and detours.

Each payer's ``oauth.journey`` picks one (docs/fleet.md, "Login journeys"): the pages a member's
browser walks from the authorization request to the client's callback, or to a dead end. Pages
are plain HTML without external assets; every interpolated value is escaped. The authorization
request's parameters travel in hidden inputs, and after a successful sign-in in a server-side
session (``txn``), never with the password in a URL.

Routes (under ``/payers/{slug}/oauth/``)::

    GET  authorize     the sign-in page (or, for `popup`, a page whose button opens it)
    POST authorize     check the credentials; then consent, a detour, or the page again
    GET  consent?txn=  the consent page; with &decision=allow|deny, the decision of a link
    POST consent       the consent form's decision

and ``GET|POST /_idv/idme/{slug}/verify`` on the payer's other host (identity verification).
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode

import anyio
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from probe.fleet.config import Journey
from probe.fleet.oauth import (
    PATIENT_SCOPE,
    MemberSession,
    OAuthError,
    PayerAuth,
    TokenService,
    callback_url,
)
from probe.fleet.sites import PayerSite

SLOW_LOGIN_S = 3.0
INVALID_LOGIN = "Invalid username or password"
NOT_ACTIVE = "Your account is not yet active. Please try again in 24 hours."
NOT_ELIGIBLE = "Member is not eligible for this plan"
NOTHING_GRANTED = "No access was granted"
IDV_TITLE = "ID.me - Verify your identity"
IDV_FAILED = "We could not verify your identity with the information provided. Please try again."
POPUP_NAME = "fleet-sign-in"

_SCOPE_TEXT = {
    "launch/patient": "Know which member's records you are sharing",
    "openid": "Confirm your identity",
    "fhirUser": "Know your member account",
    "profile": "See your name and profile",
    "offline_access": "Keep access while you are not using the app",
    "patient/*.read": "Read all of your health plan records (claims, coverage, clinical data)",
    "patient/*.rs": "Read and search all of your health plan records",
}

_STYLE = (
    "body{font-family:system-ui,sans-serif;background:#f4f6f8;margin:0}"
    "main{max-width:28rem;margin:3rem auto;background:#fff;padding:2rem;border-radius:8px}"
    "label{display:block;margin-top:1rem}input[type=text],input[type=password]{width:100%}"
    ".error{color:#a00}.primary{background:#0a58ca;color:#fff;border:0;padding:.6rem 1.2rem}"
    ".secondary{margin-left:1rem}"
)


@dataclass(frozen=True, slots=True)
class LoginForm:
    """How one journey's sign-in form names, labels and annotates its two fields."""

    username: str
    password: str
    username_label: str
    username_id: str | None  # None: the <label> wraps the input instead of naming it by `for`
    password_id: str | None
    autocomplete: bool
    button: str


STANDARD_FORM = LoginForm(
    "username", "password", "Username", "username", "password", True, "Sign in"
)
MEMBER_ID_FORM = LoginForm(
    "memberId", "pwd", "Member ID", "member-id", "member-pwd", False, "Log in"
)
WRAPPED_FORM = LoginForm("userid", "passwd", "User ID", None, None, True, "Sign in")

LOGIN_FORMS: dict[Journey, LoginForm] = {
    "consent": STANDARD_FORM,
    "consent_scopes": MEMBER_ID_FORM,
    "identity_verification": STANDARD_FORM,
    "ineligible": WRAPPED_FORM,
    "popup": STANDARD_FORM,
    "slow": MEMBER_ID_FORM,
    "drops_state": WRAPPED_FORM,
    "not_active": STANDARD_FORM,
    "default_deny": MEMBER_ID_FORM,
}

# Never carried on as a request parameter, whichever form the fields came from.
_CREDENTIAL_FIELDS = frozenset(
    name for f in (STANDARD_FORM, MEMBER_ID_FORM, WRAPPED_FORM) for name in (f.username, f.password)
)


def _e(text: str) -> str:
    return html.escape(text, quote=True)


def _page(title: str, body: str) -> str:
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"/>'
        f"<title>{_e(title)}</title><style>{_STYLE}</style></head>"
        f"<body><main>{body}</main></body></html>"
    )


def _hidden(params: Mapping[str, str], skip: Sequence[str] = ()) -> str:
    return "".join(
        f'<input type="hidden" name="{_e(k)}" value="{_e(v)}"/>'
        for k, v in params.items()
        if k not in skip
    )


def _field(form: LoginForm, secret: bool) -> str:
    name = form.password if secret else form.username
    label = "Password" if secret else form.username_label
    ident = form.password_id if secret else form.username_id
    kind = "password" if secret else "text"
    auto = ""
    if form.autocomplete:
        auto = ' autocomplete="current-password"' if secret else ' autocomplete="username"'
    if ident is None:
        return f'<label>{label} <input type="{kind}" name="{name}"{auto} required/></label>'
    return (
        f'<label for="{ident}">{label}</label>'
        f'<input type="{kind}" id="{ident}" name="{name}"{auto} required/>'
    )


def login_form_page(
    name: str, action: str, params: Mapping[str, str], form: LoginForm, message: str | None
) -> str:
    """The member sign-in page of a journey, with an error message when the last try failed."""
    alert = f'<p class="error" id="login-message" role="alert">{_e(message)}</p>' if message else ""
    return _page(
        f"Sign in - {name}",
        f"<h1>{_e(name)}</h1><h2>Member sign in</h2>{alert}"
        f'<form id="login-form" method="post" action="{_e(action)}">{_hidden(params)}'
        f"{_field(form, False)}{_field(form, True)}"
        f'<p><button type="submit" id="sign-in" class="primary">{form.button}</button></p>'
        '</form><p><a href="#" id="forgot">Forgot your password?</a></p>',
    )


def popup_landing_page(name: str, popup_url: str) -> str:
    """The `popup` journey's first page: a button whose click opens the sign-in form in a popup."""
    return _page(
        f"Sign in - {name}",
        f"<h1>{_e(name)}</h1><p>Sign in with your {_e(name)} member account to continue.</p>"
        f'<p><button type="button" id="sign-in" class="primary" data-popup="{_e(popup_url)}">'
        "Sign in</button></p>"
        '<p class="error" id="popup-blocked" hidden>Please allow pop-ups for this site, '
        "then press Sign in again.</p>"
        "<script>"
        'document.getElementById("sign-in").addEventListener("click", function () {'
        f' var w = window.open(this.dataset.popup, "{POPUP_NAME}", "popup,width=480,height=640");'
        ' if (!w) { document.getElementById("popup-blocked").hidden = false; }'
        "});"
        "</script>",
    )


def popup_done_page(name: str, next_url: str) -> str:
    """What the popup shows after a good sign-in: it sends its opener on and closes itself."""
    return _page(
        f"Signed in - {name}",
        f'<p id="signed-in" data-next="{_e(next_url)}">You are signed in. '
        "This window will close.</p>"
        '<p class="error" id="no-opener" hidden>This sign-in window has lost the page that '
        f"opened it. Close it and start again from {_e(name)}.</p>"
        "<script>(function () {"
        ' var done = document.getElementById("signed-in");'
        " if (window.opener && !window.opener.closed) {"
        "  window.opener.location.assign(done.dataset.next); window.close();"
        " } else {"
        '  done.hidden = true; document.getElementById("no-opener").hidden = false;'
        " }"
        "})();</script>",
    )


def _scope_text(scope: str) -> str:
    return _SCOPE_TEXT.get(scope, f"Access: {scope}")


def requested_scopes(params: Mapping[str, str]) -> list[str]:
    """The scopes an authorization request asks for (the fleet's patient scopes if none)."""
    return (params.get("scope") or PATIENT_SCOPE).split()


def consent_page(
    name: str, journey: Journey, action: str, txn: str, params: Mapping[str, str]
) -> str:
    """The consent page of a journey: requested scopes, an approve and a deny control."""
    scopes = requested_scopes(params)
    link = action + "?" + urlencode({"txn": txn})
    client = params.get("client_id", "")
    intro = (
        f"<h1>{_e(name)}</h1><h2>Share your health information?</h2>"
        f"<p>The application <code>{_e(client)}</code> is asking to access your "
        f"{_e(name)} records. It will be able to:</p>"
    )
    hidden = f'<input type="hidden" name="txn" value="{_e(txn)}"/>'
    if journey == "consent_scopes":
        boxes = "".join(
            f'<div><input type="checkbox" id="scope-{i}" name="scope" value="{_e(s)}" checked/>'
            f'<label for="scope-{i}">{_e(_scope_text(s))} (<code>{_e(s)}</code>)</label></div>'
            for i, s in enumerate(scopes)
        )
        controls = (
            f'<fieldset id="scopes"><legend>Permissions</legend>{boxes}</fieldset>'
            '<p><button type="submit" id="authorize" name="decision" value="allow" '
            'class="primary">Authorize</button>'
            f'<a id="deny" class="secondary" href="{_e(link)}&amp;decision=deny">Deny</a></p>'
        )
        hidden += _hidden(params, skip=("scope",))
    else:
        items = "".join(f"<li>{_e(_scope_text(s))} (<code>{_e(s)}</code>)</li>" for s in scopes)
        if journey == "default_deny":
            buttons = (
                '<p><button type="submit" id="deny" name="decision" value="deny" '
                'class="primary" autofocus>Deny</button>'
                f'<a id="allow" class="secondary" href="{_e(link)}&amp;decision=allow">'
                "Allow access</a></p>"
            )
        else:
            buttons = (
                '<p><button type="submit" id="allow" name="decision" value="allow" '
                'class="primary">Allow</button>'
                f'<a id="deny" class="secondary" href="{_e(link)}&amp;decision=deny">Deny</a></p>'
            )
        controls = f'<ul id="scopes">{items}</ul>{buttons}'
        hidden += _hidden(params)
    return _page(
        f"Authorize access - {name}",
        f'{intro}<form id="consent-form" method="post" action="{_e(action)}">'
        f"{hidden}{controls}</form>",
    )


def idv_page(name: str, action: str, failed: bool) -> str:
    """The identity-verification interstitial: an SSN and document form that never succeeds."""
    alert = f'<p class="error" id="idv-message" role="alert">{_e(IDV_FAILED)}</p>' if failed else ""
    return _page(
        IDV_TITLE,
        "<h1>ID.me</h1><h2>Verify your identity</h2>"
        f"<p>{_e(name)} requires you to verify your identity before you can share your "
        f"records.</p>{alert}"
        f'<form id="idv-form" method="post" action="{_e(action)}" enctype="multipart/form-data">'
        '<label for="ssn">Social Security number</label>'
        '<input type="password" id="ssn" name="ssn" inputmode="numeric" autocomplete="off" '
        'pattern="[0-9]{3}-?[0-9]{2}-?[0-9]{4}" required/>'
        '<label for="document">Photo of your driver\'s license or passport</label>'
        '<input type="file" id="document" name="document" accept="image/*" required/>'
        '<p><button type="submit" id="verify" class="primary">Continue</button></p></form>',
    )


async def _form(request: Request) -> list[tuple[str, str]]:
    body = (await request.body()).decode("utf-8", "replace")
    return parse_qsl(body, keep_blank_values=True)


class Journeys:
    """The member login journeys of every payer of a fleet (pages, steps and their outcomes)."""

    def __init__(self, tokens: TokenService) -> None:
        self.tokens = tokens

    async def authorize(self, request: Request, site: PayerSite, auth: PayerAuth) -> Response:
        """``GET|POST oauth/authorize``: the sign-in page, or the step after signing in."""
        journey = site.config.oauth.journey
        form = LOGIN_FORMS[journey]
        name = site.config.display_name
        action = site.oauth_url("authorize")
        if request.method == "GET":
            params = dict(request.query_params)
            self.tokens.authorize(auth, params)
            if journey == "popup" and params.get("display") != "popup":
                popup = action + "?" + urlencode({**params, "display": "popup"})
                return HTMLResponse(popup_landing_page(name, popup))
            return HTMLResponse(login_form_page(name, action, params, form, None))
        fields = dict(await _form(request))
        params = {k: v for k, v in fields.items() if k not in _CREDENTIAL_FIELDS}
        self.tokens.authorize(auth, params)
        if journey == "slow":
            await anyio.sleep(SLOW_LOGIN_S)
        patient = self.tokens.member(
            auth, fields.get(form.username, "").strip(), fields.get(form.password, "")
        )
        if patient is None or journey == "not_active":
            message = INVALID_LOGIN if patient is None else NOT_ACTIVE
            return HTMLResponse(login_form_page(name, action, params, form, message))
        if journey == "identity_verification":
            return RedirectResponse(
                site.idv_url(self.tokens.new_id("idv", site.slug)), status_code=303
            )
        request_params = {k: v for k, v in params.items() if k != "display"}
        txn = self.tokens.start_session(auth, request_params, patient)
        consent = site.oauth_url("consent") + "?" + urlencode({"txn": txn})
        if journey == "popup":
            return HTMLResponse(popup_done_page(name, consent))
        return RedirectResponse(consent, status_code=303)

    async def consent(self, request: Request, site: PayerSite, auth: PayerAuth) -> Response:
        """``GET|POST oauth/consent``: the consent page, or the member's decision on it."""
        journey = site.config.oauth.journey
        if request.method == "GET":
            fields = list(request.query_params.multi_items())
        else:
            fields = await _form(request)
        single = dict(fields)
        txn = single.get("txn", "")
        session = self.tokens.session(auth, txn)
        for key in ("client_id", "redirect_uri"):
            if key in single and single[key] != session.params.get(key):
                raise OAuthError(400, "invalid_request", f"{key} changed during sign-in")
        decision = single.get("decision")
        if decision is None and request.method == "GET":
            page = consent_page(
                site.config.display_name, journey, site.oauth_url("consent"), txn, session.params
            )
            return HTMLResponse(page)
        if decision is None:
            decision = "deny" if journey == "default_deny" else "allow"
        self.tokens.end_session(txn)
        if decision != "allow":
            return self._callback(journey, session, {"error": "access_denied"})
        if journey == "ineligible":
            query = {"error": "access_denied", "error_description": NOT_ELIGIBLE}
            return self._callback(journey, session, query)
        scopes = requested_scopes(session.params)
        if journey == "consent_scopes" and request.method == "POST":
            checked = {v for k, v in fields if k == "scope"}
            scopes = [s for s in scopes if s in checked]
        if not scopes:
            query = {"error": "access_denied", "error_description": NOTHING_GRANTED}
            return self._callback(journey, session, query)
        code = self.tokens.issue_code(auth, session.params, session.patient, " ".join(scopes))
        return self._callback(journey, session, {"code": code})

    def _callback(
        self, journey: Journey, session: MemberSession, query: dict[str, str]
    ) -> Response:
        state = session.params.get("state")
        if state and journey != "drops_state":
            query["state"] = state
        return RedirectResponse(
            callback_url(session.params["redirect_uri"], query), status_code=302
        )

    async def verify_identity(self, request: Request, site: PayerSite) -> Response:
        """``GET|POST /_idv/idme/{slug}/verify``: the interstitial (a submission re-shows it)."""
        action = str(request.url)
        failed = request.method == "POST"
        return HTMLResponse(idv_page(site.config.display_name, action, failed))
