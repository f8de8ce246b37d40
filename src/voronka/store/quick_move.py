"""A deal's move by an API token in one statement (PostgreSQL) or one short transaction (SQLite): the web
API's hot path.

The general path (:meth:`WorkspaceStore.move_deal` after :func:`~voronka.service.accounts.token_account`) costs
three statements on PostgreSQL, each its own transaction and round trip: the token's account, the deal's state
(read), the version-checked write. :data:`QUICK_MOVE_SQL` does all three in one statement, in autocommit (its
own transaction), for the common case only: the stage given by id, no loss reason, the deal in the stage's
pipeline. It writes exactly when every rule of the general path holds:

- the token is known, not revoked, and its user active;
- the user is an admin or a head, or owns the deal (a manager moves only their own deals);
- the deal is at ``expected_version`` (the update re-checks it on the row it changes, so a concurrent change
  refuses the move: nothing is merged), in another stage of the same pipeline than the target;
- the move is not before the deal's last one, and a move to a lost stage needs no reason in that pipeline.

Otherwise it writes nothing and returns no row, and the caller runs the general path, which either writes the
move (its rules are the reference) or reports why not (401, 404, 409, 422). So this statement only ever
refuses more than the general path, never accepts more. The row it returns is what the response needs.

:class:`AsyncMoves` runs it on the server's event loop over a few psycopg async connections (no thread hop);
:func:`quick_move` runs it on a pooled connection of the engine (for callers without such a pool).

SQLite has no UPDATE in a WITH clause: there :func:`quick_move` runs :data:`QUICK_MOVE_SQLITE`, the same checks
as one read, then the log row and the version-checked update, in one ``BEGIN IMMEDIATE`` transaction on the
engine's raw sqlite3 connection (microseconds each; the web app calls it inside its SQLite write queue).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine

from voronka.domain.deal import StageMove
from voronka.store.engine import one_statement
from voronka.store.types import to_micros

QUICK_MOVE_SQL = """\
WITH account AS (
    SELECT u.id, u.name, u.role IN ('admin', 'head') AS sees_all
    FROM api_tokens t JOIN users u ON u.id = t.user_id
    WHERE t.token_hash = %(digest)s AND NOT t.revoked AND u.active
), target AS (
    SELECT d.id, d.pipeline_id, d.stage_id AS from_stage_id, account.id AS author_id, account.name AS author
    FROM deals d
    JOIN account ON account.sees_all OR d.owner_id = account.id
    JOIN stages s ON s.id = %(stage_id)s AND s.pipeline_id = d.pipeline_id AND s.id <> d.stage_id
    JOIN pipelines p ON p.id = d.pipeline_id
    WHERE d.id = %(deal_id)s AND d.version = %(version)s AND d.stage_since <= %(at)s
      AND (s.kind <> 'lost' OR NOT p.reason_required)
), advanced AS (
    UPDATE deals SET stage_id = %(stage_id)s, stage_since = %(at)s, version = deals.version + 1
    FROM target
    WHERE deals.id = target.id AND deals.version = %(version)s
    RETURNING target.id, target.pipeline_id, target.from_stage_id, target.author_id, target.author
), logged AS (
    INSERT INTO stage_moves (deal_id, pipeline_id, from_stage_id, stage_id, at, author_id, reason_id, comment)
    SELECT id, pipeline_id, from_stage_id, %(stage_id)s, %(at)s, author_id, NULL, %(comment)s FROM advanced
    RETURNING id, pipeline_id, from_stage_id
)
SELECT logged.id, logged.pipeline_id, logged.from_stage_id, advanced.author FROM logged, advanced"""


# SQLite: the checks of QUICK_MOVE_SQL as one read (times are microseconds since the epoch, booleans 0/1),
# then the log row and the deal's version-checked update, all in one write transaction.
QUICK_MOVE_SQLITE = """\
SELECT d.pipeline_id, d.stage_id, u.id, u.name
FROM api_tokens t
JOIN users u ON u.id = t.user_id
JOIN deals d ON d.id = :deal_id AND (u.role IN ('admin', 'head') OR d.owner_id = u.id)
JOIN stages s ON s.id = :stage_id AND s.pipeline_id = d.pipeline_id AND s.id <> d.stage_id
JOIN pipelines p ON p.id = d.pipeline_id
WHERE t.token_hash = :digest AND NOT t.revoked AND u.active
  AND d.version = :version AND d.stage_since <= :at AND (s.kind <> 'lost' OR NOT p.reason_required)"""
_SQLITE_LOG = (
    "INSERT INTO stage_moves (deal_id, pipeline_id, from_stage_id, stage_id, at, author_id, reason_id, comment) "
    "VALUES (:deal_id, :pipeline_id, :from_stage_id, :stage_id, :at, :author_id, NULL, :comment)"
)
_SQLITE_ADVANCE = (
    "UPDATE deals SET stage_id = :stage_id, stage_since = :at, version = version + 1 "
    "WHERE id = :deal_id AND version = :version"
)


@dataclass(frozen=True, slots=True)
class QuickMove:
    """A move for :data:`QUICK_MOVE_SQL`: ``digest`` is the API token's SHA-256 (hex)."""

    digest: str
    deal_id: int
    stage_id: int
    expected_version: int
    comment: str | None
    at: datetime

    def params(self) -> dict[str, Any]:
        return {
            "digest": self.digest,
            "deal_id": self.deal_id,
            "stage_id": self.stage_id,
            "version": self.expected_version,
            "at": self.at.astimezone(UTC),
            "comment": self.comment,
        }

    def result(self, row: Any) -> StageMove | None:
        """The move written, as the general path reports it; None when nothing was written."""
        if row is None:
            return None
        move_id, pipeline_id, from_stage_id, author = row
        return StageMove(
            int(move_id),
            self.deal_id,
            int(pipeline_id),
            from_stage_id,
            self.stage_id,
            self.at.astimezone(UTC),
            author.strip(),
            None,
            self.comment,
        )


def supported(engine: Engine) -> bool:
    return engine.dialect.name in ("postgresql", "sqlite")


def quick_move(engine: Engine, move: QuickMove) -> StageMove | None:
    """Write ``move`` when every rule holds (blocking); None when nothing was written."""
    if engine.dialect.name == "sqlite":
        return _quick_move_sqlite(engine, move)
    with engine.connect().execution_options(**one_statement(engine)) as conn:
        return move.result(conn.exec_driver_sql(QUICK_MOVE_SQL, move.params()).first())


def _quick_move_sqlite(engine: Engine, move: QuickMove) -> StageMove | None:
    params = {**move.params(), "at": to_micros(move.at)}
    fairy = engine.raw_connection()  # the pool's connection, with the engine's pragmas (WAL, foreign keys, ...)
    try:
        db = fairy.driver_connection
        db.execute("BEGIN IMMEDIATE")
        try:
            found = db.execute(QUICK_MOVE_SQLITE, params).fetchone()
            if found is None:
                db.rollback()
                return None
            pipeline_id, from_stage_id, author_id, author = found
            log = {**params, "pipeline_id": pipeline_id, "from_stage_id": from_stage_id, "author_id": author_id}
            move_id = db.execute(_SQLITE_LOG, log).lastrowid
            if db.execute(_SQLITE_ADVANCE, params).rowcount != 1:  # never, after the read in this transaction
                db.rollback()
                return None
            db.commit()
        except BaseException:
            db.rollback()
            raise
    finally:
        fairy.close()
    return move.result((move_id, pipeline_id, from_stage_id, author))


class AsyncMoves:
    """Up to ``size`` psycopg async connections (autocommit) of one event loop that run :data:`QUICK_MOVE_SQL`,
    prepared once per connection. Made and closed by the web app's lifespan (the server's loop)."""

    def __init__(self, engine: Engine, size: int = 8) -> None:
        args, params = engine.dialect.create_connect_args(engine.url)
        params.pop("context", None)  # the sync dialect's adapters: the defaults do for these parameters
        self._args, self._params = args, params
        self._idle: list[Any] = []
        self._slots = asyncio.Semaphore(size)
        self._closed = False

    async def move(self, move: QuickMove) -> StageMove | None:
        import psycopg

        async with self._slots:
            if self._idle:
                conn = self._idle.pop()
            else:
                conn = await psycopg.AsyncConnection.connect(*self._args, **self._params, autocommit=True)
            done = False
            try:
                cur = await conn.execute(QUICK_MOVE_SQL, move.params(), prepare=True)
                row = await cur.fetchone()
                done = True
            finally:
                # A connection whose statement failed or was cancelled may be in any state: closed, not reused.
                if done and not self._closed:
                    self._idle.append(conn)
                else:
                    await conn.close()
        return move.result(row)

    async def close(self) -> None:
        self._closed = True
        while self._idle:
            await self._idle.pop().close()
