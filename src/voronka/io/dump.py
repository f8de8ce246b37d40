"""A whole workspace to one file and back, without loss: a zip of one JSON-lines file per table."""

from __future__ import annotations

import json
import zipfile
from collections.abc import Iterator
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import Date, Table, func, select
from sqlalchemy.exc import IntegrityError

from voronka.errors import InputError
from voronka.store import migrate
from voronka.store.bulk import reset_id_sequence
from voronka.store.schema import metadata
from voronka.store.types import Money, UTCTime
from voronka.store.workspace import WorkspaceStore

FORMAT = "voronka-dump"
VERSION = 1
# Browser sessions are not data: a restored workspace starts with everybody signed out.
_SKIP = frozenset({"web_sessions"})


def _tables() -> list[Table]:
    return [t for t in metadata.sorted_tables if t.name not in _SKIP]


def _encode(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    return value


def _decoder(table: Table) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for col in table.columns:
        if isinstance(col.type, UTCTime):
            out[col.name] = datetime.fromisoformat
        elif isinstance(col.type, Money):
            out[col.name] = Decimal
        elif isinstance(col.type, Date):
            out[col.name] = date.fromisoformat
    return out


def dump(store: WorkspaceStore, path: str | Path) -> dict[str, int]:
    """Write every table to ``path`` (a zip); returns the row count per table."""
    counts: dict[str, int] = {}
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf, store.engine.connect() as conn:
        for table in _tables():
            pk = list(table.primary_key.columns)
            kept = [c for c in table.columns if not c.info.get("derived")]  # derived columns are made again on restore
            rows = conn.execute(select(*kept).order_by(*pk))
            lines = [json.dumps({k: _encode(v) for k, v in r._mapping.items()}, ensure_ascii=False) for r in rows]
            zf.writestr(f"{table.name}.jsonl", "\n".join(lines) + ("\n" if lines else ""))
            counts[table.name] = len(lines)
        manifest = {"format": FORMAT, "version": VERSION, "schema": migrate.head_revision(), "tables": counts}
        zf.writestr("manifest.json", json.dumps(manifest, indent=2))
    return counts


def _rows(zf: zipfile.ZipFile, table: Table) -> Iterator[dict[str, Any]]:
    decode = _decoder(table)
    with zf.open(f"{table.name}.jsonl") as fh:
        for line in fh:
            if line.strip():
                row = json.loads(line)
                yield {k: (decode[k](v) if v is not None and k in decode else v) for k, v in row.items()}


def restore(store: WorkspaceStore, path: str | Path) -> dict[str, int]:
    """Load a dump into an empty workspace, keeping every id; all or nothing."""
    try:
        return _restore(store, path)
    except InputError:
        raise
    except (KeyError, ValueError, EOFError, zipfile.BadZipFile, IntegrityError) as exc:
        raise InputError(
            f"{Path(path).name} is damaged ({exc.__class__.__name__}: {exc}); nothing was restored. "
            f"Make a new dump with `voronka dump`."
        ) from exc


def _restore(store: WorkspaceStore, path: str | Path) -> dict[str, int]:
    p = Path(path)
    try:
        zf = zipfile.ZipFile(p)
    except (OSError, zipfile.BadZipFile) as exc:
        raise InputError(f"{p.name} is not a Voronka dump (a zip made by `voronka dump`): {exc}") from exc
    with zf:
        manifest = json.loads(zf.read("manifest.json")) if "manifest.json" in zf.namelist() else {}
        if manifest.get("format") != FORMAT:
            raise InputError(f"{p.name} is not a Voronka dump: it has no voronka-dump manifest.")
        if manifest.get("schema") != migrate.head_revision():
            raise InputError(
                f"{p.name} was dumped at schema {manifest.get('schema')!r}, this Voronka is at "
                f"{migrate.head_revision()!r}; restore it with the Voronka version that made it."
            )
        counts: dict[str, int] = {}
        with store.transaction() as conn:
            for table in metadata.sorted_tables:
                if conn.scalar(select(func.count()).select_from(table)):
                    raise InputError(
                        f"The workspace at {store.url} is not empty ({table.name} has rows); "
                        f"restore into a new, empty workspace."
                    )
            for table in _tables():
                batch = list(_rows(zf, table))
                for start in range(0, len(batch), 10_000):
                    conn.execute(table.insert(), batch[start : start + 10_000])
                counts[table.name] = len(batch)
                reset_id_sequence(conn, table)
    return counts
