"""Engines for the workspace database, tuned per dialect."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url

from voronka.errors import InputError

WRITE = {"voronka_write": True}


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


def _tune_sqlite(engine: Engine) -> None:
    memory = engine.url.database in (None, "", ":memory:")

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        if not memory:
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        write = conn.get_execution_options().get("voronka_write", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


AFTER_TRANSACTION = "voronka.after_transaction"


def after_transaction(conn: Connection, fn: Callable[[], None]) -> None:
    """Run ``fn`` once the transaction ``conn`` is in has ended (committed or rolled back).

    :meth:`WorkspaceStore.transaction` runs these; on a connection used otherwise they run when it is next
    put through a transaction of the store, or never.
    """
    conn.info.setdefault(AFTER_TRANSACTION, []).append(fn)
