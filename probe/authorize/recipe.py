"""Login recipes: explicit browser steps (YAML) that replace the login heuristics.

A recipe is a list of steps, each a mapping with one action::

    - fill: {selector: "#username", value: {env: MEMBER_USER}}
    - click: "button[type=submit]"
    - wait_for: "#password"
    - fill: {selector: "#password", value: {secret: member_password}}
    - check: "#scope-patient"
    - select: {selector: "#plan", value: "commercial"}

The file may instead be a mapping ``{secrets_file: FILE, steps: [...]}``: `secrets_file` (relative
to the recipe) is the YAML file ``{secret: KEY}`` references are read from.

`fill` values are secret references (``{env: NAME}`` or ``{secret: KEY}``, resolved through
:class:`probe.directory.secrets.SecretSource`), never literal text; `select` takes an option value.
Problems are reported all at once as ``file:line: why``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml
from pydantic import ValidationError

from probe.directory.schema import SecretRef
from probe.directory.secrets import SecretSource

ACTIONS = ("fill", "click", "check", "select", "wait_for")
MAX_STEPS = 100


class RecipeError(Exception):
    """A recipe that cannot be used; `problems` are ``file:line: why`` lines."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


@dataclass(frozen=True, slots=True)
class RecipeStep:
    """One step: an action on a CSS selector, with a secret reference or an option value."""

    action: str
    selector: str
    line: int
    ref: SecretRef | None = None
    option: str | None = None

    def value(self, secrets: SecretSource) -> str | None:
        """The value to type or select (a secret resolved in memory), None for other actions."""
        if self.ref is not None:
            return secrets.resolve(self.ref)
        return self.option


@dataclass(frozen=True, slots=True)
class Recipe:
    """A validated recipe: its steps and the secrets file its ``{secret: KEY}`` values use."""

    steps: tuple[RecipeStep, ...]
    secrets_file: Path | None = None


def _scalar(node: yaml.Node) -> str | None:
    if isinstance(node, yaml.ScalarNode) and node.tag.endswith(":str") and node.value.strip():
        return str(node.value)
    return None


def _mapping(node: yaml.Node) -> dict[str, yaml.Node] | None:
    if not isinstance(node, yaml.MappingNode):
        return None
    return {str(k.value): v for k, v in node.value if isinstance(k, yaml.ScalarNode)}


def _ref(node: yaml.Node) -> SecretRef | str:
    found = _mapping(node)
    if found is None:
        return "value must be {env: NAME} or {secret: KEY}, never a literal"
    try:
        return SecretRef.model_validate({k: _scalar(v) for k, v in found.items()})
    except ValidationError as exc:
        reason = exc.errors()[0].get("msg", "invalid reference")
        return f"value: {reason}"


def _step(node: yaml.Node, where: str) -> RecipeStep | str:
    line = node.start_mark.line + 1
    found = _mapping(node)
    if found is None or len(found) != 1:
        return f"{where}:{line}: a step is a mapping with exactly one of {', '.join(ACTIONS)}"
    action, arg = next(iter(found.items()))
    if action not in ACTIONS:
        return f"{where}:{line}: unknown action {action!r} (one of {', '.join(ACTIONS)})"
    if action in ("click", "check", "wait_for"):
        selector = _scalar(arg)
        if selector is None:
            return f"{where}:{line}: {action} takes a CSS selector (a non-empty string)"
        return RecipeStep(action, selector, line)
    args = _mapping(arg)
    if args is None or set(args) != {"selector", "value"}:
        return f"{where}:{line}: {action} takes {{selector: ..., value: ...}}"
    selector = _scalar(args["selector"])
    if selector is None:
        return f"{where}:{line}: {action}: selector must be a non-empty string"
    if action == "select":
        option = _scalar(args["value"])
        if option is None:
            return f"{where}:{line}: select: value must be an option value (a string)"
        return RecipeStep(action, selector, line, option=option)
    ref = _ref(args["value"])
    if isinstance(ref, str):
        return f"{where}:{args['value'].start_mark.line + 1}: fill: {ref}"
    return RecipeStep(action, selector, line, ref=ref)


def parse_recipe(text: str, where: str = "<recipe>", base: Path | None = None) -> Recipe:
    """The validated recipe in YAML `text` (`base`: the folder a secrets_file is relative to);
    RecipeError lists every problem."""
    try:
        root = yaml.compose(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 1
        raise RecipeError([f"{where}:{line}: not valid YAML"]) from None
    secrets_file: Path | None = None
    top = _mapping(root) if root is not None else None
    if top is not None and root is not None:
        unknown = sorted(set(top) - {"steps", "secrets_file"})
        if unknown or "steps" not in top:
            line = root.start_mark.line + 1
            raise RecipeError([f"{where}:{line}: a recipe mapping has `steps` and `secrets_file`"])
        if "secrets_file" in top:
            name = _scalar(top["secrets_file"])
            if name is None:
                line = top["secrets_file"].start_mark.line + 1
                raise RecipeError([f"{where}:{line}: secrets_file must be a file name"])
            secrets_file = (base or Path.cwd()) / name
        root = top["steps"]
    if not isinstance(root, yaml.SequenceNode) or not root.value:
        line = root.start_mark.line + 1 if root is not None else 1
        raise RecipeError([f"{where}:{line}: a recipe is a non-empty list of steps"])
    if len(root.value) > MAX_STEPS:
        raise RecipeError([f"{where}:1: more than {MAX_STEPS} steps"])
    steps: list[RecipeStep] = []
    problems: list[str] = []
    for node in root.value:
        step = _step(node, where)
        if isinstance(step, str):
            problems.append(step)
        else:
            steps.append(step)
    if problems:
        raise RecipeError(problems)
    return Recipe(tuple(steps), secrets_file)


def load_recipe(path: Path) -> Recipe:
    """Read and validate a recipe file."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or "not UTF-8 text"
        raise RecipeError([f"{path}:1: cannot read: {reason}"]) from None
    return parse_recipe(text, str(path), path.parent)
