"""Login recipes: validation with file:line errors, secret references only."""

from __future__ import annotations

from pathlib import Path

import pytest

from probe.authorize.recipe import RecipeError, load_recipe, parse_recipe
from probe.directory.secrets import SecretSource

GOOD = """\
- fill: {selector: "#user", value: {env: MEMBER_USER}}
- click: "#next"
- wait_for: "#password"
- fill:
    selector: "#password"
    value: {secret: member_password}
- check: "#scope-1"
- select: {selector: "#plan", value: commercial}
"""


def test_a_good_recipe(tmp_path: Path) -> None:
    secrets = tmp_path / "secrets.yaml"
    secrets.write_text("member_password: pw-1\n")
    recipe = parse_recipe(GOOD, "r.yaml")
    assert [s.action for s in recipe.steps] == [
        "fill",
        "click",
        "wait_for",
        "fill",
        "check",
        "select",
    ]
    assert [s.line for s in recipe.steps] == [1, 2, 3, 4, 7, 8]
    source = SecretSource(secrets, env={"MEMBER_USER": "u-1"})
    assert recipe.steps[0].value(source) == "u-1"
    assert recipe.steps[3].value(source) == "pw-1"
    assert recipe.steps[5].value(source) == "commercial"
    assert recipe.steps[1].value(source) is None
    assert "pw-1" not in repr(recipe)


def test_mapping_form_with_a_secrets_file(tmp_path: Path) -> None:
    path = tmp_path / "login.yaml"
    path.write_text("secrets_file: s.yaml\nsteps:\n  - click: '#go'\n")
    recipe = load_recipe(path)
    assert recipe.secrets_file == tmp_path / "s.yaml"
    assert recipe.steps[0].selector == "#go"


def test_every_problem_is_reported_with_its_line() -> None:
    text = """\
- fill: {selector: "#user", value: "literal-password"}
- click: ""
- press: "#x"
- fill: {selector: "#p", value: {env: "1BAD"}}
- click: "#a"
  check: "#b"
- select: {selector: "#s"}
- fill: {selector: "#p", value: {env: A, secret: b}}
"""
    with pytest.raises(RecipeError) as caught:
        parse_recipe(text, "login.yaml")
    problems = caught.value.problems
    assert [p.split(":")[1] for p in problems] == ["1", "2", "3", "4", "5", "7", "8"]
    assert "never a literal" in problems[0]
    assert "literal-password" not in str(caught.value)
    assert "unknown action 'press'" in problems[2]
    assert all(p.startswith("login.yaml:") for p in problems)


def test_not_a_list_or_not_yaml(tmp_path: Path) -> None:
    for text, why in (
        ("{}", "steps"),
        ("[]", "non-empty list"),
        ("click: '#a'", "steps"),
        ("- [unclosed", "not valid YAML"),
        ("", "non-empty list"),
    ):
        with pytest.raises(RecipeError) as caught:
            parse_recipe(text, "r.yaml")
        assert why in str(caught.value), text
    with pytest.raises(RecipeError, match="cannot read"):
        load_recipe(tmp_path / "missing.yaml")
