"""Read a pipeline's move log and its deals into NumPy arrays.

SQLite workspaces are read through the ADBC driver straight into Arrow (no Python objects per row); other
databases through SQLAlchemy. Times arrive as integer microseconds since the epoch on every dialect.

The reads of one log see one state of the workspace, so the deals' cached stages are those of the moves read.
A large SQLite log is read in deal-id ranges on several connections at once, one thread each: their read
transactions must then start on the same state of the append-only log (its last move id is the check), or the
log is read again on one connection.
"""

from __future__ import annotations

import gc
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
from numpy.typing import NDArray
from sqlalchemy import BigInteger, ColumnElement, Select, cast, func, or_, select, type_coerce

from voronka.store.engine import open_sqlite_connections
from voronka.store.schema import deals, loss_reasons, stage_moves, users
from voronka.store.workspace import WorkspaceStore

I64 = NDArray[np.int64]
Fetch = Callable[[Select[Any]], pa.Table]
Range = tuple[int, int] | None  # deal ids lo..hi, both included; None: all
Part = tuple[pa.Table, pa.Table]  # the moves of a range of deals, and those deals

# ADBC's SQLite driver fixes a column's type from its first batch of rows: a text column that is NULL all
# through it (no source on the first thousand deals) would then fail on the first string. One batch sees all.
_SQLITE_BATCH_ROWS = str(1 << 30)
# Read the deals by a range of ids (one pass over the table in id order) rather than by their moves (a lookup
# per deal) when the pipeline's deals are at least this share of the range.
_DENSE = 1 / 3
# SQLite logs spanning at least this many deal ids are read in parallel, on up to _MAX_READERS connections.
_SPLIT_SPAN = 100_000
_MAX_READERS = 4
_IN_LIST = 10_000
_MOVE_COLUMNS = ("deal_id", "stage_id", "at", "reason_id")


@dataclass(frozen=True, slots=True)
class PipelineLog:
    """A pipeline's moves in (deal, log) order and the current state of every deal in them.

    The moves that took a deal out of the pipeline are in the log too (in another pipeline's stage), so that a
    stay in a stage ends when the deal left, also when it came back later.
    """

    move_deal: I64
    move_stage: I64
    move_at: I64
    move_reason: I64  # -1: no reason
    deal_id: I64  # sorted; one row per deal that ever had a move in the pipeline
    deal_pipeline: I64
    deal_stage: I64
    deal_since: I64
    deal_owner: I64  # -1: no owner
    deal_source: pa.Array
    deal_segment: pa.Array
    user_names: dict[int, str]
    reason_names: dict[int, str]
    exit_at: I64  # for deals that left the pipeline: when they left it; else -1


def micros(col: ColumnElement[Any], dialect: str) -> ColumnElement[Any]:
    """An expression giving a UTCTime column as integer microseconds on ``dialect``."""
    if dialect == "postgresql":
        return cast(func.extract("epoch", col) * 1_000_000, BigInteger)
    return type_coerce(col, BigInteger)


def _adbc_uri(store: WorkspaceStore) -> str | None:
    """The URI to read the workspace through ADBC with, or None to read it through SQLAlchemy.

    ADBC brings its own copy of SQLite, and two copies in one process do not see each other's file locks. So
    the ADBC connection is read-only: read-write, on closing it would take itself for the last connection and
    checkpoint and delete the -wal and -shm files under the store's. When a -shm file exists, connections
    have the log open, maybe in this process: then it does not write the -shm either (a first connection
    would truncate it under theirs) and reads the -wal by itself. Inside a write transaction of the store,
    ADBC could not see its writes: SQLAlchemy reads then.
    """
    url = store.engine.url
    file = store.engine.dialect.name == "sqlite" and url.database not in (None, "", ":memory:")
    if not file or store._tx is not None:
        return None
    path = Path(str(url.database)).resolve()
    shared = Path(f"{path}-shm").exists()
    return path.as_uri() + ("?mode=ro&readonly_shm=1" if shared else "?mode=ro")


@contextmanager
def _reader(store: WorkspaceStore, adbc_uri: str | None) -> Iterator[Fetch]:
    """A function that runs queries into Arrow tables, all in one read transaction (one snapshot)."""
    engine = store.engine
    if adbc_uri is not None:
        # ADBC's low-level API: its DB-API module imports pandas and polars when they are installed (0.5-0.8 s
        # of a report's start), for nothing used here.
        import adbc_driver_manager as adbc
        import adbc_driver_sqlite

        with adbc_driver_sqlite.connect(adbc_uri) as db, adbc.AdbcConnection(db) as conn:

            def query(sql: str) -> pa.Table:
                with adbc.AdbcStatement(conn) as stmt:
                    stmt.set_options(**{"adbc.sqlite.query.batch_rows": _SQLITE_BATCH_ROWS})
                    stmt.set_sql_query(sql)
                    handle, _ = stmt.execute_query()
                    return pa.RecordBatchReader._import_from_c(handle.address).read_all()

            query("PRAGMA busy_timeout = 30000")  # as the store's own connections wait for a lock
            conn.set_autocommit(False)  # the queries share one transaction: one snapshot

            def fetch_adbc(stmt: Select[Any]) -> pa.Table:
                return query(str(stmt.compile(engine, compile_kwargs={"literal_binds": True})))

            yield fetch_adbc
        return
    with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            conn.execution_options(isolation_level="REPEATABLE READ")

        def fetch_rows(stmt: Select[Any]) -> pa.Table:
            result = conn.execute(stmt)
            names = list(result.keys())
            rows = result.fetchall()
            cols: list[Sequence[Any]] = list(zip(*rows, strict=True)) if rows else [[] for _ in names]
            return pa.table({n: pa.array(c) for n, c in zip(names, cols, strict=True)})

        yield fetch_rows


def _ints(table: pa.Table, name: str) -> I64:
    """An integer column as int64, NULL as -1."""
    col = table.column(name)
    if pa.types.is_null(col.type):  # no values at all, from the SQLAlchemy path
        return np.full(len(col), -1, dtype=np.int64)
    if col.null_count:
        col = col.fill_null(-1)
    return np.asarray(col.to_numpy(), dtype=np.int64)


def _distinct(sorted_values: I64) -> I64:
    """The distinct values of a sorted array."""
    if not len(sorted_values):
        return sorted_values
    return sorted_values[np.r_[True, sorted_values[1:] != sorted_values[:-1]]]


def _member(values: I64, ids: I64) -> NDArray[np.bool_]:
    """Which of ``values`` are in ``ids`` (sorted, distinct)."""
    if not len(ids):
        return np.zeros(len(values), dtype=bool)
    return ids[np.minimum(np.searchsorted(ids, values), len(ids) - 1)] == values


def load_pipeline_log(store: WorkspaceStore, pipeline_id: int) -> PipelineLog:
    d = store.engine.dialect.name
    if _adbc_uri(store) is not None:
        # Closing a file drops all of the process's locks on it, those of the other copy of SQLite too: close
        # the store's idle connections first, so that none is open while ADBC's are. A connection that only
        # waits for the garbage collector (dropped in a reference cycle) would otherwise close in the middle
        # of the read, and as the last one, remove the -shm file under ADBC ("unable to open database file").
        # A full collection costs 0.1-0.2 s in a process with pandas and SciPy loaded: only when one is open.
        store.engine.dispose()
        if open_sqlite_connections(store.engine):
            gc.collect()
    uri = _adbc_uri(store)  # again: the last of them to close removes the -shm file
    with ExitStack() as stack:
        fetch = stack.enter_context(_reader(store, uri))
        ranges = _ranges(fetch, pipeline_id, uri is not None)
        fetches = [fetch] + [stack.enter_context(_reader(store, uri)) for _ in ranges[1:]]
        if len(fetches) > 1 and not _one_snapshot(fetches):
            ranges, fetches = [None], [fetch]
        parts = _map(lambda f, r: _read_range(f, pipeline_id, r, d), fetches, ranges)
        moves = {name: _concat([p[0] for p in parts], name) for name in _MOVE_COLUMNS}
        table = [p[1] for p in parts]
        deal_id, deal_pipeline = _concat(table, "id"), _concat(table, "pipeline_id")
        away = _moves_away(fetch, pipeline_id, deal_id, d)
        moves = _with_moves_out(moves, away, pipeline_id)
        exit_at = _exits(away, pipeline_id, deal_id, deal_pipeline)
        names = _names(fetch(select(users.c.id, users.c.name)))
        r = loss_reasons
        reasons = _names(fetch(select(r.c.id, r.c.name).where(r.c.pipeline_id == pipeline_id)))
    return PipelineLog(
        move_deal=moves["deal_id"],
        move_stage=moves["stage_id"],
        move_at=moves["at"],
        move_reason=moves["reason_id"],
        deal_id=deal_id,
        deal_pipeline=deal_pipeline,
        deal_stage=_concat(table, "stage_id"),
        deal_since=_concat(table, "since"),
        deal_owner=_concat(table, "owner_id"),
        deal_source=_texts(table, "source"),
        deal_segment=_texts(table, "segment"),
        user_names=names,
        reason_names=reasons,
        exit_at=exit_at,
    )


def _ranges(fetch: Fetch, pipeline_id: int, adbc: bool) -> list[Range]:
    """The deal-id ranges to read the log in: one per connection (all of it when it is not split)."""
    readers = min(_MAX_READERS, os.cpu_count() or 1)
    if not adbc or readers < 2:
        return [None]
    m = stage_moves
    # Two subqueries: SQLite finds a lone min() or max() at one end of the index, both at once by a scan.
    here = m.c.pipeline_id == pipeline_id
    first = select(func.min(m.c.deal_id)).where(here).scalar_subquery()
    last = select(func.max(m.c.deal_id)).where(here).scalar_subquery()
    bounds = fetch(select(first.label("lo"), last.label("hi")))
    lo, hi = (bounds.column(i)[0].as_py() for i in (0, 1))
    if lo is None or hi - lo < _SPLIT_SPAN:
        return [None]
    cuts = np.linspace(lo, hi + 1, readers + 1).astype(np.int64).tolist()
    return [(a, b - 1) for a, b in zip(cuts[:-1], cuts[1:], strict=True)]


def _one_snapshot(fetches: list[Fetch]) -> bool:
    """Whether the connections' read transactions see the same log: it is append-only, so the same last id."""
    marks = [f(select(func.max(stage_moves.c.id))).column(0)[0].as_py() for f in fetches]
    return all(mark == marks[0] for mark in marks)


def _map(read: Callable[[Fetch, Range], Part], fetches: list[Fetch], ranges: list[Range]) -> list[Part]:
    """``read`` each range on its connection: in this thread when there is one, else in a thread each."""
    if len(fetches) == 1:
        return [read(fetches[0], ranges[0])]
    with ThreadPoolExecutor(len(fetches)) as pool:
        return list(pool.map(read, fetches, ranges))


def _read_range(fetch: Fetch, pipeline_id: int, deal_range: Range, dialect: str) -> Part:
    """The pipeline's moves of the deals in ``deal_range`` in (deal, log) order, and those deals' rows."""
    m = stage_moves
    where = [m.c.pipeline_id == pipeline_id]
    if deal_range is not None:
        where.append(m.c.deal_id.between(*deal_range))
    moves = fetch(
        select(m.c.deal_id, m.c.stage_id, micros(m.c.at, dialect).label("at"), m.c.reason_id)
        .where(*where)
        .order_by(m.c.deal_id, m.c.id)
    )
    ids = _distinct(_ints(moves, "deal_id"))
    cols = (
        deals.c.id,
        deals.c.pipeline_id,
        deals.c.stage_id,
        micros(deals.c.stage_since, dialect).label("since"),
        deals.c.owner_id,
        deals.c.source,
        deals.c.segment,
    )
    if len(ids) and len(ids) >= _DENSE * (ids[-1] - ids[0] + 1):
        found = deals.c.id.between(int(ids[0]), int(ids[-1]))
    else:
        found = deals.c.id.in_(select(m.c.deal_id).where(*where))
    table = fetch(select(*cols).where(found).order_by(deals.c.id))
    keep = _member(_ints(table, "id"), ids)  # the range may hold deals of other pipelines
    return moves, table if keep.all() else table.filter(pa.array(keep))


def _concat(tables: list[pa.Table], name: str) -> I64:
    arrays = [_ints(t, name) for t in tables]
    return arrays[0] if len(arrays) == 1 else np.concatenate(arrays)


def _texts(tables: list[pa.Table], name: str) -> pa.Array:
    """A text column of several tables as one string array (one of all NULLs may have come as integers)."""
    return pa.concat_arrays([t.column(name).cast(pa.string()).combine_chunks() for t in tables])


def _moves_away(fetch: Fetch, pipeline_id: int, ids: I64, dialect: str) -> dict[str, I64]:
    """All the moves, in (deal, log) order, of the deals ``ids`` that have moves in other pipelines too."""
    m = stage_moves
    # Two ranges of the pipeline index (no DISTINCT: SQLite would scan the deal index for it, all moves).
    elsewhere = or_(m.c.pipeline_id < pipeline_id, m.c.pipeline_id > pipeline_id)
    travellers = np.unique(_ints(fetch(select(m.c.deal_id).where(elsewhere)), "deal_id"))
    travellers = travellers[_member(travellers, ids)]
    cols = (m.c.deal_id, m.c.pipeline_id, m.c.stage_id, micros(m.c.at, dialect).label("at"), m.c.reason_id)
    chunks = [  # a bounded IN list per query (PostgreSQL takes at most 65,535 parameters)
        fetch(select(*cols).where(m.c.deal_id.in_(part.tolist())).order_by(m.c.deal_id, m.c.id))
        for part in np.array_split(travellers, max(1, -(-len(travellers) // _IN_LIST)))
        if len(part)
    ]
    names = ("deal_id", "pipeline_id", *_MOVE_COLUMNS[1:])
    return {name: _concat(chunks, name) if chunks else np.zeros(0, np.int64) for name in names}


def _with_moves_out(moves: dict[str, I64], away: dict[str, I64], pipeline_id: int) -> dict[str, I64]:
    """The pipeline's moves with each move out of it (the deal's previous move was in it) put in its place."""
    deal, here = away["deal_id"], away["pipeline_id"] == pipeline_id
    if not len(deal):
        return moves
    first = np.r_[True, deal[1:] != deal[:-1]]
    out = np.flatnonzero(~here & ~first & np.r_[False, here[:-1]])
    if not len(out):
        return moves
    # Where a move out goes: after the deal's moves in the pipeline that came before it.
    here_before = np.r_[0, np.cumsum(here)[:-1]]
    deal_start = np.maximum.accumulate(np.where(first, np.arange(len(deal)), 0))
    before = here_before[out] - here_before[deal_start[out]]
    at = np.searchsorted(moves["deal_id"], deal[out]) + before
    return {name: np.insert(values, at, away[name][out]) for name, values in moves.items()}


def _exits(away: dict[str, I64], pipeline_id: int, ids: I64, deal_pipeline: I64) -> I64:
    """For deals now in another pipeline: the time of their last move out of this one; -1 for the others."""
    out = np.full(len(ids), -1, dtype=np.int64)
    deal, pipe, at = away["deal_id"], away["pipeline_id"], away["at"]
    # A move out: the deal's previous move was in this pipeline and this one is not.
    out_of_here = (deal[1:] == deal[:-1]) & (pipe[:-1] == pipeline_id) & (pipe[1:] != pipeline_id)
    moved = np.flatnonzero(out_of_here) + 1
    last = moved[np.r_[deal[moved][1:] != deal[moved][:-1], True]] if len(moved) else moved
    where = np.searchsorted(ids, deal[last])
    gone = deal_pipeline[where] != pipeline_id
    out[where[gone]] = at[last][gone]
    return out


def _names(table: pa.Table) -> dict[int, str]:
    """An (id, name) table as a dict."""
    ids, names = table.column(0).to_pylist(), table.column(1).to_pylist()
    return {int(i): str(n) for i, n in zip(ids, names, strict=True)}


def codes_of(values: pa.Array) -> tuple[I64, list[str]]:
    """Dictionary-encode strings: integer codes per row and the labels; missing values get '(none)'."""
    enc = values.cast(pa.string()).fill_null("(none)").dictionary_encode()
    return np.asarray(enc.indices.to_numpy(zero_copy_only=False), dtype=np.int64), enc.dictionary.to_pylist()
