"""Login, consent and interstitial heuristics on HTML of pages the fleet does not serve."""

from __future__ import annotations

from probe.authorize.heuristics import (
    consent_checkboxes,
    consent_control,
    host_vendor,
    identity_vendor,
    ineligible_description,
    ineligible_phrase,
    login_error,
    login_form,
    sign_in_control,
    snapshot_from_dict,
    snapshot_from_html,
)

# A Keycloak-like page: labels by `for`, autocomplete off, hidden inputs, a submit input.
KEYCLOAK = """
<html><head><title>Sign in to Health Plan</title></head><body>
<h1 id="kc-page-title">Sign in to your account</h1>
<form id="kc-form-login" action="/login-actions/authenticate?session_code=x" method="post">
  <input type="hidden" name="credentialId" value="">
  <label for="username" class="pf-c-form__label">Username or email</label>
  <input tabindex="1" id="username" class="pf-c-form-control" name="username" type="text"
         autofocus autocomplete="off">
  <label for="password">Password</label>
  <input tabindex="2" id="password" class="pf-c-form-control" name="password" type="password"
         autocomplete="off">
  <input type="checkbox" id="rememberMe" name="rememberMe"> Remember me
  <input tabindex="4" class="pf-c-button" name="login" id="kc-login" type="submit"
         value="Sign In"/>
</form>
<a href="/register">Register</a>
</body></html>
"""

# Step one of a two-step login (Okta/Azure style): an email field and a Next button.
STEP_ONE = """
<title>Sign In</title>
<form><div>
  <input type="email" name="loginfmt" autocomplete="username" placeholder="Email, phone">
  <input type="hidden" name="flowToken" value="t">
  <input type="password" name="passwd" style="display: none">
</div>
<input type="button" value="Back"><input type="submit" value="Next"></form>
"""

STEP_TWO = """
<title>Enter password</title><h1>Enter password</h1>
<form><input type="password" name="credentials.passcode" autocomplete="current-password">
<button type="button">Forgot password?</button><button type="submit">Verify</button></form>
"""

# Labels only: names that say nothing, one wrapping label each, no submit type.
LABELS_ONLY = """
<title>Member Portal</title>
<div>Search <input type="search" name="q"></div>
<form action="/s">
  <label>Member ID <input name="f1"></label>
  <label>Password <input name="f2" type="password"></label>
  <button type="button" onclick="go()">Log In</button>
</form>
"""

# Autocomplete only: no names, no labels.
AUTOCOMPLETE_ONLY = """
<form><input autocomplete="username"><input autocomplete="current-password" type="password">
</form>
"""

SIGN_UP = """
<form><input name="email" type="email"><input name="pw" type="password"
autocomplete="new-password"><button>Create account</button></form>
"""


def test_keycloak_like_page() -> None:
    page = snapshot_from_html(KEYCLOAK, "auth.plan.example")
    form = login_form(page)
    assert form is not None and form.username is not None and form.password is not None
    assert form.username.name == "username" and form.username.label == "Username or email"
    assert form.password.name == "password"
    assert form.submit is not None and form.submit.text == "Sign In"
    assert page.title == "Sign in to Health Plan"


def test_multi_step_login_username_page_then_password_page() -> None:
    first = login_form(snapshot_from_html(STEP_ONE))
    assert first is not None and first.password is None  # the hidden password is not a field
    assert first.username is not None and first.username.name == "loginfmt"
    assert first.submit is not None and first.submit.text == "Next"
    second = login_form(snapshot_from_html(STEP_TWO))
    assert second is not None and second.username is None
    assert second.password is not None and second.password.name == "credentials.passcode"
    assert second.submit is not None and second.submit.text == "Verify"


def test_labels_only_page() -> None:
    form = login_form(snapshot_from_html(LABELS_ONLY))
    assert form is not None and form.username is not None and form.password is not None
    assert form.username.name == "f1" and form.username.label == "Member ID"
    assert form.password.name == "f2"
    assert form.submit is not None and form.submit.text == "Log In"


def test_autocomplete_only_page_submits_with_enter() -> None:
    form = login_form(snapshot_from_html(AUTOCOMPLETE_ONLY))
    assert form is not None and form.username is not None and form.password is not None
    assert form.submit is None  # no button: the browser presses Enter


def test_a_sign_up_form_is_not_a_login() -> None:
    form = login_form(snapshot_from_html(SIGN_UP))
    assert form is not None and form.password is None  # only the email: never a new password


def test_pages_without_login_fields() -> None:
    assert login_form(snapshot_from_html("<title>x</title><p>Hello</p>")) is None
    searching = snapshot_from_html('<form><input type="search" name="q"></form>')
    assert login_form(searching) is None
    hidden = snapshot_from_html('<form><input type="hidden" name="username" value="u"></form>')
    assert login_form(hidden) is None


def test_consent_buttons_and_links() -> None:
    page = snapshot_from_html("<form><button>Allow</button></form><a href='/deny'>Deny</a>")
    approve = consent_control(page)
    assert approve is not None and approve.text == "Allow" and approve.kind == "button"
    deny = consent_control(page, decline=True)
    assert deny is not None and deny.text == "Deny" and deny.kind == "link"


def test_consent_primary_deny_with_allow_link() -> None:
    page = snapshot_from_html(
        "<form><button class='primary' autofocus>Deny</button>"
        "<a href='/c?decision=allow'>Allow access</a></form>"
    )
    approve = consent_control(page)
    assert approve is not None and approve.text == "Allow access"
    deny = consent_control(page, decline=True)
    assert deny is not None and deny.text == "Deny"


def test_consent_wording_variants() -> None:
    cases = {
        "<button>Authorize</button><button>Cancel</button>": ("Authorize", "Cancel"),
        "<button>I Agree</button><a href='/n'>No thanks</a>": ("I Agree", "No thanks"),
        "<input type=submit value='Accept'><a href='/x'>Decline</a>": ("Accept", "Decline"),
        "<button>Yes, share my data</button><button>Don\u2019t allow</button>": (
            "Yes, share my data",
            "Don\u2019t allow",
        ),
        "<button>Continue</button><a href='/x'>Don't allow</a>": ("Continue", "Don't allow"),
    }
    for html, (approve, decline) in cases.items():
        page = snapshot_from_html(html)
        found = consent_control(page)
        assert found is not None and found.text == approve, html
        refused = consent_control(page, decline=True)
        assert refused is not None and refused.text == decline, html


def test_approval_prefers_allow_over_continue_and_never_a_negation() -> None:
    page = snapshot_from_html(
        "<button>Continue</button><button>Do not allow</button><button>Allow</button>"
    )
    found = consent_control(page)
    assert found is not None and found.text == "Allow"
    only_negation = snapshot_from_html("<button>Don't allow</button><button>Deny</button>")
    assert consent_control(only_negation) is None


def test_hidden_controls_are_not_clicked() -> None:
    page = snapshot_from_html("<button hidden>Allow</button><a href='/d'>Deny</a>")
    assert consent_control(page) is None


def test_scope_checkboxes_are_found_unchecked_only() -> None:
    page = snapshot_from_html(
        "<form><input type=checkbox id=a name=scope value=x checked><label for=a>A</label>"
        "<input type=checkbox id=b name=scope value=y><label for=b>B</label>"
        "<button>Authorize</button></form>"
    )
    control = consent_control(page)
    assert control is not None
    assert [f.id for f in consent_checkboxes(page, control)] == ["b"]


def test_sign_in_button_that_opens_a_popup() -> None:
    page = snapshot_from_html("<h1>Acme</h1><button type=button>Sign in</button>")
    assert login_form(page) is None
    found = sign_in_control(page)
    assert found is not None and found.text == "Sign in"


def test_login_error_phrases() -> None:
    for text in (
        "Invalid username or password.",
        "Your account is not yet active. Please try again in 24 hours.",
        "This account has been locked after too many attempts",
        "The username or password you entered is incorrect",
    ):
        assert login_error(snapshot_from_html(f"<p role=alert>{text}</p>")) is not None
    assert login_error(snapshot_from_html("<p>Forgot your password?</p>")) is None


def test_ineligibility_wording() -> None:
    assert ineligible_phrase("Member is not eligible for this plan") == "not eligible"
    assert ineligible_phrase("We found no active coverage for you") == "no active coverage"
    assert ineligible_phrase("Ineligible Health Plan of Ohio") is None  # a name, not a verdict
    assert ineligible_description("member ineligible") == "ineligible"
    assert ineligible_description("invalid scope") is None


def test_identity_verification_vendors() -> None:
    assert host_vendor("api.id.me") == "ID.me" and host_vendor("id.me") == "ID.me"
    assert host_vendor("notid.me") is None
    assert host_vendor("auth.1up.health") == "1upHealth"
    idme_page = snapshot_from_html(
        "<title>ID.me - Verify your identity</title><h1>ID.me</h1><h2>Verify your identity</h2>",
        "127.0.0.3",
    )
    assert identity_vendor(idme_page, "127.0.0.2") == "ID.me"
    # Naming a vendor without identity-verification wording is not a detour.
    login = snapshot_from_html("<title>Sign in with ID.me</title>", "plan.example")
    assert identity_vendor(login, "plan.example") is None
    # A payer whose authorization server is hosted by the vendor is not detoured by visiting it.
    hosted = snapshot_from_html("<title>Sign in</title>", "auth.1up.health")
    assert identity_vendor(hosted, "auth.1up.health") is None
    assert identity_vendor(hosted, "login.plan.example") == "1upHealth"


def test_snapshot_from_browser_json() -> None:
    page = snapshot_from_dict(
        {
            "host": "h",
            "title": "T",
            "fields": [
                {"index": 1, "tag": "INPUT", "type": "Email", "visible": True, "form": 0},
                {"index": 2, "tag": "input", "type": "password", "visible": True, "form": 0},
            ],
            "controls": [
                {
                    "index": 3,
                    "kind": "button",
                    "text": "Go",
                    "type": "submit",
                    "visible": True,
                    "form": 0,
                }
            ],
        }
    )
    form = login_form(page)
    assert form is not None and form.username is not None and form.username.index == 1
    assert form.submit is not None and form.submit.index == 3
