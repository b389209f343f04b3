"""Driving headless Chromium (Playwright) through a payer's login, consent and detours.

The only module that imports Playwright. It records what it saw as hosts and page titles,
never URLs with their query strings or fragments (they carry state, codes and tokens), and it
types secrets only into the page: never into logs, evidence or error text.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import anyio
from playwright.async_api import Browser, BrowserContext, Page, async_playwright
from playwright.async_api import Error as PlaywrightError

from probe.authorize.heuristics import (
    LoginForm,
    PageSnapshot,
    consent_checkboxes,
    consent_control,
    identity_vendor,
    ineligible_phrase,
    login_error,
    login_form,
    sign_in_control,
    snapshot_from_dict,
)
from probe.authorize.recipe import RecipeStep
from probe.directory.secrets import SecretError, SecretSource

CHROMIUM_ARGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
)
#: How long an action may take to change the page before it counts as having done nothing.
SETTLE_S = 15.0
#: How long a page with nothing to do is watched before the journey counts as stuck.
IDLE_S = 20.0
POLL_S = 0.2
MAX_ACTIONS = 40

_EXTRACT = r"""
() => {
  const clean = (t) => (t || '').replace(/\s+/g, ' ').trim();
  const visible = (el) => {
    if (el.type === 'hidden' || el.hidden) return false;
    const style = getComputedStyle(el);
    if (style.visibility === 'hidden' || style.display === 'none') return false;
    const box = el.getBoundingClientRect();
    return box.width > 0 && box.height > 0;
  };
  const forms = Array.from(document.forms);
  const formOf = (el) => {
    const f = el.form || el.closest('form');
    const i = f ? forms.indexOf(f) : -1;
    return i < 0 ? null : i;
  };
  const fields = [], controls = [];
  let n = 0;
  const all = document.querySelectorAll(
    'input, textarea, select, button, a[href], [role=button], [role=link]');
  for (const el of all) {
    n += 1;
    el.setAttribute('data-probe-idx', String(n));
    const tag = el.tagName.toLowerCase();
    const type = tag === 'input' ? (el.getAttribute('type') || 'text').toLowerCase()
      : tag === 'button' ? (el.getAttribute('type') || 'submit').toLowerCase() : tag;
    const buttonInput = tag === 'input' && ['submit', 'button', 'image', 'reset'].includes(type);
    if (buttonInput || !['input', 'textarea', 'select'].includes(tag)) {
      const text = buttonInput ? el.value : (el.innerText || el.textContent);
      controls.push({
        index: n, kind: tag === 'a' || el.getAttribute('role') === 'link' ? 'link'
          : buttonInput ? 'input' : 'button',
        text: clean(text || el.getAttribute('aria-label') || el.getAttribute('title')),
        type: type === 'image' ? 'submit' : type, visible: visible(el), form: formOf(el)});
      continue;
    }
    const labels = el.labels ? Array.from(el.labels).map((l) => l.innerText || l.textContent) : [];
    for (const id of (el.getAttribute('aria-labelledby') || '').split(/\s+/)) {
      const t = id && document.getElementById(id);
      if (t) labels.push(t.textContent);
    }
    labels.push(el.getAttribute('aria-label') || '', el.getAttribute('placeholder') || '');
    fields.push({
      index: n, tag, type: tag === 'input' ? type : tag, name: el.getAttribute('name') || '',
      id: el.id || '', autocomplete: el.getAttribute('autocomplete') || '',
      label: clean(labels.join(' ')), visible: visible(el), form: formOf(el),
      checked: !!el.checked});
  }
  const headings = Array.from(document.querySelectorAll('h1, h2, h3'))
    .map((h) => clean(h.innerText || h.textContent)).filter(Boolean).slice(0, 20);
  return {host: location.hostname, title: document.title, headings,
          text: clean(document.body ? document.body.innerText : '').slice(0, 20000),
          fields, controls};
}
"""


class BrowserUnavailable(Exception):
    """Chromium cannot be found or started; the message says how to install it."""


@dataclass(frozen=True, slots=True)
class Credentials:
    """The member's username and password (kept out of reprs)."""

    username: str = field(repr=False)
    password: str = field(repr=False)


@dataclass
class BrowserEvidence:
    """What the browser walked through: hosts, titles, timings and the actions taken."""

    navigations: list[dict[str, Any]] = field(default_factory=list)
    pages: list[dict[str, str]] = field(default_factory=list)
    popups: int = 0
    first_page_ms: float | None = None
    actions: list[str] = field(default_factory=list)


@dataclass
class DriveResult:
    """Why the browser stopped (`stop`), with a phrase or vendor when it stopped on a page."""

    stop: str
    detail: str | None = None
    vendor: str | None = None
    evidence: BrowserEvidence = field(default_factory=BrowserEvidence)


def chromium_path() -> str | None:
    """Debian's Chromium executable, if installed."""
    return shutil.which("chromium") or shutil.which("chromium-browser")


def safe_error(exc: BaseException) -> str:
    """An error's first line with URLs cut to scheme, host and path (no query, no fragment)."""
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]

    def cut(match: re.Match[str]) -> str:
        """The matched URL without query and fragment."""
        parts = urlsplit(match.group(0))
        return f"{parts.scheme}://{parts.netloc}{parts.path}"

    return re.sub(r"https?://[^\s'\"<>]+", cut, first)


def _host(url: str) -> str:
    try:
        return urlsplit(url).hostname or ""
    except ValueError:
        return ""


class _Journey:
    """One browser journey: the pages of a context, the evidence, the deadline."""

    def __init__(self, context: BrowserContext, started: float, deadline: float) -> None:
        self.context = context
        self.started = started
        self.deadline = deadline
        self.evidence = BrowserEvidence()
        self.pages: list[Page] = []
        self.main: Page | None = None
        self._recorded_at = -1  # the navigation count when the last page was recorded
        context.on("page", self._on_page)

    def _ms(self) -> float:
        return round((time.monotonic() - self.started) * 1000, 1)

    def _on_page(self, page: Page) -> None:
        if page in self.pages:
            return
        if self.pages:
            self.evidence.popups += 1
        self.pages.append(page)
        page.on("framenavigated", lambda frame: self._navigated(page, frame.url, frame))
        page.on("domcontentloaded", lambda _page: self._loaded())

    def _navigated(self, page: Page, url: str, frame: Any) -> None:
        if frame != page.main_frame or not url.startswith(("http://", "https://")):
            return
        self.evidence.navigations.append({"host": _host(url), "at_ms": self._ms()})

    def _loaded(self) -> None:
        if self.evidence.first_page_ms is None:
            self.evidence.first_page_ms = self._ms()

    def remaining_ms(self) -> float:
        """Milliseconds left before the deadline (at least 1)."""
        return max((self.deadline - time.monotonic()) * 1000, 1.0)

    def active(self) -> Page:
        """The page to act on: the newest open one (a popup), else the first."""
        open_pages = [p for p in self.pages if not p.is_closed()]
        return open_pages[-1] if open_pages else self.pages[0]

    async def snapshot(self) -> PageSnapshot | None:
        """The active page as the heuristics see it (recorded as evidence), None mid-navigation."""
        page = self.active()
        try:
            data = await page.evaluate(_EXTRACT)
        except PlaywrightError:
            return None  # navigating, or closed: look again
        snap = snapshot_from_dict(data if isinstance(data, dict) else {})
        seen = {"host": snap.host, "title": snap.title[:200]}
        navigated = len(self.evidence.navigations) != self._recorded_at
        if snap.host and (navigated or not self.evidence.pages or self.evidence.pages[-1] != seen):
            # A new document (a navigation since the last one recorded), or a page that changed
            # in place (single-page logins): one entry each, never twice for one document.
            self.evidence.pages.append(seen)
            self._recorded_at = len(self.evidence.navigations)
        return snap

    async def signature(self) -> tuple[Any, ...] | None:
        """A cheap fingerprint of the active page, to notice that an action changed it."""
        page = self.active()
        try:
            shape = await page.evaluate(
                "() => [document.title, document.forms.length, "
                "document.querySelectorAll('input,button,a').length, "
                "(document.body ? document.body.innerText.length : 0)]"
            )
        except PlaywrightError:
            return None
        opened = sum(1 for p in self.pages if not p.is_closed())
        return (page.url, opened, *shape)

    async def settle(self, before: tuple[Any, ...] | None, done: Callable[[], bool]) -> bool:
        """Wait until the page changed (True), the callback came, or SETTLE_S passed (False)."""
        until = min(time.monotonic() + SETTLE_S, self.deadline)
        while time.monotonic() < until:
            if done():
                return True
            await anyio.sleep(POLL_S)
            now = await self.signature()
            if now is not None and now != before:
                with contextlib.suppress(PlaywrightError):
                    await self.active().wait_for_load_state(
                        "domcontentloaded", timeout=min(self.remaining_ms(), 10_000)
                    )
                return True
        return False

    def locator(self, index: int) -> Any:
        """The element the last snapshot numbered `index` on the active page."""
        return self.active().locator(f'[data-probe-idx="{index}"]').first


async def _run_recipe(
    journey: _Journey, steps: Sequence[RecipeStep], secrets: SecretSource
) -> str | None:
    """Run the recipe's steps on the active page; the failing step described, or None."""
    for step in steps:
        page = journey.active()
        timeout = min(journey.remaining_ms(), 30_000)
        try:
            value = step.value(secrets)
            if step.action == "fill":
                await page.fill(step.selector, value or "", timeout=timeout)
            elif step.action == "click":
                await page.click(step.selector, timeout=timeout)
            elif step.action == "check":
                await page.check(step.selector, timeout=timeout)
            elif step.action == "select":
                await page.select_option(step.selector, value, timeout=timeout)
            else:
                await page.wait_for_selector(step.selector, timeout=timeout)
        except SecretError as exc:
            return f"recipe line {step.line}: {exc}"
        except PlaywrightError as exc:
            kind = "timed out" if "Timeout" in type(exc).__name__ else "failed"
            return f"recipe line {step.line}: {step.action} {step.selector!r} {kind}"
        journey.evidence.actions.append(f"recipe line {step.line}: {step.action}")
    return None


async def _login(journey: _Journey, form: LoginForm, credentials: Credentials) -> str:
    """Fill the login step's fields and submit it; the action as evidence (no values)."""
    filled = []
    last = None
    if form.username is not None:
        last = journey.locator(form.username.index)
        await last.fill(credentials.username, timeout=min(journey.remaining_ms(), 10_000))
        filled.append("username")
    if form.password is not None:
        last = journey.locator(form.password.index)
        await last.fill(credentials.password, timeout=min(journey.remaining_ms(), 10_000))
        filled.append("password")
    if form.submit is not None:
        await journey.locator(form.submit.index).click(timeout=min(journey.remaining_ms(), 10_000))
        how = f"clicked {form.submit.text[:40]!r}"
    elif last is not None:
        await last.press("Enter", timeout=min(journey.remaining_ms(), 10_000))
        how = "pressed Enter"
    else:
        how = "nothing to submit"
    return f"login: filled {' and '.join(filled)}, {how}"


async def _walk(
    journey: _Journey,
    *,
    credentials: Credentials | None,
    recipe: Sequence[RecipeStep] | None,
    secrets: SecretSource,
    decline: bool,
    done: Callable[[], bool],
    authorization_host: str,
) -> DriveResult:
    evidence = journey.evidence
    recipe_pending = recipe is not None
    password_sent = False
    idle_since = time.monotonic()
    for _ in range(MAX_ACTIONS * 20):
        if done():
            return DriveResult("callback", evidence=evidence)
        if time.monotonic() >= journey.deadline:
            return DriveResult("deadline", evidence=evidence)
        snap = await journey.snapshot()
        if snap is None:
            await anyio.sleep(POLL_S)
            continue
        vendor = identity_vendor(snap, authorization_host)
        if vendor is not None:
            return DriveResult("identity_verification", vendor=vendor, evidence=evidence)
        phrase = login_error(snap)
        if phrase is not None:
            return DriveResult("login_failed", detail=phrase, evidence=evidence)
        before = await journey.signature()
        action: str | None = None
        try:
            form = None if recipe is not None else login_form(snap)
            if recipe_pending and recipe is not None:
                recipe_pending = False
                failed = await _run_recipe(journey, recipe, secrets)
                if failed is not None:
                    return DriveResult("login_failed", detail=failed, evidence=evidence)
                action = "recipe"
            elif form is not None and credentials is not None:
                if form.password is not None and password_sent:
                    detail = "still on the sign-in form after submitting the password"
                    return DriveResult("login_failed", detail=detail, evidence=evidence)
                action = await _login(journey, form, credentials)
                password_sent = password_sent or form.password is not None
            elif (control := consent_control(snap, decline)) is not None:
                if not decline:
                    for box in consent_checkboxes(snap, control):
                        await journey.locator(box.index).check(timeout=5_000)
                await journey.locator(control.index).click(
                    timeout=min(journey.remaining_ms(), 10_000)
                )
                verb = "declined" if decline else "approved"
                action = f"consent: {verb} with {control.kind} {control.text[:40]!r}"
            elif form is None and (control := sign_in_control(snap)) is not None:
                await journey.locator(control.index).click(
                    timeout=min(journey.remaining_ms(), 10_000)
                )
                action = f"clicked {control.text[:40]!r}"
        except PlaywrightError as exc:
            evidence.actions.append(f"action failed: {type(exc).__name__}")
            action = None
        if action is not None:
            evidence.actions.append(action)
            idle_since = time.monotonic()
            if len(evidence.actions) > MAX_ACTIONS:
                return DriveResult("stuck", detail="too many steps", evidence=evidence)
            await journey.settle(before, done)
            continue
        phrase = ineligible_phrase(f"{snap.title} {' '.join(snap.headings)} {snap.text}")
        if phrase is not None and (password_sent or recipe is not None):
            # A dead end after signing in (nothing to approve) that says so.
            return DriveResult("ineligible", detail=phrase, evidence=evidence)
        if time.monotonic() - idle_since > IDLE_S:
            title = snap.title[:100]
            return DriveResult("stuck", detail=f"nothing to do on {title!r}", evidence=evidence)
        await journey.settle(before, done)
    return DriveResult("stuck", detail="too many steps", evidence=evidence)


async def drive_browser(
    url: str,
    *,
    credentials: Credentials | None,
    recipe: Sequence[RecipeStep] | None,
    secrets: SecretSource,
    decline: bool,
    done: Callable[[], bool],
    started: float,
    deadline: float,
    authorization_host: str,
) -> DriveResult:
    """Open `url` in headless Chromium and walk login, consent and popups until `done()` (the
    callback arrived), a dead end (login error, identity verification, ineligible), or the
    monotonic `deadline`."""
    executable = chromium_path()
    if executable is None:
        raise BrowserUnavailable("chromium is not installed: apt-get install chromium")
    async with async_playwright() as playwright:
        try:
            browser: Browser = await playwright.chromium.launch(
                executable_path=executable, args=list(CHROMIUM_ARGS), headless=True
            )
        except PlaywrightError as exc:
            raise BrowserUnavailable(f"chromium did not start: {safe_error(exc)}") from None
        try:
            context = await browser.new_context()
            journey = _Journey(context, started, deadline)
            journey.main = await context.new_page()
            try:
                await journey.main.goto(
                    url, wait_until="domcontentloaded", timeout=journey.remaining_ms()
                )
            except PlaywrightError as exc:
                if not done():
                    detail = safe_error(exc)
                    return DriveResult("browser_error", detail=detail, evidence=journey.evidence)
            return await _walk(
                journey,
                credentials=credentials,
                recipe=recipe,
                secrets=secrets,
                decline=decline,
                done=done,
                authorization_host=authorization_host,
            )
        finally:
            with anyio.CancelScope(shield=True):
                await browser.close()
