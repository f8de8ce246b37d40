"""New deals stated by a snapshot (their current stage), inserted column-wise: the path of big first imports.

A snapshot deal gets its creation move; when it is closed, also the move to won or lost at the close date
(never before creation). Deals are flagged ``snapshot``: their path through the stages is unknown.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import Connection, func, select

from voronka.domain.pipeline import Pipeline, StageKind, reason_id_of
from voronka.io.batch import ImportBatch
from voronka.store.bulk import bulk_rows
from voronka.store.schema import deals, stage_moves
from voronka.store.workspace import WorkspaceStore


def _encode(keys: pa.Array) -> tuple[list[Any], np.ndarray]:
    """The distinct keys and, for each element, its position among them (``len(distinct)`` for nulls)."""
    enc = keys.dictionary_encode()
    return enc.dictionary.to_pylist(), pc.fill_null(enc.indices, len(enc.dictionary)).to_numpy(zero_copy_only=False)


def _lookup(keys: pa.Array, table: Callable[[Any], Any], dtype: Any, missing: Any) -> np.ndarray:
    """``table(key)`` for every element of ``keys``, computed once per distinct key (``missing`` for nulls)."""
    distinct, idx = _encode(keys)
    return np.array([table(k) for k in distinct] + [missing], dtype=dtype)[idx]


def insert_snapshots(
    store: WorkspaceStore,
    conn: Connection,
    batch: ImportBatch,
    rows: Sequence[int],
    pipes: dict[str, Pipeline],
    user_ids: dict[str, int],
) -> int:
    """Insert the deals at ``rows`` of the batch with their moves; returns the number of moves.

    Everything is computed on whole columns (one dictionary lookup per distinct pipeline, stage, owner and
    reason), then written in one bulk insert per table.
    """
    if not rows:
        return 0
    cols = batch.deals.cols
    n = len(rows)
    take = None if n == len(batch.deals) else pa.array(rows, pa.int64())

    def col(name: str, kind: pa.DataType | None = None) -> pa.Array:
        given = batch.deals.arrow.get(name)
        arr = pa.array(cols[name], kind) if given is None else given if kind is None else given.cast(kind)
        return arr if take is None else arr.take(take)

    pipeline, stage = col("pipeline", pa.string()), col("stage", pa.string())
    pair = pc.binary_join_element_wise(pipeline, stage, "\x1f")
    distinct, at_pair = _encode(pair)  # no nulls: every deal has a pipeline and a stage
    pipe_of: dict[str, Pipeline] = {}
    facts = []
    for key in distinct:
        p_name, s_name = key.split("\x1f", 1)
        pipe = pipe_of[key] = pipes[p_name.casefold()]
        st = pipe.stage(s_name)
        facts.append((pipe.id, st.id, pipe.open_stages[0].id, st.kind is StageKind.OPEN, st.kind is StageKind.LOST))
    pid, sid, first, is_open, is_lost = (np.array(column)[at_pair] for column in zip(*facts, strict=True))
    created = col("created", pa.int64()).to_numpy(zero_copy_only=False)
    closed = pc.fill_null(col("closed", pa.int64()), pa.array(created)).to_numpy(zero_copy_only=False)
    since = np.where(is_open, created, np.maximum(closed, created))
    ids = np.arange(n, dtype=np.int64) + (conn.scalar(select(func.max(deals.c.id))) or 0) + 1
    owner_ix = _lookup(col("owner", pa.string()), lambda o: user_ids.get(o, -1), np.int64, -1)
    owners = pa.array(owner_ix, mask=owner_ix < 0)
    sqlite = conn.dialect.name == "sqlite"
    # SQLite keeps money as REAL (see store.types.Money); values have at most 4 decimals by then
    amounts = col("amount", pa.decimal128(24, 4))
    if sqlite:
        amounts = _as_float(amounts)
    customs = batch.deals.arrow.get("custom")
    if customs is None:
        customs = pa.array(
            [x if x is None or isinstance(x, str) else json.dumps(x, ensure_ascii=False) for x in cols["custom"]],
            pa.string(),
        )
    if take is not None:
        customs = customs.take(take)
    deal_cols = {
        "id": ids,
        "pipeline_id": pid,
        "stage_id": sid,
        "stage_since": since,
        "title": col("title", pa.string()),
        "owner_id": owners,
        "amount": amounts,
        "currency": col("currency", pa.string()),
        "source": col("source", pa.string()),
        "segment": col("segment", pa.string()),
        "created_at": created,
        "external_id": col("external_id", pa.string()),
        "external_source": pa.repeat(batch.source, n),
        "custom": customs,
        "version": np.ones(n, np.int64),
        "snapshot": np.ones(n, np.int64),
    }
    # Every deal's creation move; closed deals enter the first open stage, then move to won or lost. The log is
    # written in deal order (a closing move right after its deal's creation move), as it is read. It is made
    # while the deals are already being written.
    shut = np.flatnonzero(~is_open)
    count = n + len(shut)
    first_move = (conn.scalar(select(func.max(stage_moves.c.id))) or 0) + 1

    def moves() -> pa.Table:
        reasons = _reason_ids(col("loss_reason", pa.string()), pair, pipe_of, shut, is_lost)
        at = np.arange(n) + np.concatenate([[0], np.cumsum(~is_open)[:-1]])  # each creation move's place
        then = at[shut] + 1  # each closing move's place

        def log(opening: np.ndarray | int, closing: np.ndarray | int) -> np.ndarray:
            out = np.empty(count, np.int64)
            out[at], out[then] = opening, closing
            return out

        author, reason = log(owner_ix, owner_ix[shut]), log(-1, reasons)
        from_stage = log(-1, first[shut])
        return pa.table(
            {
                "id": np.arange(count, dtype=np.int64) + first_move,
                "deal_id": log(ids, ids[shut]),
                "pipeline_id": log(pid, pid[shut]),
                "from_stage_id": pa.array(from_stage, mask=from_stage < 0),
                "stage_id": log(np.where(is_open, sid, first), sid[shut]),
                "at": log(created, since[shut]),
                "author_id": pa.array(author, mask=author < 0),
                "reason_id": pa.array(reason, mask=reason < 0),
            }
        )

    with bulk_rows(conn, [deals, stage_moves], n + count) as insert:
        insert([(deals, pa.table(deal_cols)), (stage_moves, moves)])
    return count


def _reason_ids(
    reason: pa.Array, pair: pa.Array, pipe_of: dict[str, Pipeline], shut: np.ndarray, is_lost: np.ndarray
) -> np.ndarray:
    """The loss-reason id of each closed deal (-1 for won deals and lost ones without a reason)."""
    lost = is_lost[shut]
    names = pc.if_else(pa.array(lost), reason.take(pa.array(shut)), None)
    key = pc.binary_join_element_wise(pair.take(pa.array(shut)), names, "\x1e")  # null where no reason

    def reason_id(k: str) -> int:
        p_key, name = k.split("\x1e", 1)
        return reason_id_of(pipe_of[p_key], name) if name else -1

    return _lookup(key, reason_id, np.int64, -1)


def _as_float(amounts: pa.Array) -> pa.Array:
    """Decimals as the nearest doubles. Whole amounts (most are) go through int64, exact below 2**53; the others
    through text: Arrow's decimal -> double cast is not correctly rounded, the text parser is."""
    try:
        return pc.cast(pc.cast(amounts, pa.int64()), pa.float64())
    except pa.ArrowInvalid:  # a fraction would be lost
        return pc.cast(pc.cast(amounts, pa.string()), pa.float64())
