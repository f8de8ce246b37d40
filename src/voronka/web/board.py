"""The board of a funnel: one column per stage, with the count and sum of its deals and the first cards.

Terms:

- *Count* and *sum* of a column are over every deal in the stage now that passes the filters (owner, source,
  segment, created period, search), not only the cards shown.
- A column shows at most ``limit`` cards at a time ("show more" loads the next ones): open stages oldest in the
  stage first (the ones waiting longest), won and lost stages newest first.
- *Days in stage*: from the deal's last move to now. *Stuck*: as in :mod:`voronka.analytics.stuck` (over the
  stage's SLA with no open activity planned ahead).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import ColumnElement, and_, func, or_, select

from voronka.domain.parse import parse_time
from voronka.domain.pipeline import Pipeline, Stage
from voronka.errors import InputError
from voronka.service.workspace import Workspace
from voronka.store.schema import deals, users

CARDS_PER_COLUMN = 30


@dataclass(frozen=True)
class BoardFilters:
    """What the board shows: ``owner`` is a user's name; ``created_from``/``created_to`` is ``[from, to)``."""

    owner: str | None = None
    source: str | None = None
    segment: str | None = None
    created_from: datetime | None = None
    created_to: datetime | None = None
    q: str | None = None

    @classmethod
    def parse(cls, **raw: str | None) -> BoardFilters:
        def clean(key: str) -> str | None:
            value = (raw.get(key) or "").strip()
            return value or None

        start = clean("created_from")
        end = clean("created_to")
        made = cls(
            owner=clean("owner"),
            source=clean("source"),
            segment=clean("segment"),
            created_from=None if start is None else parse_time(start, what="created from date"),
            created_to=None if end is None else parse_time(end, what="created to date"),
            q=clean("q"),
        )
        if made.created_from and made.created_to and made.created_from >= made.created_to:
            raise InputError(
                f"The created period is empty: from {start} is not before to {end}. Give a later 'to' date."
            )
        return made

    def query(self) -> dict[str, str]:
        """The filters as query parameters (for links that keep them)."""
        out = {
            "owner": self.owner,
            "source": self.source,
            "segment": self.segment,
            "created_from": self.created_from.date().isoformat() if self.created_from else None,
            "created_to": self.created_to.date().isoformat() if self.created_to else None,
            "q": self.q,
        }
        return {k: v for k, v in out.items() if v}


@dataclass
class Card:
    id: int
    title: str
    amount: Decimal | None
    currency: str
    owner: str | None
    stage_id: int
    version: int
    days_in_stage: float
    stuck: bool


@dataclass
class Column:
    stage: Stage
    count: int
    sums: dict[str, Decimal]  # currency -> sum of amounts
    cards: list[Card] = field(default_factory=list)

    @property
    def more(self) -> int:
        return self.count - len(self.cards)


def _where(pipe: Pipeline, f: BoardFilters) -> list[ColumnElement[bool]]:
    cond: list[ColumnElement[bool]] = [deals.c.pipeline_id == pipe.id]
    if f.owner:
        cond.append(users.c.name == f.owner)
    if f.source:
        cond.append(deals.c.source == f.source)
    if f.segment:
        cond.append(deals.c.segment == f.segment)
    if f.created_from:
        cond.append(deals.c.created_at >= f.created_from)
    if f.created_to:
        cond.append(deals.c.created_at < f.created_to)
    if f.q:
        # SQLite folds only ASCII letters in LIKE; try the text as typed, lower-case and capitalised too.
        variants = {f.q, f.q.lower(), f.q.capitalize(), f.q.upper()}
        escaped = [v.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") for v in variants]
        cond.append(or_(*[deals.c.title.ilike(f"%{v}%", escape="\\") for v in escaped]))
    return cond


def _from() -> Any:
    return deals.outerjoin(users, users.c.id == deals.c.owner_id)


def build_board(
    ws: Workspace,
    pipe: Pipeline,
    f: BoardFilters,
    *,
    limit: int = CARDS_PER_COLUMN,
    now: datetime | None = None,
) -> list[Column]:
    """The columns of the board, in stage order."""
    now = now or datetime.now(UTC)
    cond = _where(pipe, f)
    stuck = _stuck_ids(ws, pipe, now)
    with ws.engine.connect() as conn:
        totals = conn.execute(
            select(deals.c.stage_id, deals.c.currency, func.count(), func.sum(deals.c.amount))
            .select_from(_from())
            .where(*cond)
            .group_by(deals.c.stage_id, deals.c.currency)
        ).all()
        columns = []
        for stage in pipe.stages:
            rows = [r for r in totals if r[0] == stage.id]
            col = Column(
                stage,
                sum(int(r[2]) for r in rows),
                {r[1]: Decimal(str(r[3])) for r in rows if r[3] is not None},
            )
            if col.count:
                col.cards = _cards(conn, stage, cond, 0, limit, now, stuck)
            columns.append(col)
    return columns


def column_cards(
    ws: Workspace, pipe: Pipeline, stage: Stage, f: BoardFilters, *, offset: int, limit: int = CARDS_PER_COLUMN
) -> list[Card]:
    """The next cards of one column ("show more")."""
    now = datetime.now(UTC)
    with ws.engine.connect() as conn:
        return _cards(conn, stage, _where(pipe, f), offset, limit, now, _stuck_ids(ws, pipe, now))


def _cards(
    conn: Any,
    stage: Stage,
    cond: list[ColumnElement[bool]],
    offset: int,
    limit: int,
    now: datetime,
    stuck: set[int],
) -> list[Card]:
    order = (deals.c.stage_since.asc() if stage.is_open else deals.c.stage_since.desc(), deals.c.id)
    rows = conn.execute(
        select(
            deals.c.id,
            deals.c.title,
            deals.c.amount,
            deals.c.currency,
            users.c.name,
            deals.c.stage_id,
            deals.c.version,
            deals.c.stage_since,
        )
        .select_from(_from())
        .where(and_(*cond), deals.c.stage_id == stage.id)
        .order_by(*order)
        .offset(offset)
        .limit(limit)
    ).all()
    return [
        Card(
            r.id,
            r.title,
            r.amount,
            r.currency,
            r.name,
            r.stage_id,
            r.version,
            round((now - r.stage_since) / timedelta(days=1), 1),
            r.id in stuck,
        )
        for r in rows
    ]


def _stuck_ids(ws: Workspace, pipe: Pipeline, now: datetime) -> set[int]:
    return {d.id for d in ws.stuck(pipe.id, now=now).deals}


def filter_choices(ws: Workspace, pipe: Pipeline) -> dict[str, list[str]]:
    """The owners, sources and segments that occur in the pipeline (for the filter menus)."""
    with ws.engine.connect() as conn:
        base = select().select_from(_from()).where(deals.c.pipeline_id == pipe.id)

        def distinct(col: Any) -> list[str]:
            return sorted(v for v in conn.scalars(base.add_columns(col).distinct()) if v)

        return {
            "owner": distinct(users.c.name),
            "source": distinct(deals.c.source),
            "segment": distinct(deals.c.segment),
        }
