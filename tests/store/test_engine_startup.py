"""Start-up: a database already at head is opened without importing Alembic, and the cheap
reading of the version files agrees with Alembic's (or leaves the decision to it)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from probe.store import engine as store_engine


def test_the_text_reading_of_the_migrations_agrees_with_alembic() -> None:
    script = store_engine._script()
    assert store_engine._revision_chain() is not None
    assert store_engine.known_revisions() == [
        rev.revision for rev in reversed(list(script.walk_revisions()))
    ]
    assert [store_engine.head_revision()] == list(script.get_heads())


def test_an_unsure_reading_leaves_the_decision_to_alembic(tmp_path: Path) -> None:
    def write(name: str, body: str) -> tuple[str, int]:
        path = tmp_path / name
        path.write_text(body)
        return name, path.stat().st_mtime_ns

    no_depends = write("a.py", 'revision = "a"\ndown_revision = None\nbranch_labels = None\n')
    assert store_engine._chain_of(str(tmp_path), (no_depends,)) is None  # not read for sure
    full = "branch_labels = None\ndepends_on = None\n"
    a = write("a.py", f'revision = "a"\ndown_revision = None\n{full}')
    b = write("b.py", f'revision: str = "b"\ndown_revision: str | None = "a"\n{full}')
    assert store_engine._chain_of(str(tmp_path), (a, b)) == ("a", "b")
    c = write("c.py", f'revision = "c"\ndown_revision = "a"\n{full}')  # a second child of a
    assert store_engine._chain_of(str(tmp_path), (a, b, c)) is None
    merge = write("m.py", f'revision = "m"\ndown_revision = ("b", "c")\n{full}')
    assert store_engine._chain_of(str(tmp_path), (a, b, merge)) is None


def test_a_database_at_head_opens_without_importing_alembic(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'probe.db'}"
    store_engine.open_store(url).engine.dispose()  # migrated (Alembic runs here)
    code = (
        "import sys\n"
        "from probe.store.engine import open_store\n"
        f"store = open_store({url!r})\n"
        "print('alembic' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.strip() == "False"
