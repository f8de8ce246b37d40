"""Many rows into SQLite tables within the caller's transaction, without a Python object per value.

The ADBC driver writes each Arrow table into a scratch SQLite file (in C, from the Arrow buffers; one thread per
table, on tmpfs when there is one); the workspace connection attaches each and copies its rows with one
``INSERT … SELECT`` inside the transaction, so the rows land with everything else or not at all — the first file
written is copied while the others are still being written (a big move log comes in two slices for that).

A table that is empty, when foreign keys are not checked row by row (a bulk transaction, see
:meth:`voronka.store.workspace.WorkspaceStore.transaction`), gets a scratch table of exactly its shape — the
columns as the database declares them, and the same indexes, built in the scratch file by the worker thread.
``INSERT INTO t SELECT * FROM scratch`` then takes SQLite's transfer path: records and index entries are copied
as they are, in order, with no value decoded and no index sorted on the workspace connection. Had SQLite to
refuse the transfer (a shape it does not accept), the same statement copies row by row: slower, same result.

SQLite cannot detach a database inside a transaction: the scratch files are detached and deleted when the
transaction ends (see :func:`voronka.store.engine.after_transaction`).
"""

from __future__ import annotations

import shutil
import sqlite3
import tempfile
import uuid
from collections import Counter
from collections.abc import Callable, Collection, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import Connection, Table

from voronka.errors import DanglingReferenceError
from voronka.store.engine import after_transaction, verified

Rows = pa.Table | Callable[[], pa.Table]  # rows, or a function that makes them when their turn comes


@dataclass(frozen=True, slots=True)
class Shape:
    """The DDL of a scratch table ``rows`` shaped exactly as a workspace table, and of its indexes; ``rowid``
    names its ``INTEGER PRIMARY KEY`` column (the row id itself), if it has one, ``defaults`` the columns with
    a default."""

    table: str
    indexes: list[str]
    rowid: str | None = None
    defaults: frozenset[str] = frozenset()


def copy_rows(
    conn: Connection,
    parts: Sequence[tuple[Table, Rows]],
    transfer: Collection[Table],
    copied: Callable[[Table], None] | None = None,
) -> None:
    """Copy each Arrow table into its workspace table through a scratch file; ``transfer`` names the tables
    copied record for record (empty, foreign keys off: see the module docstring).

    A part given as a function is made on this thread when its turn comes, while the parts before it are
    already being written by the worker threads. ``copied(table)`` runs on this thread as soon as all of a
    table's rows are in (e.g. its indexes sorted while another table's scratch file is still being written).
    """
    shm = Path("/dev/shm")
    folder = Path(tempfile.mkdtemp(prefix="voronka-bulk-", dir=shm if shm.is_dir() else None))
    raw: sqlite3.Connection = conn.connection.driver_connection  # type: ignore[assignment]
    aliases: list[str] = []

    def detach() -> None:
        for alias in aliases:
            with suppress(Exception):
                raw.execute(f"DETACH DATABASE {alias}")
        shutil.rmtree(folder, ignore_errors=True)

    after_transaction(conn, detach)
    shapes = {table: shape(raw, table.name) if table in transfer else None for table, _ in parts}
    # With foreign keys checked at the end, in the order the files are done; else parents first, as given.
    checked = raw.execute("PRAGMA foreign_keys").fetchone()[0]
    made: list[tuple[Table, pa.Table]] = []
    with ThreadPoolExecutor(max_workers=2) as pool:
        written: dict[Future[Path], tuple[Table, pa.Table, Shape | None]] = {}
        for table, rows in parts:
            data = rows() if callable(rows) else rows
            if not data.num_rows:
                continue
            made.append((table, data))
            for piece in _slices(data, shapes[table]):
                path = folder / f"{len(written)}.db"
                written[pool.submit(_scratch, path, piece, shapes[table])] = (table, piece, shapes[table])
        # References are checked column-wise while the scratch files are written, not after the copies: these
        # only add the rows checked, so the answer is the same, and this thread would be waiting meanwhile.
        verify = not checked and bool(made) and all(table in transfer for table, _ in made)
        if verify:
            references_found(raw, made)
        left = Counter(t for t, _, _ in written.values())  # scratch files still to copy, per table
        for done in list(written) if checked else as_completed(written):
            table, data, s = written[done]
            scratch = done.result()
            alias = f"voronka_bulk_{uuid.uuid4().hex[:12]}"
            raw.execute(f"ATTACH DATABASE ? AS {alias}", (str(scratch),))
            aliases.append(alias)
            if s is not None:
                raw.execute(f"INSERT INTO main.{table.name} SELECT * FROM {alias}.rows")
            else:
                names = ", ".join(data.column_names)
                raw.execute(f"INSERT INTO main.{table.name} ({names}) SELECT {names} FROM {alias}.rows")
            left[table] -= 1
            if not left[table] and copied is not None:
                copied(table)
    if verify:
        verified(conn, {table.name for table, _ in made}, raw.total_changes)


SLICE_ROWS = 500_000


def _slices(data: pa.Table, into: Shape | None) -> list[pa.Table]:
    """A table SQLite copies record for record also when it is no longer empty (no unique index: the log of
    moves) comes in two slices when big, so that the first is copied while the second is written; the others in
    one piece (the transfer into a table with a unique index needs it empty)."""
    if into is None or "UNIQUE (" in into.table or data.num_rows < 2 * SLICE_ROWS:
        return [data]
    half = data.num_rows // 2
    return [data.slice(0, half), data.slice(half)]


def references_found(raw: sqlite3.Connection, parts: Sequence[tuple[Table, pa.Table]]) -> None:
    """Raise :class:`DanglingReferenceError` unless every reference in the rows just copied names a row that
    exists, in the same load or in the database: whole columns at once, one query per distinct parent id set.
    """
    loaded = {table.name: data for table, data in parts}
    for table, data in parts:
        for _, _, parent, column, key, *_ in raw.execute(f"PRAGMA main.foreign_key_list({table.name})"):
            if column not in data.column_names:
                continue  # not given: NULL
            key = key or "rowid"
            wanted = pc.unique(data.column(column).drop_null()).to_numpy(zero_copy_only=False)
            given = loaded.get(parent)
            if given is not None and key in given.column_names:
                wanted = wanted[~np.isin(wanted, given.column(key).to_numpy(zero_copy_only=False))]
            for start in range(0, len(wanted), 10_000):
                chunk = wanted[start : start + 10_000].tolist()
                marks = ", ".join("?" * len(chunk))
                found = {v for (v,) in raw.execute(f"SELECT {key} FROM main.{parent} WHERE {key} IN ({marks})", chunk)}
                missing = [v for v in chunk if v not in found]
                if missing:
                    raise DanglingReferenceError(
                        f"The write would leave rows of {table.name} whose {column} refers to a missing row of "
                        f"{parent} ({', '.join(map(str, missing[:5]))}); nothing was written. This is a bug: "
                        "report it with the file or the command that caused it."
                    )


def shape(raw: sqlite3.Connection, table: str) -> Shape | None:
    """``table``'s shape as the workspace database declares it (None for shapes this does not reproduce)."""
    columns = raw.execute(f"PRAGMA main.table_xinfo({table})").fetchall()
    if not columns or any(hidden for *_, hidden in columns):
        return None  # generated or hidden columns
    defs = [
        f'"{name}" {declared}' + (" NOT NULL" if notnull else "") + (f" DEFAULT {default}" if default else "")
        for _, name, declared, notnull, default, _, _ in columns
    ]
    key = [name for _, name, *_, pk, _ in sorted(columns, key=lambda c: c[5]) if pk]
    if key:
        defs.append("PRIMARY KEY (" + ", ".join(f'"{k}"' for k in key) + ")")
    declared = {name: kind for _, name, kind, *_ in columns}
    rowid = key[0] if len(key) == 1 and declared[key[0]].upper() == "INTEGER" else None
    indexes = []
    for n, (_, index, unique, origin, partial) in enumerate(raw.execute(f"PRAGMA main.index_list({table})")):
        keys = [
            f'"{name}"' + (" DESC" if desc else "") + f" COLLATE {coll}"
            for _, _, name, desc, coll, is_key in raw.execute(f'PRAGMA main.index_xinfo("{index}")')
            if is_key
        ]
        if partial or origin not in ("c", "u", "pk") or any(k.startswith('"None"') for k in keys):
            return None  # a partial index, or one on an expression
        if origin == "u":
            # A UNIQUE clause, not CREATE UNIQUE INDEX: SQLite transfers entries only between indexes that
            # resolve conflicts alike, and the two forms differ there.
            defs.append(f"UNIQUE ({', '.join(keys)})")
        elif origin == "c":
            indexes.append(f"CREATE {'UNIQUE ' if unique else ''}INDEX rows_{n} ON rows ({', '.join(keys)})")
    defaults = frozenset(name for _, name, _, _, default, *_ in columns if default is not None)
    return Shape(f"CREATE TABLE rows ({', '.join(defs)})", indexes, rowid, defaults)


def _scratch(path: Path, data: pa.Table, into: Shape | None) -> Path:
    # ADBC's low-level API: its DB-API module imports polars and pandas when they are installed (0.2 CPU s of a big
    # import, on the GIL, two more threads and 37 MiB), for nothing used here.
    import adbc_driver_manager as adbc
    import adbc_driver_sqlite

    with adbc_driver_sqlite.connect(str(path)) as db, adbc.AdbcConnection(db) as conn:  # autocommit

        def run(sql: str) -> None:
            with adbc.AdbcStatement(conn) as stmt:
                stmt.set_sql_query(sql)
                stmt.execute_update()

        def ingest(rows: pa.Table, mode: str) -> None:
            with adbc.AdbcStatement(conn) as stmt:
                stmt.set_options(**{adbc.INGEST_OPTION_TARGET_TABLE: "rows", adbc.INGEST_OPTION_MODE: mode})
                stmt.bind_stream(rows)
                stmt.execute_update()

        # A scratch file: nothing to recover after a crash, and the index sorts stay in memory. Its pages can be
        # bigger than the workspace's (fewer B-tree pages to fill: 10-15% less time here): rows are copied, not pages.
        for pragma in (
            "page_size=16384",
            "journal_mode=OFF",
            "synchronous=OFF",
            "cache_size=-262144",
            "temp_store=MEMORY",
        ):
            run(f"PRAGMA {pragma}")
        run("BEGIN")
        if into is None:
            ingest(data, adbc.INGEST_OPTION_MODE_CREATE)
        else:
            run(into.table)
            # Columns null in every row and without a default are left out: the same records, fewer values bound
            # (a value costs a call and a lock in ADBC's SQLite; the deals' source and segment: 0.07 s a million).
            blank = [
                name
                for name, column in zip(data.column_names, data.columns, strict=True)
                if name not in into.defaults and column.null_count == len(column)
            ]
            data = data.drop_columns(blank)
            if into.rowid is not None and _consecutive(data, into.rowid):
                # Ids that follow one another are left to SQLite after the first row's: a new row gets the largest
                # row id plus one, appended without looking up whether its id is taken (a million deals and 1.65
                # million moves: 0.35 CPU s less).
                ingest(data.slice(0, 1), adbc.INGEST_OPTION_MODE_APPEND)
                data = data.slice(1).drop_columns([into.rowid])
            ingest(data, adbc.INGEST_OPTION_MODE_APPEND)
            for index in into.indexes:  # after the rows: one sort each instead of a B-tree insert per row
                run(index)
        run("COMMIT")
    return path


def _consecutive(data: pa.Table, name: str) -> bool:
    """Whether column ``name`` of ``data`` counts up by one from row to row, without nulls."""
    if name not in data.column_names or data.num_rows < 2:
        return False
    ids = data.column(name)
    if ids.null_count or not pa.types.is_integer(ids.type):
        return False
    values = ids.to_numpy()
    return bool((np.diff(values) == 1).all())
