"""New deals stated by a snapshot (their current stage), inserted column-wise: the path of big first imports.

A snapshot deal gets its creation move; when it is closed, also the move to won or lost at the close date
(never before creation). Deals are flagged ``snapshot``: their path through the stages is unknown.
"""

from __future__ import annotations

import json
from itertools import repeat
from typing import Any

import numpy as np
from sqlalchemy import Connection, func, select

from voronka.domain.pipeline import Pipeline, StageKind, reason_id_of
from voronka.io.batch import ImportBatch
from voronka.store.bulk import bulk_rows
from voronka.store.schema import deals, stage_moves
from voronka.store.workspace import WorkspaceStore

_DEAL_COLS = (
    "id",
    "pipeline_id",
    "stage_id",
    "stage_since",
    "title",
    "owner_id",
    "amount",
    "currency",
    "source",
    "segment",
    "created_at",
    "external_id",
    "external_source",
    "custom",
    "version",
    "snapshot",
)
_MOVE_COLS = ("deal_id", "pipeline_id", "from_stage_id", "stage_id", "at", "author_id", "reason_id")


def _stages(pipes: dict[str, Pipeline], pairs: set[tuple[str, str]]) -> dict[tuple[str, str], tuple[Any, ...]]:
    """(pipeline, stage) as written -> (pipeline id, stage id, first open stage id, is open, pipeline)."""
    out = {}
    for p_name, s_name in pairs:
        pipe = pipes[p_name.casefold()]
        stage = pipe.stage(s_name)
        out[(p_name, s_name)] = (pipe.id, stage.id, pipe.open_stages[0].id, stage.kind, pipe)
    return out


def _pick(column: list[Any], rows: list[int], everything: bool) -> list[Any]:
    return column if everything else [column[i] for i in rows]


def insert_snapshots(
    store: WorkspaceStore,
    conn: Connection,
    batch: ImportBatch,
    rows: list[int],
    pipes: dict[str, Pipeline],
    user_ids: dict[str, int],
) -> int:
    """Insert the deals at ``rows`` of the batch with their moves; returns the number of moves."""
    if not rows:
        return 0
    everything = len(rows) == len(batch.deals)
    c = {name: _pick(col, rows, everything) for name, col in batch.deals.cols.items()}
    n = len(rows)
    pairs = list(zip(c["pipeline"], c["stage"], strict=True))
    info = _stages(pipes, set(pairs))
    facts = [info[p] for p in pairs]
    pid = np.fromiter((f[0] for f in facts), np.int64, n)
    sid = np.fromiter((f[1] for f in facts), np.int64, n)
    first = np.fromiter((f[2] for f in facts), np.int64, n)
    is_open = np.fromiter((f[3] is StageKind.OPEN for f in facts), bool, n)
    is_lost = np.fromiter((f[3] is StageKind.LOST for f in facts), bool, n)
    created = np.fromiter(c["created"], np.int64, n)
    closed = np.fromiter((created[i] if x is None else x for i, x in enumerate(c["closed"])), np.int64, n)
    since = np.where(is_open, created, np.maximum(closed, created))
    ids = np.arange(n, dtype=np.int64) + (conn.scalar(select(func.max(deals.c.id))) or 0) + 1
    owners_map: dict[Any, Any] = {None: None, **user_ids}
    owners = [owners_map.get(o) for o in c["owner"]]
    sqlite = conn.dialect.name == "sqlite"
    # SQLite keeps money as REAL (see store.types.Money); values have at most 4 decimals by then
    amounts = [None if a is None else float(a) for a in c["amount"]] if sqlite else c["amount"]
    customs = [x if x is None or isinstance(x, str) else json.dumps(x, ensure_ascii=False) for x in c["custom"]]
    deal_rows = list(
        zip(
            ids.tolist(),
            pid.tolist(),
            sid.tolist(),
            since.tolist(),
            c["title"],
            owners,
            amounts,
            c["currency"],
            c["source"],
            c["segment"],
            created.tolist(),
            c["external_id"],
            repeat(batch.source),
            customs,
            repeat(1),
            repeat(True),
            strict=False,
        )
    )
    # Every deal's creation move; closed deals enter the first open stage, then move to won or lost.
    start = np.where(is_open, sid, first)
    moves = list(
        zip(
            ids.tolist(),
            pid.tolist(),
            repeat(None),
            start.tolist(),
            created.tolist(),
            owners,
            repeat(None),
            strict=False,
        )
    )
    shut = np.flatnonzero(~is_open)
    reasons = _reason_ids(c["loss_reason"], shut, is_lost, facts)
    moves += list(
        zip(
            ids[shut].tolist(),
            pid[shut].tolist(),
            first[shut].tolist(),
            sid[shut].tolist(),
            since[shut].tolist(),
            [owners[i] for i in shut],
            reasons,
            strict=True,
        )
    )
    with bulk_rows(conn, [deals, stage_moves], len(deal_rows) + len(moves)) as insert:
        insert(deals, _DEAL_COLS, deal_rows)
        insert(stage_moves, _MOVE_COLS, moves)
    return len(moves)


def _reason_ids(
    reasons: list[str | None], shut: np.ndarray, is_lost: np.ndarray, facts: list[tuple[Any, ...]]
) -> list[int | None]:
    cache: dict[tuple[int, str], int] = {}
    out: list[int | None] = []
    for i in shut.tolist():
        name = reasons[i]
        if not is_lost[i] or not name:
            out.append(None)
            continue
        pipe = facts[i][4]
        key = (pipe.id, name)
        if key not in cache:
            cache[key] = reason_id_of(pipe, name)
        out.append(cache[key])
    return out
