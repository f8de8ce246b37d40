"""Stuck deals: open deals that have sat in a stage longer than its SLA with no open activity due ahead."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, exists, false, or_, select

from voronka.store.schema import activities, deals, pipelines, stages, users
from voronka.store.workspace import WorkspaceStore

if TYPE_CHECKING:
    import pandas as pd

STUCK_DEFINITION = (
    "Open deals in a stage longer than the stage's SLA, with no open activity (task, call, meeting) due "
    "in the future. Stages without an SLA never make a deal stuck."
)


@dataclass
class StuckDeal:
    id: int
    title: str
    pipeline: str
    stage: str
    owner: str | None
    amount: Decimal | None
    currency: str
    in_stage_since: datetime
    days_in_stage: float
    sla_days: float
    days_over_sla: float


@dataclass
class StuckResult:
    now: datetime
    deals: list[StuckDeal]
    definition: str = STUCK_DEFINITION

    def to_dict(self) -> dict[str, Any]:
        return {
            "now": self.now.isoformat(),
            "definition": self.definition,
            "deals": [
                {
                    **asdict(d),
                    "amount": None if d.amount is None else str(d.amount),
                    "in_stage_since": d.in_stage_since.isoformat(timespec="seconds"),
                }
                for d in self.deals
            ],
        }

    def to_json(self, **kwargs: Any) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, **kwargs)

    def to_pandas(self) -> pd.DataFrame:
        import pandas as pd

        return pd.DataFrame([asdict(d) for d in self.deals], columns=list(StuckDeal.__dataclass_fields__))


def find_stuck(store: WorkspaceStore, pipeline: str | int | None = None, now: datetime | None = None) -> StuckResult:
    """List stuck deals, the longest over their SLA first."""
    now = now or datetime.now(UTC)
    pipes = [store.pipeline(pipeline)] if pipeline is not None else store.pipelines()
    limits = [(s, now - timedelta(days=s.sla_days)) for p in pipes for s in p.open_stages if s.sla_days]
    if not limits:
        return StuckResult(now, [])
    over = or_(false(), *[and_(deals.c.stage_id == s.id, deals.c.stage_since < cutoff) for s, cutoff in limits])
    planned = exists().where(
        activities.c.deal_id == deals.c.id, activities.c.done == false(), activities.c.due_at > now
    )
    stmt = (
        select(
            deals.c.id,
            deals.c.title,
            pipelines.c.name.label("pipeline"),
            stages.c.name.label("stage"),
            users.c.name.label("owner"),
            deals.c.amount,
            deals.c.currency,
            deals.c.stage_since,
            stages.c.sla_days,
        )
        .select_from(
            deals.join(stages, stages.c.id == deals.c.stage_id)
            .join(pipelines, pipelines.c.id == deals.c.pipeline_id)
            .outerjoin(users, users.c.id == deals.c.owner_id)
        )
        .where(over, ~planned)
    )
    found = []
    with store.engine.connect() as conn:
        for r in conn.execute(stmt):
            days = (now - r.stage_since).total_seconds() / 86_400
            found.append(
                StuckDeal(
                    id=r.id,
                    title=r.title,
                    pipeline=r.pipeline,
                    stage=r.stage,
                    owner=r.owner,
                    amount=r.amount,
                    currency=r.currency,
                    in_stage_since=r.stage_since,
                    days_in_stage=round(days, 1),
                    sla_days=r.sla_days,
                    days_over_sla=round(days - r.sla_days, 1),
                )
            )
    found.sort(key=lambda d: (-d.days_over_sla, d.id))
    return StuckResult(now, found)
