"""A directory held compactly for a crawl: payers validated one at a time and kept as bytes.

`load_directory` builds the whole YAML document, then one pydantic model per payer, endpoint,
credential and patient: about 19 KiB per endpoint at its peak and 5 KiB retained, which made a
crawl's memory grow with the directory. `load_lean_directory` reads the same file payer by
payer (the ``payers`` list is cut at its items' lines into one small YAML document each),
validates each payer exactly as `load_directory` does, and keeps it as the marshalled YAML
data (about 0.4 KiB) plus one small `TargetRef` per base URL. A `Payer` model is rebuilt only
when a crawl reaches one of its targets.

An item is built from libyaml's nodes directly (PyYAML's constructor was most of the time of
reading a directory) when nothing in it could nest without bound or needs the constructor's
own rules; any other item is first checked on its event stream, as a whole file is, and then
built by the constructor. Both give the same data and refuse the same things.

Any problem (or a layout that cannot be cut, such as a flow-style list) falls back to
`load_directory`, so errors are reported exactly as before: by file, line and field.
"""

from __future__ import annotations

import bisect
import functools
import itertools
import marshal
import pickle
import re
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import yaml
from pydantic import ValidationError

from probe.directory.schema import (
    _SECRET_KEYS,
    MAX_YAML_BYTES,
    MAX_YAML_DEPTH,
    Directory,
    Environment,
    Payer,
    Target,
    _authorize_needs_refresh_token,
    _compose_and_load,
    _duplicate_keys,
    _inline_secrets,
    _LineIndex,
    _Loader,
    load_directory,
    payer_targets,
    yaml_bound_problem,
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
    cut = _cut(text)
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


#: The top-level key of the payers list, on a line of its own (a block list follows).
_PAYERS_KEY = re.compile(r"^payers[ \t]*:[ \t]*(?:#.*)?$", re.M)
#: The first line with content (not blank, not a comment) after a position: its indentation.
_CONTENT_LINE = re.compile(r"^( *)[^ \t\r\n#]", re.M)
#: Characters that may follow the dash of a block list item.
_AFTER_DASH = frozenset({" ", "\t", "\n", ""})


def _cut(text: str) -> _Cut | None:
    """Where the top-level block list ``payers`` and each of its items start; None when the
    file is not laid out that way (the whole-document loader then reads it).

    The items are the lines at the list's indentation that start with a dash; the list ends
    at the first other line with content at that indentation or less. YAML puts everything
    else of an item deeper, except inside a quoted scalar: a cut there leaves one item with
    an unclosed quote, which fails to parse and so sends the file to the whole-document
    loader.
    """
    keys = list(_PAYERS_KEY.finditer(text))
    if len(keys) != 1:
        return None
    first = _CONTENT_LINE.search(text, keys[0].end())
    if first is None or text[first.end() - 1] != "-":
        return None
    if text[first.end() : first.end() + 1] not in _AFTER_DASH:
        return None
    indent = len(first.group(1))
    items = [first.start()]
    end = len(text)
    siblings = re.compile(rf"^ {{0,{indent}}}[^ \t\r\n#]", re.M)
    for hit in siblings.finditer(text, first.end()):
        dash = hit.end() - hit.start() == indent + 1 and text[hit.end() - 1] == "-"
        if not (dash and text[hit.end() : hit.end() + 1] in _AFTER_DASH):
            end = hit.start()
            break
        items.append(hit.start())
    return _Cut(keys[0].start(), items, end)


#: An item composed straight away (`_plain_item`) has no alias, no line indented 64 columns
#: or more, no nested list on one line ("- - x"), no explicit key ("? x") and at most
#: `_MAX_FLOW_OPENERS` flow collections: its nesting is then bounded before libyaml composes
#: it (the depth itself is checked on the nodes). Any other item is first checked on its
#: event stream, as a whole file is (`yaml_bound_problem`).
_DEEP_LINE = re.compile(r"\n {64}|-[ \t]+-(?:[ \t\n]|$)")
_MAX_FLOW_OPENERS = 256
#: What may precede an alias (``*name``) and follow an explicit key's ``?``.
_BEFORE_ALIAS = frozenset({"", " ", "\t", "\n", "[", "{", ","})
_AFTER_EXPLICIT_KEY = frozenset({"", " ", "\t", "\n"})
#: Nesting levels around a payers item: the top-level mapping.
_ITEM_DEPTH = 1
_STR, _MAP, _SEQ = (f"tag:yaml.org,2002:{kind}" for kind in ("str", "map", "seq"))
#: The other scalar types a payers item is built with (the YAML 1.1 core schema's).
_CORE_SCALARS = frozenset(
    f"tag:yaml.org,2002:{kind}" for kind in ("int", "bool", "null", "float", "timestamp")
)


class _NotPlain(Exception):
    """Raised inside `_plain_item` for what it leaves to PyYAML's constructor."""


class _Refused(Exception):
    """Raised inside `_plain_item` for what the whole-document loader reports: nesting past
    :data:`MAX_YAML_DEPTH`, an inline secret."""


#: What `_plain_item` returns for an item it leaves to the checked path (`_checked`).
_NOT_PLAIN: Any = object()


def _lean_from_cut(text: str, cut: _Cut) -> LeanDirectory | None:
    """Validate the top level and every payer on its own; None at the first problem."""
    skeleton = text[: cut.key] + text[cut.end :]
    top = _checked(skeleton, depth=0)
    if not isinstance(top, dict) or "payers" in top:
        return None
    try:
        head = Directory.model_validate({**top, "payers": []})
    except ValidationError:
        return None
    lean = LeanDirectory(head.version, head.secrets_file)
    names: set[str] = set()
    bounds = [*cut.items, cut.end]
    unbounded = _unbounded_at(text, cut.items[0], cut.end)
    for start, end in itertools.pairwise(bounds):
        item = text[start:end]
        bounded = bisect.bisect_left(unbounded, start) == bisect.bisect_left(unbounded, end)
        chunk = _item_data(item, bounded=bounded)
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


def _unbounded_at(text: str, start: int, end: int) -> list[int]:
    """Where in ``text[start:end]`` something is that `_plain_item` leaves to the checked path
    (a possible alias or explicit key, a deep or nested line), in order."""
    hits = [hit.start() for hit in _DEEP_LINE.finditer(text, start, end)]
    for char, context in (("*", _BEFORE_ALIAS), ("?", _AFTER_EXPLICIT_KEY)):
        at = text.find(char, start, end)
        while at != -1:
            near = text[at - 1 : at] if char == "*" else text[at + 1 : at + 2]
            if near in context:
                hits.append(at)
            at = text.find(char, at + 1, end)
    return sorted(hits)


def _item_data(item: str, *, bounded: bool) -> Any:
    """One payers item's data (a one-item list); None at a problem. `bounded`: nothing of
    :func:`_unbounded_at` is in it, so that libyaml may compose it before any check."""
    data = _NOT_PLAIN
    if bounded and item.count("[") + item.count("{") <= _MAX_FLOW_OPENERS:
        data = _plain_item(item)
    return _checked(item, depth=_ITEM_DEPTH) if data is _NOT_PLAIN else data


def _checked(text: str, *, depth: int) -> Any:
    """The data of one YAML document (`depth` levels inside the file) when it is within the
    bounds of :func:`yaml_bound_problem` and has no duplicate key and no inline secret; None
    otherwise (the caller falls back to the whole-document loader for the messages)."""
    try:
        if yaml_bound_problem(text, "", depth=depth) is not None:
            return None
        node, data = _compose_and_load(text)
    except yaml.YAMLError:
        return None
    if node is None or _duplicate_keys(node, ()) or _inline_secrets(data):
        return None
    return data


def _plain_item(text: str) -> Any:
    """The data of one payers item (a one-item list) built from libyaml's nodes without
    PyYAML's constructor (most of the time of reading a directory went there): the same data,
    and refused where :func:`_checked` refuses. None at a problem, `_NOT_PLAIN` for an item
    with anything but mappings, lists and scalars of the core schema."""
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        return _plain(node, _ITEM_DEPTH + 1, loader)
    except _NotPlain:
        return _NOT_PLAIN
    except (_Refused, yaml.YAMLError):
        return None
    finally:
        loader.dispose()


def _plain(node: yaml.Node, depth: int, loader: Any) -> Any:
    """One node's data (`depth`: its nesting level in the file when it is a collection)."""
    tag = node.tag
    if isinstance(node, yaml.ScalarNode):
        if tag == _STR:
            return node.value
        if tag in _CORE_SCALARS:
            return loader.construct_object(node)
        raise _NotPlain  # a merge key, binary, an unknown tag, ...: the constructor's own
    if depth > MAX_YAML_DEPTH:
        raise _Refused
    if tag == _SEQ and isinstance(node, yaml.SequenceNode):
        return [_plain(item, depth + 1, loader) for item in node.value]
    if tag != _MAP or not isinstance(node, yaml.MappingNode):
        raise _NotPlain  # a set, an ordered map, ...
    out: dict[Any, Any] = {}
    for key_node, value_node in node.value:
        if not isinstance(key_node, yaml.ScalarNode):
            raise _NotPlain
        key = key_node.value if key_node.tag == _STR else _plain(key_node, depth, loader)
        if key in out:
            raise _NotPlain  # written twice, or two spellings of one key (1 and true)
        value = _plain(value_node, depth + 1, loader)
        if isinstance(key, str) and isinstance(value, str | int) and key.lower() in _SECRET_KEYS:
            raise _Refused
        out[key] = value
    return out


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
