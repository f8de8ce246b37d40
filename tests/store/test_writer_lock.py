"""The SQLite writer lock: one Voronka writer at a time across processes, re-entrant within one, always given back."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.scenarios import T
from voronka.errors import MoveError
from voronka.service.workspace import Workspace
from voronka.store.engine import WriterLock, writer_lock


def _holder(path: str) -> subprocess.Popen[str]:
    """Another process that takes the lock on ``path``, says so, and holds it until its stdin closes."""
    code = textwrap.dedent(
        f"""
        import sys
        from voronka.store.engine import WriterLock
        lock = WriterLock({path!r})
        assert lock.acquire(blocking=False)
        print("held", flush=True)
        sys.stdin.read()
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


def _let_go(proc: subprocess.Popen[str]) -> None:
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.close()
    proc.wait(10)
    proc.stdout.close()


def test_another_process_holding_the_lock_keeps_this_one_out_until_it_lets_go(tmp_path: Path) -> None:
    path = str(tmp_path / "voronka.db-writer")
    holder = _holder(path)
    mine = WriterLock(path, patience=0.05)
    try:
        assert not mine.acquire(blocking=False)
        assert not mine.acquire()  # waited its patience, then gives up (SQLite's own locking takes over)
    finally:
        _let_go(holder)
    assert mine.acquire(blocking=False)
    assert mine.acquire(blocking=False)  # re-entrant within the process
    mine.release()
    mine.release()
    _let_go(_holder(path))  # free again: another process can take it


def test_every_write_gives_the_lock_back(sqlite_url: str) -> None:
    ws = Workspace.connect(sqlite_url)
    try:
        lock = writer_lock(ws.engine)
        assert lock is not None and Path(lock.path).name.endswith(".db-writer")
        pipe = ws.create_pipeline("Sales", stages=["Lead", "Call"], reasons=["Price"])
        deal = ws.add_deal(pipe.name, "Door", at=T("2026-01-10"))
        ws.move_deal(deal.id, "Call", at=T("2026-01-11"))
        with pytest.raises(MoveError):  # refused: the transaction rolls back
            ws.move_deal(deal.id, "Call", at=T("2026-01-12"))
        assert lock._depth == 0
        # A second workspace on the same file in this process shares the lock: no process waits for itself.
        again = Workspace.connect(sqlite_url)
        with ws.transaction():
            assert lock._depth == 1
            assert writer_lock(again.engine) is lock
        again.close()
        assert lock._depth == 0
    finally:
        ws.close()


def test_a_lock_file_that_cannot_be_opened_leaves_the_writes_to_sqlite(tmp_path: Path) -> None:
    lock = WriterLock(str(tmp_path / "no-such-folder" / "voronka.db-writer"))
    assert not lock.acquire()  # not taken, at once, and no error: SQLite's own locking keeps writers apart
    assert lock.patience == 0.0
