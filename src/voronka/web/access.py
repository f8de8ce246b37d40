"""Who may see and change what: every route asks these functions, never the role directly.

Rules: admins and heads see and change every deal; a manager sees, moves and edits only the deals they own, and
sees only their own numbers. A deal a user may not see is reported as not found, so that its existence does not
leak either.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ParamSpec, TypeVar

from fastapi import Request
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from voronka.domain.deal import Deal
from voronka.errors import NotFoundError, VoronkaError
from voronka.service.accounts import Account
from voronka.service.workspace import Workspace
from voronka.store.schema import activities

# Ids and versions are 32-bit integers in the database (PostgreSQL's INTEGER): larger numbers cannot name anything.
DB_INT_MAX = 2_147_483_647


class Forbidden(VoronkaError):
    """The user's role does not allow this action."""


def workspace(request: Request) -> Workspace:
    """The request's own Workspace object over the app's shared engine (and its connection pool).

    A Workspace keeps its open transaction on itself, so one object must not serve two threads at once: the
    server runs requests on a thread pool, and each request gets its own.
    """
    ws = request.scope.get("voronka_ws")
    if ws is None:
        ws = Workspace(request.app.state.ws.engine)
        request.scope["voronka_ws"] = ws
    return ws  # type: ignore[no-any-return]


P = ParamSpec("P")
R = TypeVar("R")


async def in_db(request: Request, fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> R:
    """Run a short piece of blocking workspace code for an ``async`` route.

    On SQLite it runs right here, on the event loop: its statements take microseconds (no network) and writes
    run one at a time anyway (``SqliteWriteQueue``), so the two thread hops of a sync route (the dependency's
    and the endpoint's) would cost more CPU than the work itself. Elsewhere (PostgreSQL) every statement waits
    for the network, and the code runs on the thread pool so that the loop serves others meanwhile. Only for
    bounded work (one deal, one token): reports and boards stay on the thread pool.
    """
    if request.app.state.inline_db:
        return fn(*args, **kwargs)
    return await run_in_threadpool(fn, *args, **kwargs)


def can_see(account: Account, deal: Deal) -> bool:
    return account.sees_all or (deal.owner is not None and deal.owner == account.name)


def visible_deal(ws: Workspace, account: Account, deal_id: int) -> Deal:
    """The deal when ``account`` may see it; otherwise the same error as for a deal that does not exist."""
    try:
        deal = ws.deal(deal_id)
    except NotFoundError:
        deal = None
    if deal is None or not can_see(account, deal):
        raise NotFoundError(f"No deal with id {deal_id} that you can see. Open the board to find your deals.")
    return deal


def movable_deal_id(ws: Workspace, account: Account, deal_id: int) -> int:
    """``deal_id`` when ``account`` may move the deal. Heads and admins may move any deal, so no read is spent
    on them (the move itself reports a deal that does not exist); managers' deals are read and checked."""
    return deal_id if account.sees_all else visible_deal(ws, account, deal_id).id


def visible_activity_deal(ws: Workspace, account: Account, activity_id: int) -> Deal:
    """The deal of an activity, when ``account`` may see that deal."""
    with ws.engine.connect() as conn:
        deal_id = conn.scalar(select(activities.c.deal_id).where(activities.c.id == activity_id))
    if deal_id is None:
        raise NotFoundError(f"No activity with id {activity_id} that you can see.")
    try:
        return visible_deal(ws, account, int(deal_id))
    except NotFoundError:
        raise NotFoundError(f"No activity with id {activity_id} that you can see.") from None


def owner_scope(account: Account, requested: str | None) -> str | None:
    """The owner a list is limited to: managers always see their own deals only."""
    if account.sees_all:
        return requested or None
    return account.name


def require_admin(account: Account) -> None:
    if account.role != "admin":
        raise Forbidden("Only an admin can manage users. Ask your admin, or sign in as one.")


def check_edit(account: Account, fields: dict[str, object]) -> None:
    """Managers cannot hand a deal to someone else."""
    if not account.sees_all and "owner" in fields and fields["owner"] != account.name:
        raise Forbidden("A manager cannot change a deal's owner; ask your head of sales.")
