"""Schema migrations through Alembic, run on the workspace's own connection.

Alembic is imported only when the schema is behind (a second of start-up for every command otherwise): the
revision a workspace is at is read from ``alembic_version`` with plain SQL, and the head from the migration
files once per process.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Connection, Engine, inspect, text

if TYPE_CHECKING:
    from alembic.config import Config

_HERE = Path(__file__).parent / "migrations"


def _config(connection: Connection | None = None) -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(_HERE))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


@functools.cache
def head_revision() -> str:
    """The newest revision of the migrations shipped with this package, read from the files' ``revision`` and
    ``down_revision`` lines once per process (``tests/store`` checks it against Alembic's own answer)."""
    revisions, parents = set(), set()
    for path in (_HERE / "versions").glob("*.py"):
        source = path.read_text(encoding="utf-8")
        revisions.add(_assigned("revision", source, path))
        parent = _assigned("down_revision", source, path)
        if parent is not None:
            parents.add(parent)
    heads = revisions - parents
    if len(heads) != 1:
        raise RuntimeError(f"the migrations in {_HERE} have {len(heads)} heads ({sorted(heads)}); merge them")
    return heads.pop()


def _assigned(name: str, source: str, path: Path) -> str | None:
    found = re.search(rf"^{name}(?:\s*:[^=]+)?\s*=\s*(?:'([^']*)'|\"([^\"]*)\"|None)\s*$", source, re.M)
    if found is None:
        raise RuntimeError(f"{path}: no `{name} = ...` line")
    return found.group(1) or found.group(2)


def current_revision(engine: Engine) -> str | None:
    """The revision the workspace's schema is at; None for an empty database."""
    with engine.connect() as conn:
        if not inspect(conn).has_table("alembic_version"):
            return None
        versions = conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
    if len(versions) > 1:  # branches: let Alembic report it
        from alembic.runtime.migration import MigrationContext

        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    return versions[0] if versions else None


def upgrade(engine: Engine) -> None:
    """Bring the workspace schema to the newest revision (a no-op when it is there already)."""
    if current_revision(engine) == head_revision():
        return
    from alembic import command

    with engine.begin() as conn:
        command.upgrade(_config(conn), "head")
