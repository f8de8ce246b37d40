"""The SQLite bulk path (ADBC scratch files attached to the workspace connection): rows land with the transaction
or not at all, and the scratch files are detached and deleted either way."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from sqlalchemy import func, select

from voronka.errors import DanglingReferenceError
from voronka.service.workspace import Workspace
from voronka.store import _sqlite_copy
from voronka.store._sqlite_copy import shape
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


def test_a_bulk_transaction_copies_into_empty_tables_record_for_record(tmp_path: Path) -> None:
    """Scratch tables shaped as the workspace's own take SQLite's transfer path (records and index entries
    copied as they are); the rows land whole, indexes included, and foreign keys are enforced again after."""
    ws = Workspace.connect(f"sqlite:///{tmp_path / 'ws.db'}")
    data = _deals(ws, BIG)
    with ws.transaction(bulk=[deals, stage_moves]) as conn:
        raw = conn.connection.driver_connection
        assert raw.execute("PRAGMA foreign_keys").fetchone() == (0,)
        for table in (deals, stage_moves):
            shaped = shape(raw, table.name)
            assert shaped is not None
            scratch = tmp_path / f"{table.name}.db"
            with sqlite3.connect(scratch) as db:
                db.execute(shaped.table)
                for index in shaped.indexes:
                    db.execute(index)
            raw.execute(f"ATTACH DATABASE '{scratch}' AS shaped")
            plan = [op for _, op, *_ in raw.execute(f"EXPLAIN INSERT INTO main.{table.name} SELECT * FROM shaped.rows")]
            raw.execute("DETACH DATABASE shaped")
            assert "RowData" in plan  # the transfer: a record copied without decoding it
        with bulk_rows(conn, [deals, stage_moves], BIG) as insert:
            insert([(deals, data)])
    with ws.engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(deals)) == BIG
        assert conn.exec_driver_sql("PRAGMA integrity_check").scalar() == "ok"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        found = conn.scalar(select(deals.c.title).where(deals.c.external_source == "file", deals.c.external_id == "7"))
        assert found == "Deal 7"  # through the unique index the copy brought
    ws.close()


def test_a_dangling_reference_refuses_the_bulk_transaction(tmp_path: Path) -> None:
    """Foreign keys are checked once before a bulk transaction commits: a move of a deal that does not exist
    rolls everything back with a clear error."""
    ws = Workspace.connect(f"sqlite:///{tmp_path / 'ws.db'}")
    data = _deals(ws, BIG)
    stage_id = data.column("stage_id")[0].as_py()
    moves = pa.table(
        {
            "id": np.arange(1, BIG + 1, dtype=np.int64),
            "deal_id": np.arange(2, BIG + 2, dtype=np.int64),  # the last one names deal BIG + 1: none
            "pipeline_id": data.column("pipeline_id"),
            "stage_id": np.full(BIG, stage_id, np.int64),
            "at": data.column("created_at"),
        }
    )
    refused = pytest.raises(DanglingReferenceError, match="stage_moves .* refers to a missing row of deals")
    both = [deals, stage_moves]
    with refused, ws.transaction(bulk=both) as conn, bulk_rows(conn, both, 2 * BIG) as insert:
        insert([(deals, data), (stage_moves, moves)])
    with ws.engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(deals)) == 0
        assert conn.scalar(select(func.count()).select_from(stage_moves)) == 0
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    ws.close()


def test_a_row_written_after_the_checked_copy_is_checked_at_the_commit(tmp_path: Path) -> None:
    """The copy checks the references of the rows it brings; a row written after it in the same bulk
    transaction is checked by SQLite itself before the commit."""
    ws = Workspace.connect(f"sqlite:///{tmp_path / 'ws.db'}")
    data = _deals(ws, BIG)
    refused = pytest.raises(DanglingReferenceError, match="stage_moves .* refers to a missing row of deals")
    with refused, ws.transaction(bulk=[deals, stage_moves]) as conn:
        with bulk_rows(conn, [deals, stage_moves], BIG) as insert:
            insert([(deals, data)])
        row = data.slice(0, 1).to_pylist()[0]
        conn.exec_driver_sql(
            "INSERT INTO stage_moves (deal_id, pipeline_id, stage_id, at) VALUES (?, ?, ?, ?)",
            (BIG + 5, row["pipeline_id"], row["stage_id"], row["created_at"]),
        )
    with ws.engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(deals)) == 0
    ws.close()


def _creation_moves(deals_table: pa.Table) -> pa.Table:
    """One creation move per deal of ``deals_table`` (ids 1…), in its stage at its creation time."""
    return pa.table(
        {
            "id": np.arange(1, deals_table.num_rows + 1, dtype=np.int64),
            "deal_id": deals_table.column("id"),
            "pipeline_id": deals_table.column("pipeline_id"),
            "stage_id": deals_table.column("stage_id"),
            "at": deals_table.column("created_at"),
        }
    )


def test_a_big_move_log_lands_whole_through_two_slices(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A table without a unique index is written in two scratch files, the second copied into the table the first
    filled; every row lands once, indexes included."""
    monkeypatch.setattr(_sqlite_copy, "SLICE_ROWS", BIG // 4)
    ws = Workspace.connect(f"sqlite:///{tmp_path / 'ws.db'}")
    data = _deals(ws, BIG)
    moves = _creation_moves(data)
    both = [deals, stage_moves]
    with ws.transaction(bulk=both) as conn, bulk_rows(conn, both, 2 * BIG) as insert:
        insert([(deals, data), (stage_moves, moves)])
        attached = _scratch_left(conn.exec_driver_sql("PRAGMA database_list").all())
    assert len(attached) == 3  # deals, and the moves in two slices
    with ws.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA integrity_check").scalar() == "ok"
        landed = conn.execute(select(stage_moves.c.id, stage_moves.c.deal_id).order_by(stage_moves.c.id)).all()
        assert landed == list(zip(range(1, BIG + 1), range(1, BIG + 1), strict=True))
        last = conn.scalar(select(stage_moves.c.id).where(stage_moves.c.deal_id == BIG))  # through the index
        assert last == BIG
    ws.close()


def _journal(conn: sqlite3.Connection) -> tuple[str, int]:
    return conn.execute("PRAGMA main.journal_mode").fetchone()[0], conn.execute("PRAGMA synchronous").fetchone()[0]


def test_a_bulk_transaction_alone_on_the_file_runs_with_a_rollback_journal_and_puts_wal_back(tmp_path: Path) -> None:
    """With no other connection open, a bulk load writes its pages once (rollback journal, synced in full)
    instead of to the WAL and again at the checkpoint; WAL and synchronous=NORMAL are back after it."""
    ws = Workspace.connect(f"sqlite:///{tmp_path / 'ws.db'}")
    data = _deals(ws, BIG)
    ws.engine.dispose()  # no idle connection left open in the pool
    with ws.transaction(bulk=[deals, stage_moves]) as conn:
        raw = conn.connection.driver_connection
        assert _journal(raw) == ("delete", 2)  # FULL
        with bulk_rows(conn, [deals, stage_moves], BIG) as insert:
            insert([(deals, data)])
        assert (tmp_path / "ws.db-journal").exists()
    assert not (tmp_path / "ws.db-journal").exists()
    with ws.engine.connect() as conn:
        assert _journal(conn.connection.driver_connection) == ("wal", 1)  # the same pooled connection: NORMAL
        assert conn.scalar(select(func.count()).select_from(deals)) == BIG
        assert conn.exec_driver_sql("PRAGMA integrity_check").scalar() == "ok"
    with sqlite3.connect(tmp_path / "ws.db") as other:
        assert _journal(other)[0] == "wal"  # the file's own mode
    ws.close()


def test_a_failed_bulk_transaction_with_a_rollback_journal_lands_nothing_and_puts_wal_back(tmp_path: Path) -> None:
    ws = Workspace.connect(f"sqlite:///{tmp_path / 'ws.db'}")
    data = _deals(ws, BIG)
    ws.engine.dispose()
    with pytest.raises(RuntimeError), ws.transaction(bulk=[deals, stage_moves]) as conn:
        assert _journal(conn.connection.driver_connection)[0] == "delete"
        with bulk_rows(conn, [deals, stage_moves], BIG) as insert:
            insert([(deals, data)])
        raise RuntimeError("a later step of the import fails")
    with ws.engine.connect() as conn:
        assert _journal(conn.connection.driver_connection) == ("wal", 1)
        assert conn.scalar(select(func.count()).select_from(deals)) == 0
        assert conn.exec_driver_sql("PRAGMA integrity_check").scalar() == "ok"
    ws.close()


def test_a_crash_inside_a_bulk_transaction_with_a_rollback_journal_leaves_the_workspace_as_it_was(
    tmp_path: Path,
) -> None:
    """The process dies after the rows were written to the file, before the commit: the hot journal left behind
    is rolled back by the next connection (the file cut back to its old end), which also turns WAL on again."""
    import subprocess
    import sys

    path = tmp_path / "ws.db"
    ws = Workspace.connect(f"sqlite:///{path}")
    ws.create_pipeline("Sales", stages=["Request", "Call"])
    ws.close()
    size = path.stat().st_size
    script = f"""
import os
from sqlalchemy import func, select
from voronka.service.workspace import Workspace
from voronka.store.schema import deals
ws = Workspace.connect("sqlite:///{path}")
pipe = ws.pipelines()[0]
ws.engine.dispose()
n = 200_000
with ws.transaction(bulk=[deals]) as conn:
    assert conn.exec_driver_sql("PRAGMA main.journal_mode").scalar() == "delete"
    raw = conn.connection.driver_connection
    raw.execute("PRAGMA cache_size=100")  # pages spilled to the file before the commit
    raw.executemany(
        "INSERT INTO deals (pipeline_id, stage_id, stage_since, title, currency, created_at, external_id, "
        "external_source) VALUES (?, ?, 0, ?, 'RUB', 0, ?, 'file')",
        [(pipe.id, pipe.stages[0].id, "x" * 200, str(i)) for i in range(n)],
    )
    assert conn.scalar(select(func.count()).select_from(deals)) == n
    os._exit(3)
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 3, done.stderr[-2000:]
    assert (tmp_path / "ws.db-journal").exists()  # hot
    assert path.stat().st_size > size  # the rows reached the file
    ws = Workspace.connect(f"sqlite:///{path}")
    with ws.engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(deals)) == 0
        assert conn.exec_driver_sql("PRAGMA integrity_check").scalar() == "ok"
        assert _journal(conn.connection.driver_connection)[0] == "wal"
    assert [p.name for p in ws.pipelines()] == ["Sales"]
    ws.close()


def test_a_bulk_transaction_keeps_the_wal_when_another_connection_has_the_file_open(tmp_path: Path) -> None:
    """Another reader (here a plain connection; in practice another process) keeps the WAL: the switch is
    refused at once, not after the busy timeout, and the load lands the usual way."""
    import time

    ws = Workspace.connect(f"sqlite:///{tmp_path / 'ws.db'}")
    data = _deals(ws, BIG)
    ws.engine.dispose()
    reader = sqlite3.connect(tmp_path / "ws.db")
    assert reader.execute("SELECT count(*) FROM deals").fetchone() == (0,)
    start = time.monotonic()
    with ws.transaction(bulk=[deals, stage_moves]) as conn:
        raw = conn.connection.driver_connection
        assert time.monotonic() - start < 5
        assert _journal(raw) == ("wal", 1)
        assert raw.execute("PRAGMA busy_timeout").fetchone() == (30000,)
        with bulk_rows(conn, [deals, stage_moves], BIG) as insert:
            insert([(deals, data)])
    assert reader.execute("SELECT count(*) FROM deals").fetchone() == (BIG,)
    reader.close()
    ws.close()


def test_the_move_log_is_transferred_without_its_indexes_and_gets_them_back_sorted(tmp_path: Path) -> None:
    """The log (no unique constraint) comes as bare records; its indexes are dropped inside the transaction and
    made again after the copy, so they are whole and in use; the deals keep theirs through the scratch file."""
    ws = Workspace.connect(f"sqlite:///{tmp_path / 'ws.db'}")
    data = _deals(ws, BIG)
    moves = _creation_moves(data)
    scratch_indexes: dict[str, list[str]] = {}
    original = _sqlite_copy._scratch

    def spy(path: Path, rows: pa.Table, into: _sqlite_copy.Shape | None) -> Path:
        done = original(path, rows, into)
        with sqlite3.connect(done) as db:
            names = [n for (n,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'index'")]
        scratch_indexes.setdefault("deals" if "title" in rows.column_names else "stage_moves", []).extend(names)
        return done

    both = [deals, stage_moves]
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(_sqlite_copy, "_scratch", spy)
        with ws.transaction(bulk=both) as conn, bulk_rows(conn, both, 2 * BIG) as insert:
            insert([(deals, data), (stage_moves, moves)])
    assert scratch_indexes["stage_moves"] == []  # bare records
    assert len(scratch_indexes["deals"]) == 2  # the unique external id and (pipeline, stage)
    with ws.engine.connect() as conn:
        names = {row[1] for row in conn.exec_driver_sql("PRAGMA index_list(stage_moves)")}
        assert names == {"ix_stage_moves_pipeline_deal", "ix_stage_moves_deal"}
        assert conn.exec_driver_sql("PRAGMA integrity_check").scalar() == "ok"
        plan = " ".join(
            str(r) for r in conn.exec_driver_sql("EXPLAIN QUERY PLAN SELECT id FROM stage_moves WHERE deal_id = 7")
        )
        assert "ix_stage_moves_deal" in plan
        assert conn.scalar(select(func.count()).select_from(stage_moves).where(stage_moves.c.deal_id == 7)) == 1
    ws.close()


def test_copy_rows_calls_back_once_per_table_as_soon_as_all_its_rows_are_in(tmp_path: Path) -> None:
    ws = Workspace.connect(f"sqlite:///{tmp_path / 'ws.db'}")
    data = _deals(ws, BIG)
    moves = pa.table(
        {
            "id": np.arange(1, 2 * _sqlite_copy.SLICE_ROWS + 1, dtype=np.int64),  # two slices
            "deal_id": np.resize(data.column("id").to_numpy(), 2 * _sqlite_copy.SLICE_ROWS),
            "pipeline_id": np.full(2 * _sqlite_copy.SLICE_ROWS, data.column("pipeline_id")[0].as_py()),
            "stage_id": np.full(2 * _sqlite_copy.SLICE_ROWS, data.column("stage_id")[0].as_py()),
            "at": np.zeros(2 * _sqlite_copy.SLICE_ROWS, np.int64),
        }
    )
    calls: list[tuple[str, int]] = []
    both = [deals, stage_moves]
    with ws.transaction(bulk=both) as conn:

        def copied(table: object) -> None:
            calls.append((table.name, conn.scalar(select(func.count()).select_from(table))))  # type: ignore[attr-defined]

        _sqlite_copy.copy_rows(conn, [(deals, data), (stage_moves, moves)], set(both), copied)
    assert sorted(calls) == [("deals", BIG), ("stage_moves", 2 * _sqlite_copy.SLICE_ROWS)]
    ws.close()


@pytest.mark.parametrize("ids", [np.arange(1001, 1101), np.r_[np.arange(1, 51), np.arange(61, 111)]])
def test_a_scratch_file_keeps_the_ids_given(tmp_path: Path, ids: np.ndarray) -> None:
    """Ids that follow one another are left to SQLite after the first row's (each new row gets the largest id
    plus one); the rows keep the ids given either way."""
    ws = Workspace.connect(f"sqlite:///{tmp_path / 'ws.db'}")
    data = _deals(ws, len(ids)).set_column(0, "id", pa.array(ids, pa.int64()))
    with ws.engine.connect() as conn:
        shaped = shape(conn.connection.driver_connection, "stage_moves")  # type: ignore[arg-type]
    assert shaped is not None and shaped.rowid == "id"
    moves = _creation_moves(data).set_column(0, "id", pa.array(ids, pa.int64()))
    scratch = _sqlite_copy._scratch(tmp_path / "moves.db", moves, shaped)
    with sqlite3.connect(scratch) as db:
        assert [i for (i,) in db.execute("SELECT id FROM rows ORDER BY id")] == ids.tolist()
        assert db.execute("SELECT count(*) FROM rows WHERE deal_id = id").fetchone() == (len(ids),)
    ws.close()


def test_a_scratch_file_leaves_out_columns_null_throughout_unless_they_have_a_default(tmp_path: Path) -> None:
    """A column null in every row is not bound when it has no default (the record is the same); with a default
    it is, or the row would get the default instead of the null."""
    ws = Workspace.connect(f"sqlite:///{tmp_path / 'ws.db'}")
    with ws.engine.connect() as conn:
        raw = conn.connection.driver_connection
        raw.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, tag TEXT DEFAULT 'x', note TEXT)")
        shaped = shape(raw, "notes")  # type: ignore[arg-type]
    assert shaped is not None and shaped.defaults == {"tag"}
    blank = pa.array([None] * 3, pa.string())
    rows = pa.table({"id": pa.array([1, 2, 3], pa.int64()), "tag": blank, "note": blank})
    scratch = _sqlite_copy._scratch(tmp_path / "notes.db", rows, shaped)
    with sqlite3.connect(scratch) as db:
        landed = db.execute("SELECT id, tag, note FROM rows ORDER BY id").fetchall()
    assert landed == [(i, None, None) for i in (1, 2, 3)]
    ws.close()
