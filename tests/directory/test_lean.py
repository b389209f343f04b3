"""The lean directory a crawl holds: the same payers, targets and errors as `load_directory`,
read payer by payer (memory flat in the directory's size)."""

from __future__ import annotations

import tracemalloc
from pathlib import Path
from typing import Any

import pytest

import probe.directory.lean as lean_module
from probe.directory.lean import LeanDirectory, TargetTable, load_lean_directory, select_refs
from probe.directory.schema import DirectoryError, load_directory, targets

ROOT = Path(__file__).resolve().parents[2]

PAYER = """\
- name: Payer {i}
  vendor: Vendor {v}
  source: generated {i}
  endpoints:
  - base_url: https://h{h}.example/payers/{i}/fhir
    sandbox_url: https://sandbox.h{h}.example/payers/{i}/fhir
    portal_url: https://dev.h{h}.example/{i}
    credentials:
      kind: refresh_token
      client_id: client-{i}
      client_secret: {{secret: p{i}.client_secret}}
      refresh_token: {{env: P{i}_REFRESH}}
    test_patients:
    - label: member
      id: pat-{i}
    facts:
      refresh_token_max_days: .inf
"""


def generated(count: int, *, header: str = "version: 1\nsecrets_file: s.yaml\npayers:\n") -> str:
    return header + "".join(PAYER.format(i=i, v=i % 7, h=i % 30) for i in range(count))


def indented(text: str) -> str:
    """The payers list written two spaces in (`payers:` then `  - name: ...`)."""
    head, items = text.split("payers:\n", 1)
    return head + "payers:\n" + "".join("  " + line for line in items.splitlines(keepends=True))


def outcome(loader: Any, path: Path) -> tuple[str, Any]:
    try:
        directory = loader(path)
    except DirectoryError as exc:
        return "error", exc.problems
    if isinstance(directory, LeanDirectory):
        full = directory.to_directory()
        assert [r.key for r in directory.refs] == [t.key for t in targets(full)]
        assert [directory.target(r) for r in directory.refs] == targets(full)
        # The operator's URLs of each target, read without rebuilding its payer.
        assert [directory.operator_urls(r) for r in directory.refs] == [
            tuple(
                u
                for u in (
                    t.base_url,
                    t.endpoint.portal_url,
                    getattr(t.endpoint.credentials, "token_url", None),
                )
                if u
            )
            for t in targets(full)
        ]
        return "ok", full
    return "ok", directory


def same_as_full(tmp_path: Path, text: str, *, streamed: bool | None = None) -> tuple[str, Any]:
    path = tmp_path / "endpoints.yaml"
    path.write_text(text, encoding="utf-8")
    fell_back: list[Path] = []
    original = lean_module._fallback

    def spy(p: Path) -> LeanDirectory:
        fell_back.append(p)
        return original(p)

    lean_module._fallback = spy
    try:
        lean = outcome(load_lean_directory, path)
    finally:
        lean_module._fallback = original
    assert lean == outcome(load_directory, path)
    if streamed is not None:
        assert (not fell_back) is streamed
    return lean


DOCS_EXAMPLE = (
    (ROOT / "docs" / "directory.md")
    .read_text(encoding="utf-8")
    .split("### A full example\n\n```yaml\n", 1)[1]
    .split("```", 1)[0]
)


@pytest.mark.parametrize(
    "text",
    [
        pytest.param(generated(40), id="generated"),
        pytest.param((ROOT / "endpoints.yaml").read_text(encoding="utf-8"), id="repo-endpoints"),
        pytest.param(DOCS_EXAMPLE, id="docs-example"),
        pytest.param(indented(generated(5)), id="indented-items"),
        pytest.param(generated(5).rstrip("\n"), id="no-final-newline"),
        pytest.param("\ufeff" + generated(3), id="bom"),
        pytest.param(generated(4) + "# trailing comment\n\n", id="trailing-comment"),
        pytest.param(
            generated(3, header="payers:\n") + "version: 1\nsecrets_file: s.yaml\n",
            id="payers-first",
        ),
        pytest.param(
            generated(3).replace("- name: Payer 1\n", "# a comment\n\n- name: Payer 1\n"),
            id="comments-between",
        ),
    ],
)
def test_valid_layouts_stream_to_the_same_directory(tmp_path: Path, text: str) -> None:
    assert same_as_full(tmp_path, text, streamed=True)[0] == "ok"


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("version: 1\npayers: []\n", id="empty-flow-list"),
        pytest.param(
            'version: 1\npayers: [{name: A, endpoints: [{base_url: "https://a.example/r4"}]}]\n',
            id="flow-list",
        ),
        pytest.param(
            generated(3).replace("- name: Payer 1\n", "-\n  name: Payer 1\n"), id="dash-alone"
        ),
    ],
)
def test_layouts_not_cut_fall_back_to_the_same_directory(tmp_path: Path, text: str) -> None:
    assert same_as_full(tmp_path, text)[0] == "ok"


BROKEN = {
    "duplicate-payer": lambda t: t.replace("name: Payer 37\n", "name: Payer 3\n"),
    "inline-secret": lambda t: t.replace(
        "refresh_token: {env: P30_REFRESH}", "refresh_token: abc123"
    ),
    "bad-url": lambda t: t.replace("https://h9.example/payers/39/fhir", "ftp://h9/x"),
    "duplicate-key": lambda t: t.replace(
        "  vendor: Vendor 5\n", "  vendor: Vendor 5\n  vendor: V\n"
    ),
    "yaml-syntax": lambda t: t.replace("  source: generated 20\n", "  source: [unclosed\n"),
    "unknown-field": lambda t: t.replace("  source: generated 2\n", "  sauce: generated 2\n"),
    "authorize-needs-refresh-token": lambda t: t.replace(
        "    credentials:\n      kind: refresh_token\n      client_id: client-11\n"
        "      client_secret: {secret: p11.client_secret}\n"
        "      refresh_token: {env: P11_REFRESH}\n",
        "    credentials:\n      kind: bearer\n      token: {env: T11}\n",
    ).replace(
        "      id: pat-11\n",
        "      id: pat-11\n      authorize:\n        username: {env: U}\n"
        "        password: {env: W}\n        redirect_port: 8123\n",
    ),
    "bad-version": lambda t: t.replace("version: 1\n", "version: 2\n"),
    "top-level-duplicate": lambda t: t + "secrets_file: other.yaml\n",
    "payers-twice": lambda t: (
        t + "payers:\n- name: Z\n  endpoints:\n  - base_url: https://z.example\n"
    ),
    "alias": lambda t: t.replace("  vendor: Vendor 1\n", "  vendor: &v Vendor 1\n").replace(
        "  vendor: Vendor 2\n", "  vendor: *v\n"
    ),
    "too-deep": lambda t: t.replace(
        "  source: generated 3\n", "  source: " + "[" * 40 + "]" * 40 + "\n"
    ),
    "not-a-mapping-item": lambda t: t.replace(
        "- name: Payer 4\n", "- just text\n- name: Payer 4\n"
    ),
    "timestamp": lambda t: t.replace("  source: generated 6\n", "  source: 2024-01-01\n"),
}


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_problems_are_those_of_the_whole_document_loader(tmp_path: Path, name: str) -> None:
    text = BROKEN[name](generated(40))
    assert text != generated(40), "the mutation must apply"
    kind, problems = same_as_full(tmp_path, text)
    assert kind == "error" and problems


def test_unreadable_and_empty_files_report_as_before(tmp_path: Path) -> None:
    missing = tmp_path / "missing.yaml"
    with pytest.raises(DirectoryError) as lean_error:
        load_lean_directory(missing)
    with pytest.raises(DirectoryError) as full_error:
        load_directory(missing)
    assert lean_error.value.problems == full_error.value.problems
    same_as_full(tmp_path, "")
    (tmp_path / "latin1.yaml").write_bytes(b"version: 1\npayers:\n- name: caf\xe9\n")
    with pytest.raises(DirectoryError):
        load_lean_directory(tmp_path / "latin1.yaml")


def test_selection_and_target_table(tmp_path: Path) -> None:
    path = tmp_path / "endpoints.yaml"
    path.write_text(generated(10), encoding="utf-8")
    directory = load_lean_directory(path)
    chosen = select_refs(directory, ["payer 3", "PAYER 4"])
    assert [r.key for r in chosen] == [
        "production:https://h3.example/payers/3/fhir",
        "sandbox:https://sandbox.h3.example/payers/3/fhir",
        "production:https://h4.example/payers/4/fhir",
        "sandbox:https://sandbox.h4.example/payers/4/fhir",
    ]
    table = TargetTable(directory, {10 + i: ref for i, ref in enumerate(chosen)})
    assert len(table) == 4 and 11 in table and 99 not in table
    assert table[12].payer.name == "Payer 4" and table[12].endpoint.portal_url
    assert table.base_urls()[13] == "https://sandbox.h4.example/payers/4/fhir"
    assert table.operator_urls(13) == (
        "https://sandbox.h4.example/payers/4/fhir",
        "https://dev.h4.example/4",
    )
    assert select_refs(directory, keep=lambda ref: ref.payer == 9) == directory.refs[-2:]


def test_memory_held_is_small_per_payer(tmp_path: Path) -> None:
    """What the lean form keeps, and its peak while loading, against the whole-document load."""
    path = tmp_path / "endpoints.yaml"
    path.write_text(generated(2000), encoding="utf-8")

    def traced(loader: Any) -> tuple[int, int, Any]:
        tracemalloc.start()
        try:
            directory = loader(path)
            held, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        return held, peak, directory

    lean_held, lean_peak, lean = traced(load_lean_directory)
    full_held, full_peak, full = traced(load_directory)
    assert lean.to_directory() == full
    assert lean_held * 4 < full_held, (lean_held, full_held)
    assert lean_peak * 4 < full_peak, (lean_peak, full_peak)
    assert lean_held < 2000 * 2048  # under 2 KiB per payer (2 targets each)


# -- the fast path: items built from libyaml's nodes without PyYAML's constructor ------------


def nested(levels: int) -> str:
    """An item whose deepest mapping is `levels` deep in the file (top level 1, payers 2)."""
    body = "".join(f"{' ' * (i + 3)}k{i}:\n" for i in range(levels - 4))
    return f"- name: x\n  deep:\n{body}{' ' * (levels - 1)}leaf: 1\n"


ITEMS = {
    "plain": "- name: A\n  lives: 12\n  on: yes\n  off: false\n  none: ~\n  ratio: .inf\n",
    "floats-and-ints": "- a: 0x1f\n  b: 1_000\n  c: 1:30\n  d: -2.5e3\n  e: .nan\n",
    "timestamps": "- a: 2024-01-01\n  b: 2024-01-01T10:00:00Z\n",
    "explicit-tags": "- a: !!str 42\n  b: !!int '7'\n  c: !!float '1'\n",
    "block-scalars": "- a: |\n    line one\n    line two\n  b: >-\n    folded\n    text\n",
    "quoted": "- a: 'it''s'\n  b: \"tab\\tand \\u00e9\"\n  c: \"multi\n    line\"\n",
    "flow": "- a: {secret: x.y}\n  b: [1, [2, {c: 3}]]\n",
    "non-string-keys": "- 1: one\n  true: yes\n  null: nothing\n  2024-01-01: day\n",
    "star-and-question-in-text": "- scope: patient/*.read launch?x\n  url: https://a.example/x?y=1\n",
    "depth-at-the-bound": nested(32),
    "depth-past-the-bound": nested(33),
    "duplicate-key": "- a: 1\n  b: 2\n  a: 3\n",
    "duplicate-key-nested": "- a:\n    x: 1\n    x: 1\n",
    "same-value-other-spelling": "- 1: x\n  01: y\n",
    "inline-secret": "- credentials:\n    Client_Secret: abc\n",
    "inline-secret-int": "- token: 1234\n",
    "inline-secret-bool": "- token: true\n",
    "secret-reference": "- token: {env: T}\n  refresh_token: null\n  client_secret: 1.5\n",
    "merge-key": "- a:\n    <<: {b: 1}\n    c: 2\n",
    "value-key": "- =: 1\n",
    "set": "- a: !!set {x, y}\n",
    "omap": "- a: !!omap [x: 1, y: 2]\n",
    "complex-key": "- ? [a, b]\n  : c\n",
    "anchor": "- a: &x 1\n  b: 2\n",
    "alias": "- a: &x 1\n  b: *x\n",
    "unknown-tag": "- a: !custom 1\n",
    "binary": "- a: !!binary aGVsbG8=\n",
    "syntax-error": "- a: [1, 2\n",
    "two-items": "- a: 1\n- b: 2\n",
    "scalar-item": "- just text\n",
}


#: Items the fast path leaves to the checked path, and why.
NOT_PLAIN = {
    "alias": "an alias is refused on the event stream, before anything is built",
    "complex-key": "an explicit key",
    "merge-key": "a key the constructor merges",
    "value-key": "a key the constructor renames",
    "set": "a collection of another type",
    "omap": "a collection of another type",
    "binary": "a scalar of another type",
    "unknown-tag": "a tag the constructor refuses",
    "duplicate-key": "the checked path tells a key written twice from two spellings of one",
    "duplicate-key-nested": "the same",
    "same-value-other-spelling": "the same",
    "non-string-keys": "the same (1 and true are one key)",
}


@pytest.mark.parametrize("name", sorted(ITEMS))
def test_items_are_built_as_the_constructor_builds_them(name: str) -> None:
    """Each item's data is the checked path's (PyYAML's constructor), and it is refused (None)
    exactly where that path refuses it; the fast path builds every item but `NOT_PLAIN`."""
    text = ITEMS[name]
    checked = lean_module._checked(text, depth=lean_module._ITEM_DEPTH)
    bounded = not lean_module._unbounded_at(text, 0, len(text))
    data = lean_module._item_data(text, bounded=bounded)
    assert data == checked
    assert repr(data) == repr(checked)  # the same types too (1 is not True, 1.0 not 1)
    fast = bounded and lean_module._plain_item(text) is not lean_module._NOT_PLAIN
    assert fast == (name not in NOT_PLAIN)
    refused = {
        "depth-past-the-bound",
        "duplicate-key",
        "duplicate-key-nested",
        "inline-secret",
        "inline-secret-int",
        "inline-secret-bool",
        "unknown-tag",
        "syntax-error",
        "alias",
        "complex-key",
    }
    assert (checked is None) == (name in refused), (name, checked)


CUT_LAYOUTS = {
    # A line that looks like an item inside a quoted scalar: the cut leaves an unclosed quote.
    "dash-inside-double-quotes": lambda t: t.replace(
        "  source: generated 3\n", '  source: "generated\n- name: Payer 3b"\n'
    ),
    "dash-inside-single-quotes": lambda t: t.replace(
        "  source: generated 3\n", "  source: 'generated\n- name: Payer 3b'\n"
    ),
    "document-end-marker": lambda t: t + "...\n",
    "second-document": lambda t: t + "---\nversion: 1\n",
    "payers-key-twice-in-text": lambda t: t.replace(
        "  source: generated 2\n", "  source: |\n    payers:\n    text\n"
    ),
    "scopes-with-stars": lambda t: t.replace(
        "  source: generated 2\n", "  source: patient/*.read user/*.* ? x\n"
    ),
    "deep-line-in-a-block-scalar": lambda t: t.replace(
        "  source: generated 2\n", "  source: |\n" + " " * 70 + "far in\n"
    ),
    "many-flow-collections": lambda t: t.replace(
        "  source: generated 2\n", "  source: '" + "[{" * 200 + "'\n"
    ),
    "nested-list-on-one-line": lambda t: t.replace(
        "  source: generated 2\n", "  source: a - - b\n"
    ),
    "tab-after-dash": lambda t: t.replace("- name: Payer 2\n", "-\tname: Payer 2\n"),
    "indented-less-than-items": lambda t: indented(t).replace(
        "  - name: Payer 3\n", " - name: Payer 3\n"
    ),
    "key-after-payers": lambda t: t + "extra_key: 1\n",
}


@pytest.mark.parametrize("name", sorted(CUT_LAYOUTS))
def test_cut_layouts_read_as_the_whole_document(tmp_path: Path, name: str) -> None:
    """Wherever the text cut lands, the result (directory or problems) is the whole-document
    loader's."""
    text = CUT_LAYOUTS[name](generated(6))
    assert text != generated(6)
    same_as_full(tmp_path, text)
