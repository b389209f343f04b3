"""A directory held compactly for a crawl: payers validated one at a time and kept as bytes.

`load_directory` builds the whole YAML document, then one pydantic model per payer, endpoint,
credential and patient: about 19 KiB per endpoint at its peak and 5 KiB retained, which made a
crawl's memory grow with the directory. `load_lean_directory` reads the same file payer by
payer (the ``payers`` list is cut into one small YAML document per item, found on libyaml's
event stream), validates each payer exactly as `load_directory` does, and keeps it as the
marshalled YAML data (about 0.4 KiB) plus one small `TargetRef` per base URL. A `Payer` model
is rebuilt only when a crawl reaches one of its targets.

Any problem (or a layout that cannot be cut, such as a flow-style list) falls back to
`load_directory`, so errors are reported exactly as before: by file, line and field.
"""

from __future__ import annotations

import functools
import itertools
import marshal
import pickle
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import yaml
from pydantic import ValidationError

from probe.directory.schema import (
    MAX_YAML_BYTES,
    MAX_YAML_DEPTH,
    Directory,
    Environment,
    Payer,
    Target,
    _authorize_needs_refresh_token,
    _compose_and_load,
    _duplicate_keys,
    _event_line,
    _inline_secrets,
    _LineIndex,
    _Loader,
    load_directory,
    payer_targets,
)

#: First byte of a stored payer: marshal (plain YAML data) or pickle (e.g. YAML timestamps).
_MARSHAL, _PICKLE = b"m", b"p"
#: Payers rebuilt and kept per process: a claimed host's targets come from a few payers.
_DECODED_PAYERS = 256


class TargetRef(NamedTuple):
    """Where one crawl target lives in a `LeanDirectory`: its payer, endpoint and base URL."""

    payer: int
    endpoint: int
    environment: Environment
    base_url: str

    @property
    def key(self) -> str:
        """The target's identity, the same as `Target.key`."""
        return f"{self.environment}:{self.base_url}"


def _pack(data: Any) -> bytes:
    try:
        return _MARSHAL + marshal.dumps(data)
    except ValueError:  # a YAML timestamp or another type marshal does not know
        return _PICKLE + pickle.dumps(data, protocol=pickle.HIGHEST_PROTOCOL)


def _unpack(blob: bytes) -> Any:
    if blob[:1] == _MARSHAL:
        return marshal.loads(blob[1:])  # noqa: S302 (bytes this process packed itself)
    return pickle.loads(blob[1:])  # noqa: S301 (bytes this process packed itself)


class LeanDirectory:
    """A validated directory kept small: payer data as bytes, targets as `TargetRef`s."""

    def __init__(self, version: int, secrets_file: str | None) -> None:
        self.version = version
        self.secrets_file = secrets_file
        self._blobs: list[bytes] = []
        #: Payer names, in directory order.
        self.names: list[str] = []
        #: Every target (each endpoint's base URL and its sandbox URL), in directory order.
        self.refs: list[TargetRef] = []
        self._seen: set[str] | None = set()
        #: The portal and token URLs of endpoints that declare any, by (payer, endpoint).
        self._side_urls: dict[tuple[int, int], tuple[str, ...]] = {}
        self.payer = functools.lru_cache(maxsize=_DECODED_PAYERS)(self._decode)

    def _add(self, data: Any, payer: Payer) -> None:
        index = len(self._blobs)
        self._blobs.append(_pack(data))
        self.names.append(payer.name)
        assert self._seen is not None, "the directory is complete"
        for position, env, url in payer_targets(payer, self._seen):
            self.refs.append(TargetRef(index, position, env, url))
        for position, endpoint in enumerate(payer.endpoints):
            token_url = getattr(endpoint.credentials, "token_url", None)
            side = tuple(u for u in (endpoint.portal_url, token_url) if u)
            if side:
                self._side_urls[(index, position)] = side

    def _done(self) -> LeanDirectory:
        self._seen = None  # only needed while targets are listed
        return self

    def _decode(self, index: int) -> Payer:
        """Payer `index` rebuilt from its stored data (validated again, as when loaded)."""
        return Payer.model_validate(_unpack(self._blobs[index]))

    @classmethod
    def from_directory(cls, directory: Directory) -> LeanDirectory:
        """The lean form of an already loaded directory (tests and small directories)."""
        lean = cls(directory.version, directory.secrets_file)
        for payer in directory.payers:
            lean._add(payer.model_dump(mode="python", exclude_unset=True), payer)
        return lean._done()

    def __len__(self) -> int:
        return len(self._blobs)

    def payers(self) -> Iterator[Payer]:
        """Every payer, rebuilt one at a time (none is kept by the iteration)."""
        for index in range(len(self._blobs)):
            yield self._decode(index)

    def target(self, ref: TargetRef) -> Target:
        """The full target a reference points to."""
        payer = self.payer(ref.payer)
        return Target(payer, payer.endpoints[ref.endpoint], ref.environment, ref.base_url)

    def operator_urls(self, ref: TargetRef) -> tuple[str, ...]:
        """The URLs the directory gives for a target (its base URL, its endpoint's portal and
        token URLs), without rebuilding its payer: the hosts the operator named."""
        return (ref.base_url, *self._side_urls.get((ref.payer, ref.endpoint), ()))

    def refs_for(self, chosen: Iterable[Target]) -> list[TargetRef]:
        """The references of targets given in full (by key; unknown keys are skipped)."""
        by_key = {ref.key: ref for ref in self.refs}
        return [by_key[t.key] for t in chosen if t.key in by_key]

    def to_directory(self) -> Directory:
        """The whole directory as pydantic models (for small directories)."""
        return Directory.model_validate(
            {"version": self.version, "secrets_file": self.secrets_file, "payers": []}
        ).model_copy(update={"payers": list(self.payers())})


class TargetTable(Mapping[int, Target]):
    """Endpoint id -> `Target`, each rebuilt from a `LeanDirectory` when asked for."""

    def __init__(self, directory: LeanDirectory, refs: Mapping[int, TargetRef]) -> None:
        self.directory = directory
        self.refs = refs

    def __getitem__(self, endpoint_id: int) -> Target:
        return self.directory.target(self.refs[endpoint_id])

    def __iter__(self) -> Iterator[int]:
        return iter(self.refs)

    def __len__(self) -> int:
        return len(self.refs)

    def __contains__(self, endpoint_id: object) -> bool:
        return endpoint_id in self.refs

    def base_urls(self) -> dict[int, str]:
        """Each endpoint id's base URL, without rebuilding any payer."""
        return {eid: ref.base_url for eid, ref in self.refs.items()}

    def operator_urls(self, endpoint_id: int) -> tuple[str, ...]:
        """The URLs the directory gives for one target (see `LeanDirectory.operator_urls`)."""
        return self.directory.operator_urls(self.refs[endpoint_id])


def load_lean_directory(path: Path) -> LeanDirectory:
    """Read and validate an endpoints file payer by payer; raise DirectoryError as
    `load_directory` does (file, line, field) when anything is wrong."""
    try:
        size = path.stat().st_size
        if size > MAX_YAML_BYTES:
            return _fallback(path)
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError):
        return _fallback(path)
    try:
        cut = _cut(text)  # refuses what yaml_bound_problem refuses, in the same pass
    except yaml.YAMLError:
        return _fallback(path)
    if cut is None:
        return _fallback(path)
    lean = _lean_from_cut(text, cut)
    return lean if lean is not None else _fallback(path)


def _fallback(path: Path) -> LeanDirectory:
    """The whole-document loader: its errors, or (a layout not cut) its directory."""
    return LeanDirectory.from_directory(load_directory(path))


class _Cut(NamedTuple):
    """Where (character offsets of line starts) the ``payers:`` key, each of its items and the
    rest of the file begin."""

    key: int
    items: list[int]
    end: int


def _line_start(text: str, mark: Any) -> int:
    """The offset of the start of the line holding a libyaml mark (its index counts characters)."""
    index = int(mark.index)
    if index >= len(text):  # the end of a file without a final newline
        return len(text)
    return text.rfind("\n", 0, index) + 1


def _cut(text: str) -> _Cut | None:
    """Where the top-level block list ``payers`` and each of its items start, from libyaml's
    event stream (constant memory); None when the layout is not one that can be cut, and
    wherever :func:`yaml_bound_problem` finds a problem (an alias, nesting deeper than
    :data:`MAX_YAML_DEPTH`): the whole-document loader then reports it."""
    loader = _Loader(text)
    try:
        depth = 0
        expect_key = False
        key: str | None = None
        key_line = key_start = -1
        in_payers = False
        found: _Cut | None = None
        items: list[int] = []
        while loader.check_event():
            event = loader.get_event()
            if depth > MAX_YAML_DEPTH or isinstance(event, yaml.AliasEvent):
                return None
            starts = isinstance(event, yaml.MappingStartEvent | yaml.SequenceStartEvent)
            ends = isinstance(event, yaml.MappingEndEvent | yaml.SequenceEndEvent)
            if in_payers:
                if depth == 2 and ends:  # the end of the payers list
                    in_payers = False
                    found = _Cut(key_start, items, _line_start(text, event.start_mark))
                    depth -= 1
                    expect_key = True
                    continue
                if depth == 2 and (starts or isinstance(event, yaml.ScalarEvent)):
                    items.append(_line_start(text, event.start_mark))
                depth += 1 if starts else -1 if ends else 0
                continue
            if depth == 1 and expect_key:
                if isinstance(event, yaml.ScalarEvent):
                    key, key_line = event.value, _event_line(event)
                    key_start = _line_start(text, event.start_mark)
                    expect_key = False
                    continue
                if not isinstance(event, yaml.MappingEndEvent):
                    return None  # a complex key
            elif depth == 1:  # the value of `key`
                expect_key = True
                if key == "payers":
                    if found is not None or not isinstance(event, yaml.SequenceStartEvent):
                        return None
                    if event.flow_style or _event_line(event) == key_line:
                        return None
                    in_payers = True
                    depth += 1
                    continue
            if starts:
                if depth == 0 and not isinstance(event, yaml.MappingStartEvent):
                    return None
                depth += 1
                if depth == 1:
                    expect_key = True
            elif ends:
                depth -= 1
        return found if found is not None and found.items else None
    finally:
        loader.dispose()


def _lean_from_cut(text: str, cut: _Cut) -> LeanDirectory | None:
    """Validate the top level and every payer on its own; None at the first problem."""
    skeleton = text[: cut.key] + text[cut.end :]
    top = _checked(skeleton)
    if not isinstance(top, dict) or "payers" in top:
        return None
    try:
        head = Directory.model_validate({**top, "payers": []})
    except ValidationError:
        return None
    lean = LeanDirectory(head.version, head.secrets_file)
    names: set[str] = set()
    bounds = [*cut.items, cut.end]
    for start, end in itertools.pairwise(bounds):
        chunk = _checked(text[start:end])
        if not isinstance(chunk, list) or len(chunk) != 1:
            return None
        data = chunk[0]
        try:
            payer = Payer.model_validate(data)
        except ValidationError:
            return None
        if payer.name in names or _authorize_needs_refresh_token(
            Directory.model_construct(payers=[payer]), _LineIndex("")
        ):
            return None
        names.add(payer.name)
        lean._add(data, payer)
    return lean._done()


def _checked(text: str) -> Any:
    """The data of one YAML document when it has no duplicate key and no inline secret;
    None otherwise (the caller falls back to the whole-document loader for the messages)."""
    try:
        node, data = _compose_and_load(text)
    except yaml.YAMLError:
        return None
    if node is None or _duplicate_keys(node, ()) or _inline_secrets(data):
        return None
    return data


def select_refs(
    directory: LeanDirectory,
    only: Collection[str] = (),
    keep: Callable[[TargetRef], bool] | None = None,
) -> list[TargetRef]:
    """The directory's targets, filtered by payer name (case-insensitive) and `keep(ref)`."""
    wanted = {name.casefold() for name in only}
    return [
        ref
        for ref in directory.refs
        if (not wanted or directory.names[ref.payer].casefold() in wanted)
        and (keep is None or keep(ref))
    ]


def unknown_payers(directory: LeanDirectory, only: Sequence[str]) -> list[str]:
    """Names in `only` that match no payer of the directory."""
    names = {name.casefold() for name in directory.names}
    return [n for n in only if n.casefold() not in names]
