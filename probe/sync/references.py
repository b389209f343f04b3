"""Gathering references from fetched resources and classifying them for resolution.

Only reference strings and ids are kept, never resources. Kinds: ``contained`` (``#id``),
``urn`` (``urn:uuid:`` / ``urn:oid:`` matched against Bundle fullUrls), ``relative``
(``Type/id``, also absolute URLs under the base), ``same_origin`` (absolute, same origin, other
path), ``other_origin`` (never fetched with the patient's token) and ``unresolvable``
(conditional or malformed references).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from probe.http.urls import origin_of, printable_url, url_problem

#: FHIR R4 ids are at most 64 characters (datatypes.html#id); some servers serve longer ones and
#: read them with 200, so references are taken with ids up to 256 characters and the excess
#: over 64 is a finding.
R4_ID_LENGTH = 64
_RELATIVE = re.compile(
    r"^([A-Z][A-Za-z]+)/([A-Za-z0-9\-\.]{1,256})(?:/_history/[A-Za-z0-9\-\.]{1,256})?$"
)


def iter_references(resource: dict[str, Any]) -> list[str]:
    """Every `reference` string inside a resource (not inside its contained resources)."""
    # Iterative (no recursion limit on hostile nesting), and only JSON containers go on the
    # stack: most values are strings, and pushing them to pop and test them again, or testing
    # with isinstance through generators, was most of the walk's cost (about 2x).
    found: list[str] = []
    stack: list[Any] = [
        v for k, v in resource.items() if k != "contained" and type(v) in (dict, list)
    ]
    push, pop = stack.append, stack.pop
    while stack:
        node = pop()
        if type(node) is dict:
            ref = node.get("reference")
            if type(ref) is str:
                found.append(ref)
            children = node.values()
        else:
            children = node
        for value in children:
            kind = type(value)
            if kind is dict or kind is list:
                push(value)
    return found


@dataclass(slots=True)
class ReferenceSet:
    """The distinct references a sync has seen, by kind, with what is known to exist locally."""

    base_url: str
    relative: set[str] = field(default_factory=set)
    same_origin: set[str] = field(default_factory=set)
    urns: set[str] = field(default_factory=set)
    other_origin: set[str] = field(default_factory=set)
    unresolvable: set[str] = field(default_factory=set)
    contained_found: int = 0
    contained_resolved: int = 0
    full_urls: set[str] = field(default_factory=set)
    max_references: int = 100_000
    #: References whose id is longer than R4 allows (still resolved: a grammar finding).
    long_ids: set[str] = field(default_factory=set)
    #: Reference strings already classified (not ``#id`` ones, which count per occurrence):
    #: seen again, they would be added to the same set again. A patient's record names the
    #: same Patient, Encounter, Practitioner... thousands of times (a Synthea page: 9,213
    #: references, 2,437 distinct).
    _classified: set[str] = field(default_factory=set, init=False, repr=False)

    @property
    def total(self) -> int:
        """Distinct references seen (contained ones counted per occurrence)."""
        return (
            len(self.relative)
            + len(self.same_origin)
            + len(self.urns)
            + len(self.other_origin)
            + len(self.unresolvable)
            + self.contained_found
        )

    def add_resource(self, resource: dict[str, Any], full_url: str | None) -> None:
        """Record a fetched resource's fullUrl and every reference it makes."""
        if full_url:
            self.full_urls.add(full_url)
        contained_ids = {
            f"#{c.get('id')}"
            for c in resource.get("contained") or []
            if isinstance(c, dict) and c.get("id")
        }
        refs = iter_references(resource)
        if self.total + len(refs) <= self.max_references:  # the cap cannot be reached here
            for ref in refs:
                self.add(ref, contained_ids)
            return
        for ref in refs:
            if self.total >= self.max_references:
                return
            self.add(ref, contained_ids)

    def add(self, ref: str, contained_ids: set[str] | None = None) -> None:
        """Classify one reference string."""
        if ref in self._classified:
            return
        raw, ref = ref, ref.strip()
        if ref.startswith("#"):
            self.contained_found += 1
            if contained_ids is not None and ref in contained_ids:
                self.contained_resolved += 1
            return
        if len(self._classified) < self.max_references:
            self._classified.add(raw)
        if ref.startswith(("urn:uuid:", "urn:oid:")):
            self.urns.add(ref)
            return
        if ref.startswith(("http://", "https://")):
            if url_problem(ref) is not None:  # e.g. "http://[::1", control characters, too long
                self.unresolvable.add(printable_url(ref, 300))
                return
            base = self.base_url.rstrip("/") + "/"
            match = _RELATIVE.match(ref[len(base) :]) if ref.startswith(base) else None
            if match is not None:
                self._note_id(ref, match)
                self.relative.add(_strip_history(ref[len(base) :]))
            elif origin_of(ref) == origin_of(self.base_url):
                self.same_origin.add(ref)
            else:
                self.other_origin.add(ref)
            return
        match = _RELATIVE.match(ref)
        if match is not None:
            self._note_id(ref, match)
            self.relative.add(_strip_history(ref))
            return
        self.unresolvable.add(ref)

    def _note_id(self, ref: str, match: re.Match[str]) -> None:
        if len(match.group(2)) > R4_ID_LENGTH and len(self.long_ids) < 100:
            self.long_ids.add(ref)


def _strip_history(ref: str) -> str:
    parts = ref.split("/")
    return "/".join(parts[:2])
