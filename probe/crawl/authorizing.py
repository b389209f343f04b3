"""Test members signed in through the browser during the crawl, when their authorization is due.

A test patient with an ``authorize:`` block (docs/directory.md) is authorized again in headless
Chromium before its sync when the token store holds no refresh token for its endpoint and
client, when the last browser authorization for that key is older than ``every``, or when the
sync's refresh was refused (then the sync is retried once). The time of each key's last
authorization is kept beside the token store (``TOKENS.authorized``, mode 0600), never in the
database. Every attempt is stored as an observed authorization attempt; no password, code or
token reaches the logs, the database or the output.
"""

from __future__ import annotations

import importlib.util
import logging
import shutil
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import anyio
import yaml

from probe.directory.schema import (
    Endpoint,
    MemberAuthorization,
    RefreshTokenCredentials,
    TestPatient,
)
from probe.directory.secrets import SecretError, SecretSource, TokenStore, write_private_yaml
from probe.http.urls import normalize_base
from probe.store.observed_authorizations import OUTCOME_STATES
from probe.store.writer import StoreWriter
from probe.sync.result import SyncResult

if TYPE_CHECKING:
    from probe.authorize.outcome import AttemptResult
    from probe.authorize.session import AuthorizeOptions

log = logging.getLogger(__name__)

ATTEMPT_DEADLINE_S = 120.0  # as `probe authorize --deadline`
MIN_ATTEMPT_S = 10.0


def login_unavailable() -> str | None:
    """Why browser authorizations cannot run on this machine (install hint), or None."""
    if importlib.util.find_spec("playwright") is None:
        return "playwright is not installed: pip install 'probe[authorize]'"
    if shutil.which("chromium") is None and shutil.which("chromium-browser") is None:
        return "chromium is not installed: apt-get install chromium"
    return None


class AuthorizationTimes:
    """When each token-store key was last authorized in the browser.

    A YAML sidecar of the token store file (``TOKENS.authorized``, mode 0600) kept between
    runs, or memory only when the token store has no file.
    """

    def __init__(self, token_store_path: Path | None) -> None:
        self.path = (
            None
            if token_store_path is None
            else token_store_path.with_name(token_store_path.name + ".authorized")
        )
        self._memory: dict[str, datetime] = {}

    def _read(self) -> dict[str, datetime]:
        if self.path is None:
            return dict(self._memory)
        try:
            data = yaml.safe_load(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, yaml.YAMLError, UnicodeDecodeError):
            log.warning("authorization times %s are unreadable; treating all as due", self.path)
            return {}
        out: dict[str, datetime] = {}
        for key, value in (data or {}).items() if isinstance(data, dict) else ():
            try:
                when = datetime.fromisoformat(str(value))
            except ValueError:
                continue
            out[str(key)] = when if when.tzinfo else when.replace(tzinfo=UTC)
        return out

    def last(self, key: str) -> datetime | None:
        """When `key` was last authorized, if ever."""
        return self._read().get(key)

    def record(self, key: str, when: datetime) -> None:
        """Remember that `key` was authorized at `when` (written atomically)."""
        self._memory[key] = when
        if self.path is None:
            return
        data = {k: v.isoformat() for k, v in self._read().items()}
        data[key] = when.isoformat()
        write_private_yaml(self.path, data)


@dataclass(frozen=True, slots=True)
class LoginTarget:
    """One test member's login at one endpoint: what an attempt needs besides the browser."""

    base_url: str
    endpoint_id: int
    credentials: RefreshTokenCredentials
    patient: TestPatient
    block: MemberAuthorization

    @property
    def key(self) -> str:
        """The token store key (the one the sync uses): base URL and client id."""
        return f"{normalize_base(self.base_url)}|{self.credentials.client_id}"


def login_target(
    base_url: str, endpoint_id: int, endpoint: Endpoint, patient: TestPatient
) -> LoginTarget | None:
    """The patient's browser login at this endpoint, or None when it has none (no
    ``authorize:`` block, or credentials not of kind refresh_token)."""
    credentials = endpoint.credentials
    if patient.authorize is None or not isinstance(credentials, RefreshTokenCredentials):
        return None
    return LoginTarget(base_url, endpoint_id, credentials, patient, patient.authorize)


class MemberLogins:
    """Browser authorizations of test members for one crawl: when due, at most `browsers`
    at once, one at a time per redirect port, each stored as an observed attempt."""

    def __init__(
        self,
        *,
        writer: StoreWriter,
        secrets: SecretSource,
        token_store: TokenStore,
        browsers: int = 2,
        directory_dir: Path | None = None,
        verify: bool | str = True,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        unavailable: Callable[[], str | None] | None = None,
    ) -> None:
        self.writer = writer
        self.secrets = secrets
        self.token_store = token_store
        self.times = AuthorizationTimes(token_store.path)
        self.directory_dir = directory_dir
        self.verify = verify
        self.clock = clock
        self._limiter = anyio.CapacityLimiter(max(1, browsers))
        self._ports: dict[int, anyio.Lock] = {}
        self._unavailable_check = unavailable
        self._unavailable: tuple[str | None] | None = None
        self.attempts = 0

    def unavailable(self) -> str | None:
        """Why no browser can run (logged once per crawl), or None."""
        if self._unavailable is None:
            reason = (self._unavailable_check or login_unavailable)()
            self._unavailable = (reason,)
            if reason is not None:
                log.warning("browser authorizations skipped for this crawl: %s", reason)
        return self._unavailable[0]

    def due(self, login: LoginTarget) -> str | None:
        """Why the member must sign in again before the sync, or None when not due."""
        if not self.token_store.get(login.key):
            return "no refresh token in the token store"
        last = self.times.last(login.key)
        if last is None:
            return "no browser authorization on record"
        if self.clock() - last >= timedelta(seconds=login.block.every_seconds):
            return f"the last authorization is older than {login.block.every}"
        return None

    async def sync(
        self,
        login: LoginTarget,
        run_sync: Callable[[], Awaitable[SyncResult]],
        seconds_left: Callable[[], float],
    ) -> SyncResult:
        """Authorize in the browser when due, then sync; on a refused refresh, authorize and
        sync once more. Notes what happened as findings of the returned sync."""
        unavailable = self.unavailable()
        if unavailable is not None:
            result = await run_sync()
            result.add_finding(
                "authorize_unavailable", f"browser authorization skipped: {unavailable}"
            )
            return result
        notes: list[str] = []
        stopped: str | None = None
        reason = self.due(login)
        if reason is not None:
            outcome = await self._attempt(login, seconds_left())
            notes.append(f"signed in through the browser ({reason}): {outcome}")
        result = await run_sync()
        if reason is None and result.outcome == "auth_failed":
            stopped = self._stopped_note(login)
            outcome = await self._attempt(login, seconds_left())
            notes.append(f"the refresh token was refused; signed in again: {outcome}")
            if outcome == "authorized":
                result = await run_sync()
        for note in notes:
            result.add_finding("authorized_in_browser", note)
        if reason is None and notes and stopped is not None:
            result.add_finding("refresh_token_stopped", stopped)
        return result

    def _stopped_note(self, login: LoginTarget) -> str | None:
        """When the refresh token of `login` stopped working: now, and how long after the sign-in
        that issued it (the refresh token's observed life), or None without a known sign-in."""
        issued = self.times.last(login.key)
        if issued is None:
            return None
        now = self.clock()
        days = (now - issued).total_seconds() / 86400
        return (
            f"the refresh token issued by the sign-in of {issued.isoformat()} was refused on "
            f"{now.isoformat()}, {days:.1f} days later"
        )

    async def _attempt(self, login: LoginTarget, seconds_left: float) -> str:
        """One stored attempt; its outcome, or why it could not be made."""
        if seconds_left < MIN_ATTEMPT_S:
            return "skipped: no time left within the endpoint deadline"
        try:
            options, recipe_secrets = self._options(
                login, min(ATTEMPT_DEADLINE_S, seconds_left - 1.0)
            )
        except SecretError as exc:
            log.warning("authorize %s (%s): %s", login.base_url, login.patient.label, exc)
            return f"skipped: {exc}"
        from probe.authorize.browser import BrowserUnavailable
        from probe.authorize.session import AuthorizeSetupError, run_attempt

        port = login.block.redirect_port
        lock = self._ports.setdefault(port, anyio.Lock())
        async with lock, self._limiter:
            self.attempts += 1
            try:
                result = await run_attempt(
                    options, secrets=recipe_secrets, token_store=self.token_store
                )
            except (AuthorizeSetupError, BrowserUnavailable, SecretError) as exc:
                log.warning("authorize %s (%s): %s", login.base_url, login.patient.label, exc)
                return f"skipped: {exc}"
        await anyio.to_thread.run_sync(self._store, login, result)
        if result.outcome == "authorized" and self.token_store.get(login.key):
            self.times.record(login.key, self.clock())
        log.info("authorize %s (%s): %s", login.base_url, login.patient.label, result.outcome)
        return str(result.outcome)

    def _options(
        self, login: LoginTarget, deadline_s: float
    ) -> tuple[AuthorizeOptions, SecretSource]:
        """The attempt's options and the recipe's secrets, resolved (SecretError naming a
        missing reference or the recipe's problems)."""
        from probe.authorize.browser import Credentials
        from probe.authorize.recipe import RecipeError, load_recipe
        from probe.authorize.request import DEFAULT_SCOPE
        from probe.authorize.session import AuthorizeOptions

        block = login.block
        creds = login.credentials
        recipe_steps = None
        recipe_secrets = self.secrets
        if block.recipe is not None:
            path = Path(block.recipe)
            if not path.is_absolute() and self.directory_dir is not None:
                path = self.directory_dir / path
            try:
                recipe = load_recipe(path)
            except RecipeError as exc:
                raise SecretError(f"login recipe {path}: {'; '.join(exc.problems)}") from None
            recipe_steps = recipe.steps
            if recipe.secrets_file is not None:
                recipe_secrets = SecretSource(recipe.secrets_file)
        client_secret = None
        if creds.auth_method != "none" and creds.client_secret is not None:
            client_secret = self.secrets.resolve(creds.client_secret)
        options = AuthorizeOptions(
            base_url=login.base_url,
            client_id=creds.client_id,
            redirect_port=block.redirect_port,
            scope=" ".join((block.scope or DEFAULT_SCOPE).split()),
            client_secret=client_secret,
            credentials=Credentials(
                self.secrets.resolve(block.username), self.secrets.resolve(block.password)
            ),
            recipe=recipe_steps,
            deadline_s=max(deadline_s, 1.0),
            verify=self.verify,
        )
        return options, recipe_secrets

    def _store(self, login: LoginTarget, result: AttemptResult) -> None:
        outcome = str(result.outcome)
        self.writer.add_authorization_attempt(
            login.endpoint_id,
            outcome,
            OUTCOME_STATES.get(outcome, "failed"),
            datetime.fromisoformat(result.started_at),
            result.to_dict(),
        )
