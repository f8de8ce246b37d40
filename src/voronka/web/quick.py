"""The API's hot path on PostgreSQL: ``POST /api/v1/deals/{id}/move`` by bearer token as one statement.

:class:`QuickMoveLane` is an ASGI middleware in front of the routes. For a move request with a bearer token and
a JSON body that names the stage by id and gives no loss reason, it runs :data:`voronka.store.quick_move.
QUICK_MOVE_SQL` (the token, the deal's owner and version, the move's rules, the update and the log row in one
statement) and, when that wrote the move, answers 200 with the route's body itself. Every other request, and
every move the statement did not write (unknown token, another manager's deal, stale version, a rule broken,
a database error), goes on to the routes *unchanged* (the body it read is handed on as it came): the route
``move`` in :mod:`voronka.web.api` then decides and answers exactly as without the lane (401, 404, 409, 422, or
200 when its rules allow a move the statement is too strict for). Sessions (cookies, with their CSRF check)
never take the lane.

Why: the statement spares two of the general path's three statements (and transactions), and the lane spares
FastAPI's per-request work (dependencies, body and response models): on the benchmark (bench/web.py) the
server's CPU per move falls to less than half. It runs on the server loop's own psycopg connections while the
app's lifespan runs (:class:`~voronka.store.quick_move.AsyncMoves`), else on the thread pool.
"""

from __future__ import annotations

import re
import sqlite3
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError
from sqlalchemy.exc import DBAPIError
from starlette.concurrency import run_in_threadpool

from voronka.service.accounts import token_digest
from voronka.store.quick_move import QuickMove, quick_move
from voronka.web.access import DB_INT_MAX

_MOVE_PATH = re.compile(r"/api/v1/deals/([1-9][0-9]{0,9})/move")
_MAX_BODY = 64 * 1024  # a move is a few dozen bytes; a larger body goes to the route (and its limits)


class QuickMoveLane:
    """See the module. ``state`` is the app's state: ``quick_moves`` (on or off), ``async_moves`` (the
    lifespan's connections or None), ``ws`` (the engine for the thread-pool way)."""

    def __init__(self, app: Any, state: Any) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or not self.state.quick_moves:
            await self.app(scope, receive, send)
            return
        found = _MOVE_PATH.fullmatch(scope["path"])
        auth = ctype = None  # the first of each, as the route reads them (Starlette's headers.get)
        for name, value in scope["headers"]:
            if name == b"authorization" and auth is None:
                auth = value
            elif name == b"content-type" and ctype is None:
                ctype = value
        auth, ctype = auth or b"", ctype or b""
        if (
            found is None
            or int(found.group(1)) > DB_INT_MAX
            or auth[:7].lower() != b"bearer "
            or ctype.split(b";")[0].strip().lower() != b"application/json"
        ):
            await self.app(scope, receive, send)
            return
        # Read the body, keeping every message to hand on as it came when the lane does not answer.
        messages: list[dict[str, Any]] = []
        size = 0
        complete = False
        while size <= _MAX_BODY:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                break
            size += len(message.get("body", b""))
            if not message.get("more_body", False):
                complete = size <= _MAX_BODY
                break
        if complete and await self._move(int(found.group(1)), auth, messages, send):
            return

        async def replay() -> Any:
            return messages.pop(0) if messages else await receive()

        await self.app(scope, replay, send)

    async def _move(self, deal_id: int, auth: bytes, messages: list[dict[str, Any]], send: Any) -> bool:
        """Write the move and answer 200; False (nothing written, nothing sent) when the route must decide."""
        from voronka.web.api import MoveIn, MoveOut

        try:
            body = MoveIn.model_validate_json(b"".join(m.get("body", b"") for m in messages))
        except ValidationError:
            return False
        if type(body.stage) is not int or not 0 < body.stage <= DB_INT_MAX or body.reason:
            return False
        token = auth.decode("latin-1")[7:].strip()  # as the route reads it (Starlette decodes headers as latin-1)
        q = QuickMove(token_digest(token), deal_id, body.stage, body.expected_version, body.comment, datetime.now(UTC))
        moves = self.state.async_moves
        try:
            if self.state.inline_db:  # SQLite: microseconds, inside the app's SQLite write queue (see in_db)
                done = quick_move(self.state.ws.engine, q)
            elif moves is not None:
                done = await moves.move(q)
            else:
                done = await run_in_threadpool(quick_move, self.state.ws.engine, q)
        except (DBAPIError, sqlite3.Error, _psycopg_error()):
            return False  # the route tries again and reports what fails (503 when the database is down)
        if done is None:
            return False
        payload = MoveOut.model_validate(done).model_dump_json().encode()
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-length", str(len(payload)).encode()), (b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": payload})
        return True


def _psycopg_error() -> type[Exception]:
    import psycopg

    return psycopg.Error
