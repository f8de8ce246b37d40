"""The SQLite bulk path (ADBC scratch files attached to the workspace connection): rows land with the transaction
or not at all, and the scratch files are detached and deleted either way."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from sqlalchemy import func, select

from voronka.service.workspace import Workspace
from voronka.store.bulk import BIG, bulk_rows
from voronka.store.schema import deals, stage_moves


def _deals(ws: Workspace, n: int) -> pa.Table:
    pipe = ws.create_pipeline("Sales", stages=["Request", "Call"])
    at = np.full(n, 1_767_225_600_000_000, np.int64)
    return pa.table(
        {
            "id": np.arange(1, n + 1, dtype=np.int64),
            "pipeline_id": np.full(n, pipe.id, np.int64),
            "stage_id": np.full(n, pipe.stages[0].id, np.int64),
            "stage_since": at,
            "title": pa.array([f"Deal {i}" for i in range(n)]),
            "currency": pa.repeat("RUB", n),
            "created_at": at,
            "external_id": pa.array([str(i) for i in range(n)]),
            "external_source": pa.repeat("file", n),
            "version": np.ones(n, np.int64),
            "snapshot": np.ones(n, np.int64),
        }
    )


def _scratch_left(conn_db: list[tuple[int, str, str]]) -> list[str]:
    return [name for _, name, _ in conn_db if name.startswith("voronka_bulk_")]


def test_a_big_load_lands_and_leaves_no_scratch_file(tmp_path: Path) -> None:
    ws = Workspace.connect(f"sqlite:///{tmp_path / 'ws.db'}")
    data = _deals(ws, BIG)
    with ws.transaction() as conn:
        with bulk_rows(conn, [deals, stage_moves], BIG) as insert:
            insert([(deals, data)])
        attached = _scratch_left(conn.exec_driver_sql("PRAGMA database_list").all())
        folder = Path(conn.exec_driver_sql("PRAGMA database_list").all()[-1][2]).parent
    assert len(attached) == 1  # the copy went through a scratch file
    with ws.engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(deals)) == BIG
        assert not _scratch_left(conn.exec_driver_sql("PRAGMA database_list").all())
    assert not folder.exists()
    ws.close()


def test_a_big_load_in_a_failed_transaction_lands_nothing(tmp_path: Path) -> None:
    ws = Workspace.connect(f"sqlite:///{tmp_path / 'ws.db'}")
    data = _deals(ws, BIG)
    with pytest.raises(RuntimeError), ws.transaction() as conn:
        with bulk_rows(conn, [deals, stage_moves], BIG) as insert:
            insert([(deals, data)])
        assert conn.scalar(select(func.count()).select_from(deals)) == BIG
        raise RuntimeError("a later step of the import fails")
    with ws.engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(deals)) == 0
        assert not _scratch_left(conn.exec_driver_sql("PRAGMA database_list").all())
    ws.close()
