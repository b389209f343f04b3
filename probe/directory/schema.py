"""The payer directory (`endpoints.yaml`): its schema, and loading it with errors by line and field.

The schema is documented in docs/directory.md (README "Configuration"). Secrets never live in
this file: credentials name environment variables (``{env: NAME}``) or keys of the secrets file
named by ``secrets_file`` (``{secret: KEY}``); the loader refuses anything that looks like an
inline secret.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from probe.directory.credentials import ENV_NAME_PATTERN, url_userinfo_problem


class OrganizationStatus(enum.StrEnum):
    """A payer's connection status as the State of the Payer report classifies it."""

    LIVE = "Live"
    USER_VALIDATED = "User Validated"
    INFERRED_VALIDATED = "Inferred Validated"
    BROKEN = "Broken"
    UNAVAILABLE_BUT_PLANNED = "Unavailable but Planned"
    APPLIED = "Applied"
    READY_TO_CONFIGURE = "Ready to Configure"
    NONE = "none"


class Environment(enum.StrEnum):
    """Which environment an endpoint serves."""

    PRODUCTION = "production"
    SANDBOX = "sandbox"


class LineOfBusiness(enum.StrEnum):
    """Lines of business a payer offers and supports through its Patient Access API."""

    COMMERCIAL = "commercial"
    MEDICARE_ADVANTAGE = "medicare_advantage"
    MEDICAID = "medicaid"
    CHIP = "chip"
    FEDERAL_EMPLOYEE = "federal_employee"
    QHP = "qhp"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SecretRef(_Strict):
    """Where a secret comes from: an environment variable or a key of the secrets file."""

    env: str | None = Field(default=None, pattern=ENV_NAME_PATTERN)
    secret: str | None = Field(default=None, min_length=1)

    @model_validator(mode="after")
    def _exactly_one(self) -> SecretRef:
        if (self.env is None) == (self.secret is None):
            raise ValueError("give exactly one of 'env' (a variable name) or 'secret' (a key)")
        return self

    def describe(self) -> str:
        """A safe description of where the secret lives (never its value)."""
        return f"env:{self.env}" if self.env else f"secrets-file:{self.secret}"


def _check_token_url(value: str) -> str:
    """A token endpoint URL: any URL, but never with credentials in it."""
    _check_no_userinfo(value)
    return value


class BearerCredentials(_Strict):
    """A static access token."""

    kind: Literal["bearer"]
    token: SecretRef


class RefreshTokenCredentials(_Strict):
    """A refresh token exchanged at the token endpoint, for a confidential or public client."""

    kind: Literal["refresh_token"]
    client_id: str = Field(min_length=1)
    client_secret: SecretRef | None = None
    refresh_token: SecretRef
    auth_method: Literal["client_secret_basic", "client_secret_post", "none"] = (
        "client_secret_basic"
    )
    token_url: str | None = None
    scope: str | None = None

    @field_validator("token_url")
    @classmethod
    def _token_url(cls, value: str | None) -> str | None:
        return None if value is None else _check_token_url(value)

    @model_validator(mode="after")
    def _secret_matches_method(self) -> RefreshTokenCredentials:
        if self.auth_method != "none" and self.client_secret is None:
            raise ValueError(f"auth_method {self.auth_method} needs client_secret")
        return self


class BackendServicesCredentials(_Strict):
    """SMART Backend Services: client_credentials with a private_key_jwt assertion."""

    kind: Literal["backend_services"]
    client_id: str = Field(min_length=1)
    private_key: SecretRef
    key_id: str | None = None
    algorithm: Literal["RS384", "ES384"] = "RS384"
    token_url: str | None = None
    scope: str = "system/*.read"

    @field_validator("token_url")
    @classmethod
    def _token_url(cls, value: str | None) -> str | None:
        return None if value is None else _check_token_url(value)


Credentials = Annotated[
    BearerCredentials | RefreshTokenCredentials | BackendServicesCredentials,
    Field(discriminator="kind"),
]


_EVERY_UNITS = {"h": 3600, "d": 86400, "w": 604800}


class MemberAuthorization(_Strict):
    """A test member's browser login, renewed by `probe run` when due (docs/directory.md).

    The member's username and password are secret references; `recipe` is a login recipe
    file relative to the directory file; `every` is how often to sign in again (``7d``,
    ``12h``, ``2w``).
    """

    username: SecretRef
    password: SecretRef
    redirect_port: int = Field(ge=1, le=65535)
    recipe: str | None = Field(default=None, min_length=1)
    every: str = Field(default="7d", pattern=r"^[1-9][0-9]{0,5}[hdw]$")
    scope: str | None = Field(default=None, min_length=1)

    @property
    def every_seconds(self) -> float:
        """`every` in seconds."""
        return float(int(self.every[:-1]) * _EVERY_UNITS[self.every[-1]])


class TestPatient(_Strict):
    """A test patient the sync runs: a label for reports and the FHIR Patient id."""

    __test__ = False  # not a pytest class
    label: str = Field(min_length=1)
    id: str = Field(min_length=1, pattern=r"^[A-Za-z0-9\-\.]{1,64}$")
    authorize: MemberAuthorization | None = None


class EndpointFacts(_Strict):
    """Facts probe cannot observe that the scoring needs (configured by the operator)."""

    inactive_member_access_months: float | None = Field(default=None, ge=0)
    member_portal_opt_in_required: bool | None = None
    refresh_token_max_days: float | None = Field(default=None, ge=0)
    eligibility_errors_on_callback: bool | None = None


def _check_no_userinfo(value: str) -> None:
    """Refuse credentials written into a URL (``https://user:password@host``)."""
    problem = url_userinfo_problem(value)
    if problem is not None:
        raise ValueError(problem)


def _check_base_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an absolute http(s) URL")
    _check_no_userinfo(value)
    if parts.query or parts.fragment:
        raise ValueError("a FHIR base URL has no query or fragment")
    return value.rstrip("/")


class Endpoint(_Strict):
    """One FHIR base URL of a payer, in one environment."""

    environment: Environment = Environment.PRODUCTION
    base_url: str
    sandbox_url: str | None = None
    portal_url: str | None = None
    credentials: Credentials | None = None
    test_patients: list[TestPatient] = Field(default_factory=list)
    facts: EndpointFacts = Field(default_factory=EndpointFacts)

    @field_validator("base_url", "sandbox_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        return None if value is None else _check_base_url(value)

    @field_validator("portal_url")
    @classmethod
    def _portal(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an absolute http(s) URL")
        _check_no_userinfo(value)
        return value


class LinesOfBusiness(_Strict):
    """Lines of business a payer offers, and those its Patient Access API supports."""

    offered: list[LineOfBusiness] = Field(default_factory=list)
    supported: list[LineOfBusiness] = Field(default_factory=list)


class Payer(_Strict):
    """A health plan with its endpoints."""

    name: str = Field(min_length=1)
    lives: int | None = Field(default=None, ge=0)
    vendor: str | None = None
    organization_status: OrganizationStatus = OrganizationStatus.NONE
    lines_of_business: LinesOfBusiness = Field(default_factory=LinesOfBusiness)
    source: str | None = None
    endpoints: list[Endpoint] = Field(min_length=1)


class Directory(_Strict):
    """The whole `endpoints.yaml`."""

    version: Literal[1] = 1
    secrets_file: str | None = None
    payers: list[Payer] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique(self) -> Directory:
        seen: set[str] = set()
        for payer in self.payers:
            if payer.name in seen:
                raise ValueError(f"payer name {payer.name!r} appears twice")
            seen.add(payer.name)
        return self


@dataclass(frozen=True, slots=True)
class Target:
    """One (payer, environment, base URL) the crawl probes, flattened from the directory."""

    payer: Payer
    endpoint: Endpoint
    environment: Environment
    base_url: str

    @property
    def key(self) -> str:
        """A stable identity for resume and de-duplication."""
        return f"{self.environment}:{self.base_url}"


def payer_targets(payer: Payer, seen: set[str]) -> list[tuple[int, Environment, str]]:
    """One payer's targets not in `seen` (which they are added to), as (endpoint index,
    environment, URL): each endpoint, plus the sandbox URL declared beside it."""
    out: list[tuple[int, Environment, str]] = []
    for index, endpoint in enumerate(payer.endpoints):
        pairs = [(endpoint.environment, endpoint.base_url)]
        if endpoint.sandbox_url:
            pairs.append((Environment.SANDBOX, endpoint.sandbox_url))
        for env, url in pairs:
            key = f"{env}:{url}"
            if key not in seen:
                seen.add(key)
                out.append((index, env, url))
    return out


def targets(directory: Directory) -> list[Target]:
    """Every base URL to probe: each endpoint, plus the sandbox URL declared beside it."""
    seen: set[str] = set()
    return [
        Target(payer, payer.endpoints[index], env, url)
        for payer in directory.payers
        for index, env, url in payer_targets(payer, seen)
    ]


class DirectoryError(Exception):
    """An endpoints file that cannot be used; `problems` lists each as 'file:line: field: why'."""

    def __init__(self, path: Path, problems: list[str]) -> None:
        self.path = path
        self.problems = problems
        super().__init__(f"{path}: {len(problems)} problem(s)\n" + "\n".join(problems))


_SECRET_KEYS = frozenset(
    {
        "token",
        "access_token",
        "refresh_token",
        "client_secret",
        "private_key",
        "password",
        "api_key",
    }
)


def _line_index(node: yaml.Node, path: tuple[Any, ...], out: dict[tuple[Any, ...], int]) -> None:
    out[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = key_node.value
            out[(*path, key)] = key_node.start_mark.line + 1
            _line_index(value_node, (*path, key), out)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _line_index(item, (*path, i), out)


class _LineIndex:
    """Line numbers by location, built from the YAML text only when a problem needs one.

    A valid directory never needs them; building them for every node of a large directory
    cost several KiB per endpoint at the load's peak.
    """

    def __init__(self, text: str) -> None:
        self._text = text
        self._table: dict[tuple[Any, ...], int] | None = None

    def table(self) -> dict[tuple[Any, ...], int]:
        """Location -> line, for every mapping key and node."""
        if self._table is None:
            self._table = {}
            node, _ = _compose_and_load(self._text)
            if node is not None:
                _line_index(node, (), self._table)
        return self._table


def _nearest_line(lines: _LineIndex, loc: tuple[Any, ...]) -> int:
    table = lines.table()
    for cut in range(len(loc), -1, -1):
        if loc[:cut] in table:
            return table[loc[:cut]]
    return 1


def _inline_secrets(data: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Paths where a secret-looking key holds a literal string instead of a reference."""
    found: list[tuple[Any, ...]] = []
    if isinstance(data, dict):
        for key, value in data.items():
            literal = isinstance(value, str | int)
            if isinstance(key, str) and key.lower() in _SECRET_KEYS and literal:
                found.append((*path, key))
            else:
                found.extend(_inline_secrets(value, (*path, key)))
    elif isinstance(data, list):
        for i, item in enumerate(data):
            found.extend(_inline_secrets(item, (*path, i)))
    return found


def _dotted(loc: tuple[Any, ...]) -> str:
    return ".".join(str(p) for p in loc) or "(top level)"


_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when available

#: The largest YAML file (endpoints.yaml, a rubric) probe reads: 20 MiB, about 100,000 payers.
MAX_YAML_BYTES = 20 * 1024 * 1024
#: The deepest nesting of mappings and lists allowed in such a file (the schemas need 6).
MAX_YAML_DEPTH = 32


def yaml_bound_problem(text: str, source: str | Path, *, depth: int = 0) -> str | None:
    """Why `text` may not be built into data, as ``source:line: ...``; None when it may.

    Refused before anything is built: a text over :data:`MAX_YAML_BYTES`, any alias (``*name``,
    which is how billion-laughs and self-referencing documents are written; the schemas need
    none), and nesting deeper than :data:`MAX_YAML_DEPTH` (counting `depth` levels around
    `text`: a part of a larger document). The check reads the event stream once, in linear
    time and constant memory; YAML syntax errors are raised as ``yaml.YAMLError`` for the
    caller to report.
    """
    if len(text) > MAX_YAML_BYTES or len(text.encode("utf-8", "surrogatepass")) > MAX_YAML_BYTES:
        return f"{source}:1: (top level): {_too_large(len(text.encode('utf-8', 'replace')))}"
    loader = _Loader(text)
    try:
        while loader.check_event():
            event = loader.get_event()
            if isinstance(event, yaml.AliasEvent):
                line = _event_line(event)
                return (
                    f"{source}:{line}: YAML alias *{event.anchor} is not allowed "
                    "(anchors and aliases are refused: write the value out)"
                )
            if isinstance(event, yaml.MappingStartEvent | yaml.SequenceStartEvent):
                depth += 1
                if depth > MAX_YAML_DEPTH:
                    line = _event_line(event)
                    return (
                        f"{source}:{line}: nested deeper than {MAX_YAML_DEPTH} levels "
                        "(the bound on mappings and lists within each other)"
                    )
            elif isinstance(event, yaml.MappingEndEvent | yaml.SequenceEndEvent):
                depth -= 1
    finally:
        loader.dispose()
    return None


def _event_line(event: Any) -> int:
    mark = getattr(event, "start_mark", None)
    return int(mark.line) + 1 if mark is not None else 1


def _too_large(size: int) -> str:
    return (
        f"the file is {size / 1048576:.1f} MiB, over the {MAX_YAML_BYTES // 1048576} MiB "
        "bound on YAML files probe reads"
    )


def _compose_and_load(text: str) -> tuple[yaml.Node | None, Any]:
    """One parse (libyaml when present): the node tree, for line numbers, and the data."""
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    finally:
        loader.dispose()
    return node, data


def parse_directory(text: str, path: Path) -> Directory:
    """Parse and validate directory YAML text; every problem is listed by line and field.

    Problems come in line order, all at once: YAML syntax (with its line), an empty file or a
    top level that is not a mapping, duplicate keys, inline secrets, duplicate payer names and
    every schema violation pydantic finds.
    """
    try:
        bound = yaml_bound_problem(text, path)
        if bound is not None:
            raise DirectoryError(path, [bound])
        node, data = _compose_and_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        line = mark.line + 1 if mark is not None else 1
        problem = getattr(exc, "problem", None) or str(exc)
        raise DirectoryError(path, [f"{path}:{line}: YAML syntax: {problem}"]) from None
    if node is None:
        raise DirectoryError(
            path, [f"{path}:1: (top level): the file is empty; expected a mapping with 'payers'"]
        )
    if not isinstance(data, dict):
        line = node.start_mark.line + 1
        raise DirectoryError(
            path, [f"{path}:{line}: (top level): expected a mapping with 'payers'"]
        )
    lines = _LineIndex(text)
    found: list[tuple[int, str]] = _duplicate_keys(node, ())
    del node  # the node tree is large; line numbers are rebuilt from the text if needed
    secret_locs = _inline_secrets(data)
    found += [
        (
            _nearest_line(lines, loc),
            f"{_dotted(loc)}: secrets must not be written in this file; "
            "use {env: VARIABLE} or {secret: KEY} with secrets_file",
        )
        for loc in secret_locs
    ]
    found += _duplicate_payers(data, lines)
    try:
        directory = Directory.model_validate(data)
    except ValidationError as exc:
        for err in exc.errors():
            loc = _without_union_tags(tuple(err["loc"]))
            if any(loc[: len(s)] == s for s in secret_locs):
                continue  # already reported as an inline secret
            if not loc and found and "appears twice" in err["msg"]:
                continue  # already reported, with its line, by _duplicate_payers
            message = err["msg"].removeprefix("Value error, ")
            found.append((_nearest_line(lines, loc), f"{_dotted(loc)}: {message}"))
        raise DirectoryError(path, _ordered(path, found)) from None
    found += _authorize_needs_refresh_token(directory, lines)
    if found:
        raise DirectoryError(path, _ordered(path, found))
    return directory


def _authorize_needs_refresh_token(
    directory: Directory, lines: _LineIndex
) -> list[tuple[int, str]]:
    """`authorize:` blocks on endpoints whose credentials are not of kind refresh_token."""
    found: list[tuple[int, str]] = []
    for p, payer in enumerate(directory.payers):
        for e, endpoint in enumerate(payer.endpoints):
            if isinstance(endpoint.credentials, RefreshTokenCredentials):
                continue
            kind = endpoint.credentials.kind if endpoint.credentials else "none"
            for t, patient in enumerate(endpoint.test_patients):
                if patient.authorize is None:
                    continue
                loc = ("payers", p, "endpoints", e, "test_patients", t, "authorize")
                found.append(
                    (
                        _nearest_line(lines, loc),
                        f"{_dotted(loc)}: authorize needs the endpoint's credentials to be of "
                        f"kind refresh_token (client_id, client_secret, auth_method), not {kind}",
                    )
                )
    return found


def _ordered(path: Path, found: list[tuple[int, str]]) -> list[str]:
    return [f"{path}:{line}: {message}" for line, message in sorted(found, key=lambda f: f[0])]


def _duplicate_keys(node: yaml.Node, path: tuple[Any, ...]) -> list[tuple[int, str]]:
    """Keys written twice in one mapping (YAML would silently keep the last one)."""
    found: list[tuple[int, str]] = []
    if isinstance(node, yaml.MappingNode):
        seen: set[Any] = set()
        for key_node, value_node in node.value:
            key = key_node.value
            if isinstance(key, str) and key in seen:
                where = _dotted((*path, key))
                found.append((key_node.start_mark.line + 1, f"{where}: key written twice"))
            seen.add(key)
            found += _duplicate_keys(value_node, (*path, key))
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            found += _duplicate_keys(item, (*path, i))
    return found


def _duplicate_payers(data: dict[Any, Any], lines: _LineIndex) -> list[tuple[int, str]]:
    """Payer names used twice, reported at the second use (even when other fields are invalid)."""
    payers = data.get("payers")
    if not isinstance(payers, list):
        return []
    found: list[tuple[int, str]] = []
    first: dict[str, int] = {}  # name -> index of its first payer
    for i, payer in enumerate(payers):
        name = payer.get("name") if isinstance(payer, dict) else None
        if not isinstance(name, str):
            continue
        loc = ("payers", i, "name")
        if name in first:
            found.append(
                (
                    _nearest_line(lines, loc),
                    f"{_dotted(loc)}: payer name {name!r} appears twice "
                    f"(first at line {_nearest_line(lines, ('payers', first[name], 'name'))})",
                )
            )
        else:
            first[name] = i
    return found


_UNION_TAGS = {"bearer", "refresh_token", "backend_services"}


def _without_union_tags(loc: tuple[Any, ...]) -> tuple[Any, ...]:
    """Drop pydantic's discriminator tag that follows 'credentials' in an error location."""
    out: list[Any] = []
    for i, part in enumerate(loc):
        if i > 0 and loc[i - 1] == "credentials" and part in _UNION_TAGS:
            continue
        out.append(part)
    return tuple(out)


def load_directory(path: Path) -> Directory:
    """Read and validate an endpoints file; raise DirectoryError naming file, line and field."""
    try:
        size = path.stat().st_size
        if size > MAX_YAML_BYTES:
            raise DirectoryError(path, [f"{path}:1: (top level): {_too_large(size)}"])
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise DirectoryError(path, [f"{path}: cannot read: {exc.strerror}"]) from None
    except UnicodeDecodeError:
        raise DirectoryError(path, [f"{path}: not UTF-8 text"]) from None
    return parse_directory(text, path)


def dump_directory(directory: Directory) -> str:
    """The directory as YAML text in the documented layout (defaults omitted)."""
    data = directory.model_dump(mode="json", exclude_defaults=True, exclude_none=True)
    data = {"version": directory.version, **data}
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=100)
