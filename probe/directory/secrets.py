"""Resolving secret references ({env: NAME} / {secret: KEY}) and keeping rotated refresh tokens.

Secret values are held only in memory and in the files the operator names; they never reach
logs, the observation database, reports or exception messages (errors name the reference).
"""

from __future__ import annotations

import os
import stat
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from probe.directory.credentials import SecretReference
# yaml and probe.directory.schema (pydantic) are imported where a file is read or written: a
# sync whose secrets come from the environment needs neither (start-up, probe/cli/sync.py).

_listeners: list[Callable[[str], None]] = []


def on_secret_resolved(listener: Callable[[str], None]) -> None:
    """Have `listener` called with every secret value resolved from now on (e.g. a scrubber)."""
    if listener not in _listeners:
        _listeners.append(listener)


def _announce(value: str) -> str:
    for listener in _listeners:
        listener(value)
    return value


class SecretError(Exception):
    """A secret reference that cannot be resolved; the message names the reference, not a value."""


class SecretSource:
    """Resolves SecretRefs from the environment and an optional YAML secrets file."""

    def __init__(self, secrets_file: Path | None = None, env: Mapping[str, str] | None = None):
        self._env = os.environ if env is None else env
        self._file = secrets_file
        self._values: dict[str, str] | None = None

    def _load(self) -> dict[str, str]:
        if self._values is not None:
            return self._values
        if self._file is None:
            self._values = {}
            return self._values
        import yaml

        from probe.directory.schema import yaml_bound_problem

        try:
            text = self._file.read_text(encoding="utf-8")
            bound = yaml_bound_problem(text, self._file)
            if bound is not None:  # aliases, nesting, size: as endpoints.yaml
                raise SecretError(f"secrets file {bound}")
            data = yaml.safe_load(text)
        except OSError as exc:
            raise SecretError(f"cannot read secrets file {self._file}: {exc.strerror}") from None
        except yaml.YAMLError:
            raise SecretError(f"secrets file {self._file} is not valid YAML") from None
        if not isinstance(data, dict):
            raise SecretError(f"secrets file {self._file} must be a mapping of key: value")
        self._values = {str(k): str(v) for k, v in data.items() if v is not None}
        return self._values

    def resolve(self, ref: SecretReference) -> str:
        """The secret's value; SecretError naming the reference when it is not there."""
        if ref.env is not None:
            value = self._env.get(ref.env)
            if not value:
                raise SecretError(f"environment variable {ref.env} is not set")
            return _announce(value)
        values = self._load()
        if self._file is None:
            raise SecretError(f"secret {ref.secret!r} needs a secrets_file in the directory")
        if ref.secret not in values or not values[str(ref.secret)]:
            raise SecretError(f"secret {ref.secret!r} is not in {self._file}")
        return _announce(values[str(ref.secret)])


class TokenStore:
    """Rotated refresh tokens keyed by endpoint: a YAML file (mode 0600) kept between runs, or
    memory only (`path` None) so that syncs within one run share a rotated token.

    It is a secrets store chosen by the operator, never the observation database.
    """

    def __init__(self, path: Path | None):
        self.path = path
        self._memory: dict[str, str] = {}

    def _read(self) -> dict[str, str]:
        if self.path is None:
            return dict(self._memory)
        import yaml

        try:
            data = yaml.safe_load(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, yaml.YAMLError):
            raise SecretError(f"token store {self.path} is unreadable") from None
        return {str(k): str(v) for k, v in (data or {}).items()} if isinstance(data, dict) else {}

    def get(self, key: str) -> str | None:
        """The stored refresh token for `key`, if any."""
        value = self._read().get(key)
        return _announce(value) if value else value

    def put(self, key: str, value: str) -> None:
        """Store a refresh token for `key` atomically, readable by the owner only."""
        _announce(value)
        self._memory[key] = value
        if self.path is None:
            return
        data = self._read()
        data[key] = value
        write_private_yaml(self.path, data)


def write_private_yaml(path: Path, data: dict[str, Any]) -> None:
    """Replace `path` atomically with `data` as YAML, readable by its owner only (mode 0600)."""
    import yaml

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}-")
    try:
        os.fchmod(fd, stat.S_IRUSR | stat.S_IWUSR)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            yaml.safe_dump(data, handle, sort_keys=True)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
