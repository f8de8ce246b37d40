"""Write many deals with their whole history in one transaction: for demos, imports and syncs.

The same rules as single moves hold (times in order, reasons from the catalogue, lost needs a reason when the
pipeline says so), but history is kept as it happened: a repeated stage is logged, not refused.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import JSON, Connection, Integer, Table, UniqueConstraint, func, select, text

from voronka.domain.deal import ActivityKind
from voronka.domain.pipeline import Pipeline, StageKind
from voronka.errors import MoveError
from voronka.store._sqlite_copy import Rows, copy_rows
from voronka.store.schema import activities, deals, loss_reasons, stage_moves
from voronka.store.types import UTCTime, from_micros
from voronka.store.workspace import WorkspaceStore

InsertRows = Callable[[Sequence[tuple[Table, Rows]]], None]
BIG = 100_000


@dataclass(frozen=True, slots=True)
class NewMove:
    stage: str
    at: datetime
    reason: str | None = None
    by: str | None = None
    comment: str | None = None
    pipeline: str | None = None  # another pipeline: a transfer


@dataclass(frozen=True, slots=True)
class NewActivity:
    kind: ActivityKind
    at: datetime
    due_at: datetime | None = None
    done: bool = False
    by: str | None = None
    note: str | None = None


@dataclass(slots=True)
class NewDeal:
    """A deal with its history; the first move is its creation and sets ``created_at``."""

    pipeline: str
    title: str
    moves: list[NewMove]
    owner: str | None = None
    amount: Decimal | None = None
    currency: str = "RUB"
    source: str | None = None
    segment: str | None = None
    external_id: str | None = None
    external_source: str = ""
    custom: dict[str, Any] | None = None
    activities: list[NewActivity] = field(default_factory=list)


def write_histories(store: WorkspaceStore, items: Sequence[NewDeal]) -> list[int]:
    """Insert the deals, their moves and activities; all land or none does. Returns the new deal ids."""
    with store.transaction() as conn:
        pipes = {p.name: p for p in store.pipelines()}
        reason_ids = _reason_ids(conn)
        known: dict[str, int | None] = {}

        def user_id(name: str | None) -> int | None:  # one query per distinct name, not per move
            key = name or ""
            if key not in known:
                known[key] = store._user_id(conn, name)
            return known[key]

        insert_deal = deals.insert()
        ids = []
        move_rows: list[dict[str, Any]] = []
        act_rows: list[dict[str, Any]] = []
        for n, item in enumerate(items):
            rows = _moves(item, n, pipes, reason_ids, conn, store, user_id)
            last = rows[-1]
            deal_id = conn.execute(
                insert_deal,  # parameters apart from the statement: it is compiled once, not once per deal
                {
                    "pipeline_id": last["pipeline_id"],
                    "stage_id": last["stage_id"],
                    "stage_since": last["at"],
                    "title": item.title,
                    "owner_id": user_id(item.owner),
                    "amount": item.amount,
                    "currency": item.currency,
                    "source": item.source,
                    "segment": item.segment,
                    "created_at": rows[0]["at"],
                    "external_id": item.external_id,
                    "external_source": item.external_source,
                    "custom": item.custom,
                    "version": 1,
                },
            ).inserted_primary_key[0]
            ids.append(int(deal_id))
            move_rows += [{**r, "deal_id": deal_id} for r in rows]
            act_rows += [
                {
                    "deal_id": deal_id,
                    "kind": a.kind.value,
                    "at": a.at,
                    "due_at": a.due_at,
                    "done": a.done,
                    "author_id": user_id(a.by),
                    "note": a.note,
                }
                for a in item.activities
            ]
        if move_rows:
            conn.execute(stage_moves.insert(), move_rows)
        if act_rows:
            conn.execute(activities.insert(), act_rows)
        return ids


def _reason_ids(conn: Connection) -> dict[tuple[int, str], int]:
    return {(pid, name): rid for rid, pid, name in conn.execute(select(loss_reasons))}


def _moves(
    item: NewDeal,
    n: int,
    pipes: dict[str, Pipeline],
    reason_ids: dict[tuple[int, str], int],
    conn: Connection,
    store: WorkspaceStore,
    user_id: Callable[[str | None], int | None],
) -> list[dict[str, Any]]:
    if not item.moves:
        raise MoveError(f"Deal #{n + 1} ({item.title!r}) has no moves; give at least its creation stage.")
    rows: list[dict[str, Any]] = []
    prev_stage = None
    prev_at = None
    for move in item.moves:
        name = move.pipeline or (rows[-1]["pipeline"] if rows else item.pipeline)
        pipe = pipes.get(name) or store._pipeline(conn, name)
        stage = pipe.stage(move.stage)
        if prev_at is not None and move.at < prev_at:
            raise MoveError(
                f"Deal #{n + 1} ({item.title!r}): the move to {stage.name!r} at {move.at.isoformat()} is "
                f"before "
                f"the previous move at {prev_at.isoformat()}; sort each deal's moves by time."
            )
        reason_id = None
        if stage.kind is StageKind.LOST and move.reason:
            reason_id = reason_ids[(pipe.id, pipe.reason(move.reason))]
        elif stage.kind is StageKind.LOST and pipe.reason_required:
            raise MoveError(
                f"Deal #{n + 1} ({item.title!r}): the move to lost stage {stage.name!r} has no reason, and "
                f"pipeline {pipe.name!r} requires one."
            )
        rows.append(
            {
                "pipeline": pipe.name,
                "pipeline_id": pipe.id,
                "from_stage_id": prev_stage,
                "stage_id": stage.id,
                "at": move.at,
                "author_id": user_id(move.by),
                "reason_id": reason_id,
                "comment": move.comment,
            }
        )
        prev_stage, prev_at = stage.id, move.at
    for r in rows:
        del r["pipeline"]
    return rows


@contextmanager
def bulk_rows(conn: Connection, tables: Sequence[Table], expected: int) -> Iterator[InsertRows]:
    """Insert many rows given as Arrow tables in storage form (times as integer microseconds, JSON as text,
    money as float on SQLite) in the caller's transaction: ``insert([(table, rows), ...])``; ``rows`` may be a
    function that makes the table, called when its turn comes (on SQLite, while the tables before it are written).

    On SQLite, big loads go through scratch files (:mod:`voronka.store._sqlite_copy`). In a bulk transaction
    (foreign keys checked once before the commit), an empty table gets its rows and index entries copied as
    they are from a scratch table of its exact shape (a table without a unique constraint, the move log, as bare
    records: its indexes are dropped and sorted here after). Otherwise, when the load is big compared with the
    tables, their secondary indexes are dropped first and rebuilt after (one sort instead of a million B-tree inserts)
    — inside the same transaction, so a failure leaves them as they were. Small loads go to the driver's
    ``executemany``; other databases get the rows through SQLAlchemy, converted to Python values.
    """
    sqlite = conn.dialect.name == "sqlite"
    rebuild: list[Any] = []
    transfer: set[Table] = set()
    cache = None
    if sqlite and expected >= BIG:
        sizes = {t: conn.scalar(select(func.count()).select_from(t)) or 0 for t in tables}
        if not conn.exec_driver_sql("PRAGMA foreign_keys").scalar():
            transfer = {t for t in tables if not sizes[t]}
        if expected > sum(sizes.values()):
            # A table without a unique constraint (the move log) is transferred without its indexes too: its
            # records alone are copied, and each index sorted once here, instead of being sorted in the scratch
            # file and then copied entry by entry.
            rebuild = [ix for t in tables if t not in transfer or not _has_unique(t) for ix in t.indexes]
            for ix in rebuild:
                ix.drop(conn)
        if len(transfer) < len(tables) or rebuild:
            # Rows inserted one by one, and indexes sorted, on this connection: 256 MiB of pages while the load
            # runs. Records transferred as they are need no more than the usual cache: new pages go to the journal
            # or the file as they fill, and that memory is used again instead of a quarter GiB of fresh pages.
            cache = conn.exec_driver_sql("PRAGMA cache_size").scalar()
            conn.exec_driver_sql("PRAGMA cache_size=-262144")

    def indexed(table: Table) -> None:
        """The dropped indexes of ``table`` made again (one sort each), once all its rows are in."""
        for ix in [ix for ix in rebuild if ix.table is table]:
            ix.create(conn)
            rebuild.remove(ix)
        if not rebuild and cache is not None and len(transfer) == len(tables):
            # Only records are transferred from now on: the usual cache again, so that the deals' copy (the last)
            # writes out its pages as they fill instead of holding a quarter GiB of fresh ones (in process, 1.33
            # instead of 1.52-1.55 GiB at the peak of a million-row import).
            conn.exec_driver_sql(f"PRAGMA cache_size={int(cache)}")

    def insert(parts: Sequence[tuple[Table, Rows]]) -> None:
        # Rows given as a function count as ``expected``: made later, they let the first tables be written sooner
        if sqlite and sum(expected if callable(d) else d.num_rows for _, d in parts) >= BIG:
            # A table's indexes are sorted as soon as its rows are in: the move log's while the deals' scratch
            # file is still being written (the last of them), not after.
            copy_rows(conn, parts, transfer, indexed)
            return
        for table, rows in parts:
            data = rows() if callable(rows) else rows
            if not data.num_rows:
                continue
            names = data.column_names
            rows = list(zip(*(c.to_pylist() for c in data.columns), strict=True))
            if sqlite:
                marks = ", ".join("?" * len(names))
                cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
                cursor.executemany(f"INSERT INTO {table.name} ({', '.join(names)}) VALUES ({marks})", rows)
                cursor.close()
            else:
                conn.execute(table.insert(), [_python_values(table, names, r) for r in rows])

    yield insert
    for ix in rebuild:
        ix.create(conn)
    if cache is not None:
        conn.exec_driver_sql(f"PRAGMA cache_size={int(cache)}")
    for table in tables:
        reset_id_sequence(conn, table)


def _has_unique(table: Table) -> bool:
    return any(isinstance(c, UniqueConstraint) for c in table.constraints) or any(ix.unique for ix in table.indexes)


def reset_id_sequence(conn: Connection, table: Table) -> None:
    """After rows were inserted with explicit ids: move PostgreSQL's id sequence past them (SQLite needs nothing)."""
    pk = list(table.primary_key.columns)
    if conn.dialect.name != "postgresql" or len(pk) != 1 or not isinstance(pk[0].type, Integer):
        return
    name, col = table.name, pk[0].name
    conn.execute(
        text(
            f"SELECT setval(pg_get_serial_sequence('{name}', '{col}'), "
            f"COALESCE((SELECT MAX({col}) FROM {name}), 0) + 1, false)"
        )
    )


def _python_values(table: Table, names: Sequence[str], row: tuple[Any, ...]) -> dict[str, Any]:
    out = {}
    for name, value in zip(names, row, strict=True):
        col_type = table.c[name].type
        if value is not None and isinstance(col_type, UTCTime):
            value = from_micros(value)
        elif value is not None and isinstance(col_type, JSON) and isinstance(value, str):
            value = json.loads(value)
        out[name] = value
    return out
