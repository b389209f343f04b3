"""The fleet config (YAML): which payers to simulate, their archetypes, OAuth and paging settings.

Everything derived from a config is deterministic given its `seed`. See docs/fleet.md for the
format; :func:`load_fleet_config` reports every problem by field.
"""

from __future__ import annotations

import hashlib
import random
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from probe.directory.schema import EndpointFacts, OrganizationStatus
from probe.fleet.archetypes import HOSTILE, ArchetypeEntry, ArchetypeName, Behaviour, resolve

PagingStyle = Literal["ct", "hapi", "page_token", "offset"]
PAGING_STYLES: tuple[PagingStyle, ...] = ("ct", "hapi", "page_token", "offset")
ClientAuth = Literal[
    "client_secret_basic", "client_secret_post", "none", "private_key_jwt", "bearer"
]
CLIENT_AUTHS: tuple[ClientAuth, ...] = (
    "client_secret_basic",
    "client_secret_post",
    "none",
    "private_key_jwt",
    "bearer",
)
# The member login journey behind a payer's authorize endpoint (docs/fleet.md, "Login journeys").
Journey = Literal[
    "consent",
    "consent_scopes",
    "identity_verification",
    "ineligible",
    "popup",
    "slow",
    "drops_state",
    "not_active",
    "default_deny",
]
JOURNEYS: tuple[Journey, ...] = (
    "consent",
    "consent_scopes",
    "identity_verification",
    "ineligible",
    "popup",
    "slow",
    "drops_state",
    "not_active",
    "default_deny",
)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class OAuthConfig(_Strict):
    """How the payer's authorization server treats the fleet's client."""

    client_auth: ClientAuth = "client_secret_basic"
    access_token_lifetime_s: float = Field(default=3600.0, gt=0)
    refresh_token_lifetime_s: float | None = Field(default=None, gt=0)
    rotate_refresh_tokens: bool = False
    key_algorithm: Literal["ES384", "RS384"] = "ES384"
    journey: Journey = "consent"


class PayerConfig(_Strict):
    """One simulated payer."""

    model_config = ConfigDict(extra="forbid", frozen=True, ignored_types=(cached_property,))

    slug: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")
    name: str | None = None
    archetypes: list[ArchetypeEntry] = Field(default_factory=list)
    patients: int = Field(default=2, ge=1, le=50)
    page_size: int = Field(default=20, ge=1, le=1000)
    max_count: int = Field(default=200, ge=1, le=5000)
    paging_style: PagingStyle | None = None
    host: int | None = Field(default=None, ge=0)
    oauth: OAuthConfig = Field(default_factory=OAuthConfig)
    lives: int | None = Field(default=None, ge=0)
    organization_status: OrganizationStatus = OrganizationStatus.LIVE
    # The developer portal: a real page, none in the directory, a parked domain, or a 404.
    portal: Literal["page", "none", "parked", "missing"] = "page"
    # The platform the payer's API runs on, as the directory names it (vendor scores).
    vendor: str | None = Field(default=None, min_length=1, max_length=100)
    # A sandbox beside production (same data, same OAuth) at /payers/SLUG/sandbox/fhir.
    sandbox: bool = False
    # Facts the directory carries for the scoring (what probe cannot observe).
    facts: EndpointFacts | None = None

    @model_validator(mode="after")
    def _combination(self) -> PayerConfig:
        behaviour = resolve(self.archetypes)
        huge = behaviour.huge_patient
        if huge is not None and huge.patient >= self.patients:
            raise ValueError(
                f"huge_patient.patient is {huge.patient} but the payer has {self.patients} "
                "patient(s) (0-based)"
            )
        return self

    @cached_property
    def behaviour(self) -> Behaviour:
        """The payer's resolved archetypes."""
        return resolve(self.archetypes)

    @property
    def display_name(self) -> str:
        """The payer's name for the directory."""
        return self.name or self.slug.replace("-", " ").title()


# The default weights of generated payers: mostly well-behaved, every quirk represented.
DEFAULT_MIX: dict[ArchetypeName, float] = {
    ArchetypeName.EXEMPLARY: 10.0,
    ArchetypeName.NO_SMART_CONFIG: 1.0,
    ArchetypeName.METADATA_AUTH: 1.0,
    ArchetypeName.HTML_LOGIN: 0.5,
    ArchetypeName.LEGACY_STU3: 0.5,
    ArchetypeName.R4_400: 1.0,
    ArchetypeName.DSTU2_CONFORMANCE: 0.3,
    ArchetypeName.OIDC_AT_SMART_PATH: 0.5,
    ArchetypeName.SMART_MINIMAL: 1.0,
    ArchetypeName.EVERYTHING_UNSUPPORTED: 1.0,
    ArchetypeName.PAGING_LOOP: 0.3,
    ArchetypeName.PAGING_SKIP: 0.3,
    ArchetypeName.PAGING_CROSS_ORIGIN: 0.3,
    ArchetypeName.DANGLING_REFERENCES: 1.0,
    ArchetypeName.CONTAINED_REFERENCES: 0.5,
    ArchetypeName.RATE_LIMITED: 1.0,
    ArchetypeName.SLOW: 1.0,
    ArchetypeName.FLAKY: 1.0,
    ArchetypeName.MOVED: 0.5,
    ArchetypeName.EXPIRING_TOKENS: 0.5,
    ArchetypeName.SANDBOX_ONLY: 0.5,
    ArchetypeName.PLAIN_JSON: 0.5,
}


class GenerateConfig(_Strict):
    """Many payers drawn from a weighted archetype mix (seeded), e.g. for the benchmark."""

    count: int = Field(ge=1, le=20_000)
    prefix: str = Field(default="payer", pattern=r"^[a-z0-9][a-z0-9-]{0,40}$")
    mix: dict[ArchetypeName, float] = Field(default_factory=lambda: dict(DEFAULT_MIX))
    second_archetype_share: float = Field(default=0.2, ge=0, le=1)
    patients: int = Field(default=1, ge=1, le=10)
    page_size: int = Field(default=20, ge=1, le=1000)

    @model_validator(mode="after")
    def _weights(self) -> GenerateConfig:
        if any(w < 0 for w in self.mix.values()) or sum(self.mix.values()) <= 0:
            raise ValueError("mix weights must be non-negative with a positive sum")
        if ArchetypeName.HUGE_PATIENT in self.mix:
            raise ValueError("huge_patient cannot be generated in bulk; list it under payers")
        return self


class FleetConfig(_Strict):
    """A whole fleet: payers spread over `hosts` loopback addresses from 127.0.0.2."""

    model_config = ConfigDict(extra="forbid", frozen=True, ignored_types=(cached_property,))

    seed: int = 1
    hosts: int = Field(default=4, ge=1, le=64)
    payers: list[PayerConfig] = Field(default_factory=list)
    generate: GenerateConfig | None = None
    log_headers: bool = True
    max_log_records: int = Field(default=50_000, ge=0)

    @model_validator(mode="after")
    def _unique(self) -> FleetConfig:
        seen: set[str] = set()
        for payer in self.all_payers:
            if payer.slug in seen:
                raise ValueError(f"payer slug {payer.slug!r} appears twice")
            seen.add(payer.slug)
            if payer.host is not None and payer.host >= self.hosts:
                raise ValueError(
                    f"payer {payer.slug!r}: host {payer.host} but the fleet has "
                    f"{self.hosts} host(s) (0-based)"
                )
        return self

    @cached_property
    def all_payers(self) -> list[PayerConfig]:
        """The listed payers followed by the generated ones."""
        return [*self.payers, *(_generate(self.generate, self.seed) if self.generate else [])]


def _generate(spec: GenerateConfig, seed: int) -> list[PayerConfig]:
    rng = random.Random(f"{seed}:generate")
    names = list(spec.mix)
    weights = [spec.mix[n] for n in names]
    payers: list[PayerConfig] = []
    width = len(str(spec.count))
    for i in range(spec.count):
        chosen = [rng.choices(names, weights)[0]]
        if rng.random() < spec.second_archetype_share:
            chosen.append(rng.choices(names, weights)[0])
        entries: list[ArchetypeEntry] = []
        for name in chosen:
            candidate = [*entries, ArchetypeEntry(name=name)]
            try:
                resolve(candidate)
            except ValueError:
                continue
            entries = candidate
        payers.append(
            PayerConfig(
                slug=f"{spec.prefix}-{i:0{width}d}",
                archetypes=entries,
                patients=spec.patients,
                page_size=spec.page_size,
                oauth=OAuthConfig(client_auth=CLIENT_AUTHS[rng.randrange(len(CLIENT_AUTHS))]),
            )
        )
    return payers


def default_config(seed: int = 1, hosts: int = 4) -> FleetConfig:
    """One payer per archetype (the "zoo", hostile servers left out), client auth in rotation."""
    payers = []
    for i, name in enumerate(n for n in ArchetypeName if n not in HOSTILE):
        payers.append(
            PayerConfig(
                slug=name.replace("_", "-"),
                name=f"{name.replace('_', ' ').title()} Health Plan",
                archetypes=[ArchetypeEntry(name=name)],
                oauth=OAuthConfig(client_auth=CLIENT_AUTHS[i % 4]),
            )
        )
    return FleetConfig(seed=seed, hosts=hosts, payers=payers)


class FleetConfigError(Exception):
    """A fleet config that cannot be used; `problems` lists each as 'file: field: why'."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        super().__init__(f"{source}: {len(problems)} problem(s)\n" + "\n".join(problems))


def parse_fleet_config(data: Any, source: str = "<config>") -> FleetConfig:
    """Validate already-parsed YAML/JSON data into a FleetConfig (FleetConfigError on problems)."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise FleetConfigError(source, [f"{source}: (top level): expected a mapping"])
    try:
        return FleetConfig.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            where = ".".join(str(p) for p in err["loc"]) or "(top level)"
            got = err.get("input")
            hint = f" (got {got!r})" if isinstance(got, str | int | float) else ""
            problems.append(f"{source}: {where}: {err['msg']}{hint}")
        raise FleetConfigError(source, problems) from None


def load_fleet_config(path: Path) -> FleetConfig:
    """Read a fleet config YAML file; FleetConfigError names the file and each bad field."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise FleetConfigError(str(path), [f"{path}: cannot read: {exc.strerror}"]) from None
    except yaml.YAMLError as exc:
        raise FleetConfigError(str(path), [f"{path}: YAML syntax: {exc}"]) from None
    return parse_fleet_config(data, str(path))


def derive(seed: int, *parts: object) -> bytes:
    """32 deterministic bytes from the fleet seed and any labels (ids, secrets, choices)."""
    text = ":".join([str(seed), *(str(p) for p in parts)])
    return hashlib.sha256(text.encode()).digest()


def derive_int(seed: int, *parts: object) -> int:
    """A deterministic non-negative integer from the seed and labels."""
    return int.from_bytes(derive(seed, *parts)[:8], "big")


def derive_unit(seed: int, *parts: object) -> float:
    """A deterministic float in [0, 1) from the seed and labels."""
    return derive_int(seed, *parts) / 2**64
