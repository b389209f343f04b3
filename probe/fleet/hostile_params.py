"""The hostile archetypes' names and parameter models, and a hostile payer's resolved spec.

These are what a fleet config says about a hostile payer (validated with the other archetypes'
parameters in :mod:`probe.fleet.archetypes`); :mod:`probe.fleet.hostile` is the server that acts
them out. `scope` says which requests misbehave: ``discovery`` (`/metadata` and the SMART
configuration), ``data`` (every other FHIR request), ``token`` (the token endpoint) or ``all``
(every request of the payer).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Scope = Literal["all", "discovery", "data", "token"]


class _HostileParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    scope: Scope = "all"


class TrickleParams(_HostileParams):
    """Headers at once, then the real body at `bytes_per_s` (a slow-loris response)."""

    bytes_per_s: float = Field(default=1.0, gt=0, le=1_000_000)


class EndlessBodyParams(_HostileParams):
    """200 with a chunked body that never ends (as fast as the client reads)."""


class HugeBodyParams(_HostileParams):
    """200 with a body of `mb` MiB; `chunked` hides the size (no Content-Length)."""

    mb: int = Field(default=100, ge=1, le=100_000)
    chunked: bool = False


class GzipBombParams(_HostileParams):
    """A small gzip body that inflates to `decompressed_mb` MiB of JSON whitespace."""

    decompressed_mb: int = Field(default=10_240, ge=1, le=1_000_000)


class DeepJsonParams(_HostileParams):
    """A JSON object whose one member nests arrays `depth` deep."""

    depth: int = Field(default=100_000, ge=1, le=10_000_000)


class RedirectLoopParams(_HostileParams):
    """Every request redirects (`status`) to a new URL on the same origin, forever."""

    status: Literal[301, 302, 303, 307, 308] = 302


class RedirectCrossOriginParams(_HostileParams):
    """Every request redirects (`status`) to the same path on another origin (a fleet host)."""

    status: Literal[301, 302, 303, 307, 308] = 307


class NextLinkElsewhereParams(_HostileParams):
    """Search and $everything pages carry next links to `to`.

    ``link_local``: the cloud metadata service (169.254.169.254); ``other_loopback``: the same
    page on another loopback host of the fleet (another origin); ``private``: 10.0.0.1.
    """

    scope: Scope = "data"
    to: Literal["link_local", "other_loopback", "private"] = "link_local"


class InvalidUtf8Params(_HostileParams):
    """The real JSON body with bytes that are not UTF-8 in one of its strings."""


class LyingLengthParams(_HostileParams):
    """The real body under a false Content-Length.

    ``longer``: the header declares `by` bytes more than are sent, then the connection closes;
    ``shorter``: it declares half the body, all of it is sent and the connection stays open.
    """

    declared: Literal["longer", "shorter"] = "longer"
    by: int = Field(default=1000, ge=1)


class NeverAnswersParams(_HostileParams):
    """The connection is accepted and the request read, but nothing is ever written."""


#: Every hostile archetype's name and parameter model (registered in archetypes.PARAMS).
HOSTILE_PARAMS: dict[str, type[_HostileParams]] = {
    "trickle": TrickleParams,
    "endless_body": EndlessBodyParams,
    "huge_body": HugeBodyParams,
    "gzip_bomb": GzipBombParams,
    "deep_json": DeepJsonParams,
    "redirect_loop": RedirectLoopParams,
    "redirect_cross_origin": RedirectCrossOriginParams,
    "next_link_elsewhere": NextLinkElsewhereParams,
    "invalid_utf8": InvalidUtf8Params,
    "lying_length": LyingLengthParams,
    "never_answers": NeverAnswersParams,
}


@dataclass(frozen=True, slots=True)
class HostileSpec:
    """A payer's one hostile archetype and its parameters."""

    name: str
    params: _HostileParams
