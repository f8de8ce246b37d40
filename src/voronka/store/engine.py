"""Engines for the workspace database, tuned per dialect."""

from __future__ import annotations

import fcntl
import itertools
import os
import threading
import time
import weakref
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url

from voronka.errors import DanglingReferenceError, InputError

WRITE = {"voronka_write": True}
# A write transaction of a bulk load: on SQLite, foreign keys are not enforced row by row (which also lets SQLite
# copy whole records between tables of one shape); check_foreign_keys runs before its commit instead.
BULK_OPTION = "voronka_bulk"


def make_engine(url: str) -> Engine:
    """Create an engine. SQLite gets WAL, foreign keys, and ``BEGIN IMMEDIATE`` for write transactions so
    that two writers queue on the busy timeout instead of failing on a lock upgrade."""
    try:
        parsed = make_url(url)
    except Exception as exc:
        raise InputError(
            f"Malformed database URL {url!r}: use e.g. sqlite:///voronka.db or postgresql+psycopg://user@host/dbname."
        ) from exc
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    kwargs: dict[str, Any] = {}
    if parsed.get_backend_name() == "sqlite":
        kwargs["connect_args"] = {"timeout": 30}
    engine = create_engine(parsed, **kwargs)
    if engine.dialect.name == "sqlite":
        _tune_sqlite(engine)
    return engine


# This process's open sqlite3 connections per database file (an id per connection). Another copy of SQLite in
# the process (ADBC's) must not read a file while one of them may close: see open_sqlite_connections.
_OPEN: defaultdict[str, set[int]] = defaultdict(set)
_IDS = itertools.count()
_OPEN_ID = "voronka_open_id"


def open_sqlite_connections(engine: Engine) -> int:
    """How many sqlite3 connections of this process, of any engine, are open on ``engine``'s database file:
    checked out, idle in a pool, or dropped and waiting for the garbage collector to close them."""
    return len(_OPEN.get(_file_key(engine), ())) if engine.dialect.name == "sqlite" else 0


def _file_key(engine: Engine) -> str:
    return os.path.realpath(engine.url.database or ":memory:")


class WriterLock:
    """One Voronka writer at a time on a SQLite file, across this machine's processes: ``flock`` on a file beside
    the database (``voronka.db-writer``), taken before ``BEGIN IMMEDIATE`` and given back when the connection
    returns to its pool.

    SQLite keeps writers apart itself, but a writer that finds the file locked sleeps in SQLite's busy handler
    in steps of up to 100 ms, so with two server processes (``voronka serve --workers 2``) a few writes in a
    hundred waited 10-100 ms for a lock freed after a fraction of a millisecond. Here a waiter polls every
    0.2 ms. Correctness never rests on this lock (SQLite's own locking does that): other programs that write
    the file without it are still kept apart by SQLite, and a waiter that has not got it after ``patience``
    seconds goes on without it, to SQLite's busy timeout and its clear error.

    One object per file per process (:func:`writer_lock`), re-entrant by count: threads of one process share it
    (SQLite orders them), so a process never waits for itself.
    """

    def __init__(self, path: str, patience: float = 30.0) -> None:
        self.path = path
        self.patience = patience
        self._mutex = threading.Lock()
        self._fd: int | None = None
        self._depth = 0

    def _try(self) -> bool:
        with self._mutex:
            if self._depth == 0:
                if self._fd is None:
                    try:
                        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
                    except OSError:  # a folder or a lock file this user may not write: SQLite's locking alone
                        self.patience = 0.0
                        return False
                try:
                    fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    return False
            self._depth += 1
            return True

    def acquire(self, *, blocking: bool = True) -> bool:
        """Take the lock; without ``blocking``, only if it is free now. False: not taken (nothing to release)."""
        if self._try():
            return True
        if not blocking:
            return False
        deadline = time.monotonic() + self.patience
        while time.monotonic() < deadline:
            time.sleep(0.0002)
            if self._try():
                return True
        return False

    def release(self) -> None:
        with self._mutex:
            self._depth -= 1
            if self._depth == 0 and self._fd is not None:
                fcntl.flock(self._fd, fcntl.LOCK_UN)


_WRITER_LOCKS: dict[str, WriterLock] = {}
_WRITER_LOCKS_MUTEX = threading.Lock()
_HOLDS_WRITER = "voronka_holds_writer_lock"


def writer_lock(engine: Engine) -> WriterLock | None:
    """The process's :class:`WriterLock` of ``engine``'s SQLite file; None for other databases and in-memory ones."""
    if engine.dialect.name != "sqlite" or engine.url.database in (None, "", ":memory:"):
        return None
    key = _file_key(engine)
    with _WRITER_LOCKS_MUTEX:
        found = _WRITER_LOCKS.get(key)
        if found is None:
            found = _WRITER_LOCKS[key] = WriterLock(key + "-writer")
        return found


def _tune_sqlite(engine: Engine) -> None:
    memory = engine.url.database in (None, "", ":memory:")
    key = _file_key(engine)
    lock = writer_lock(engine)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, record: Any) -> None:
        if not memory:
            ident = next(_IDS)
            _OPEN[key].add(ident)
            record.info[_OPEN_ID] = ident
            weakref.finalize(record, _OPEN[key].discard, ident)  # a pool dropped with its connections in it
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        if not memory:
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.close()

    @event.listens_for(engine, "checkin")
    def _give_back_writer_lock(_dbapi_conn: Any, record: Any) -> None:
        """The connection is back in the pool (or closed): its writer lock, if it took one, goes back."""
        if record is not None and record.info.pop(_HOLDS_WRITER, False) and lock is not None:
            lock.release()

    @event.listens_for(engine, "close")
    def _on_close(dbapi_conn: Any, record: Any) -> None:
        if record is not None and _OPEN_ID in record.info:
            _OPEN[key].discard(record.info.pop(_OPEN_ID))
        _give_back_writer_lock(dbapi_conn, record)

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        options = conn.get_execution_options()
        bulk = options.get(BULK_OPTION)
        if bulk:
            # Only outside a transaction does this pragma take effect; WorkspaceStore.transaction turns it back on.
            conn.exec_driver_sql("PRAGMA foreign_keys=OFF")
        write = options.get("voronka_write", False)
        if write and lock is not None and not conn.info.get(_HOLDS_WRITER) and lock.acquire():
            conn.info[_HOLDS_WRITER] = True  # given back when the connection returns to the pool
        if bulk and not memory:
            _leave_wal(conn)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


# Set on a connection whose bulk transaction runs with a rollback journal: end_bulk puts WAL back after it.
LEFT_WAL = "voronka.left_wal"


def _leave_wal(conn: Any) -> None:
    """A bulk load's transaction with a rollback journal instead of the WAL, when no other connection (of any
    process) has the database open: the pages it appends past the file's end are then written once, to the
    database, where in WAL mode they went to the WAL first and to the database again at the checkpoint — for a
    million-row import 300 MiB more to write and sync, and a CPU second. Atomicity is the rollback journal's:
    the pages the load changes that were there before are journaled (and synced, ``synchronous=FULL``), the
    pages past the old end are cut off on a rollback, and a crash leaves a hot journal that the next connection
    rolls back. With another connection open the switch fails at once (no waiting) and the load keeps the WAL.
    """
    raw = conn.connection.driver_connection
    timeout = raw.execute("PRAGMA busy_timeout").fetchone()[0]
    try:
        raw.execute("PRAGMA busy_timeout=0")
        mode = raw.execute("PRAGMA main.journal_mode=DELETE").fetchone()[0]
    except Exception:  # noqa: BLE001 - "database is locked": another connection has it open
        mode = "wal"
    finally:
        raw.execute(f"PRAGMA busy_timeout={int(timeout)}")
    if mode == "delete":
        raw.execute("PRAGMA synchronous=FULL")
        conn.info[LEFT_WAL] = True


def end_bulk(conn: Connection) -> None:
    """Undo what ``_on_begin`` did for a bulk transaction on SQLite: foreign keys on again and, when it ran with a
    rollback journal (see :func:`_leave_wal`), WAL and ``synchronous=NORMAL`` back (waiting the busy timeout for
    readers that came meanwhile). Raises when it cannot: the caller then drops the connection."""
    raw: Any = conn.connection.driver_connection
    raw.execute("PRAGMA foreign_keys=ON")
    if conn.info.pop(LEFT_WAL, False):
        mode = raw.execute("PRAGMA main.journal_mode=WAL").fetchone()[0]
        raw.execute("PRAGMA synchronous=NORMAL")
        if mode != "wal":
            raise RuntimeError(f"could not put the workspace back in WAL mode (it is in {mode} mode)")


def one_statement(engine: Engine) -> dict[str, Any]:
    """Execution options for a connection that runs one statement at a time (a read, or a write that is whole in
    one statement): on PostgreSQL no transaction around it (autocommit), which spares the BEGIN and the
    COMMIT or ROLLBACK, two of its three round trips; nothing elsewhere."""
    return {"isolation_level": "AUTOCOMMIT"} if engine.dialect.name == "postgresql" else {}


AFTER_TRANSACTION = "voronka.after_transaction"


def after_transaction(conn: Connection, fn: Callable[[], None]) -> None:
    """Run ``fn`` once the transaction ``conn`` is in has ended (committed or rolled back).

    :meth:`WorkspaceStore.transaction` runs these; on a connection used otherwise they run when it is next
    put through a transaction of the store, or never.
    """
    conn.info.setdefault(AFTER_TRANSACTION, []).append(fn)


VERIFIED = "voronka.verified_references"


def verified(conn: Connection, tables: set[str], changes: int) -> None:
    """Record that every row of ``tables`` had its references checked by the loader itself, and the connection's
    count of changed rows then: :func:`check_foreign_keys` skips these tables while that count stays."""
    conn.info[VERIFIED] = (tables, changes)


def check_foreign_keys(conn: Connection, tables: Sequence[str]) -> None:
    """Refuse (raise, so that the transaction rolls back) when a row of ``tables`` refers to a missing row.

    For SQLite transactions that did not enforce foreign keys row by row; elsewhere (and when they are
    enforced) there is nothing to check. Tables a bulk copy filled and checked column-wise (see
    :func:`verified`) are not scanned again when no row changed since.
    """
    done, changes = conn.info.pop(VERIFIED, (set(), None))
    if conn.dialect.name != "sqlite" or conn.exec_driver_sql("PRAGMA foreign_keys").scalar():
        return
    if conn.connection.driver_connection.total_changes != changes:  # type: ignore[union-attr]
        done = set()
    bad = []
    for table in (t for t in tables if t not in done):
        bad += conn.exec_driver_sql(f"PRAGMA foreign_key_check({table})").fetchmany(5 - len(bad))
        if len(bad) >= 5:
            break
    if bad:
        shown = "; ".join(
            f"a row of {t} (rowid {rowid}) refers to a missing row of {parent}" for t, rowid, parent, _ in bad
        )
        raise DanglingReferenceError(
            f"The write would leave rows that refer to rows that do not exist ({shown}); nothing was written. "
            "This is a bug: report it with the file or the command that caused it."
        )
