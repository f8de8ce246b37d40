"""The JSON API under /api/v1 (OpenAPI at /api/v1/openapi.json, docs at /api/v1/docs).

The same permission rules as the pages: a manager's token sees and moves only that manager's deals.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field

from voronka.domain.deal import ActivityKind
from voronka.errors import InputError
from voronka.service.accounts import Account
from voronka.web import access, analysis
from voronka.web.access import in_db, visible_activity_deal, visible_deal, workspace
from voronka.web.board import BoardFilters, build_board
from voronka.web.dashboard import BREAKDOWNS, build_dashboard, parse_period
from voronka.web.security import api_account


class ErrorBody(BaseModel):
    status: int
    code: str = Field(description="not_found, stale, move_refused, invalid, unauthenticated, forbidden, csrf, ...")
    message: str
    details: Any = None


class ErrorOut(BaseModel):
    error: ErrorBody


_ERRORS: dict[int | str, dict[str, Any]] = {
    s: {"model": ErrorOut, "description": d}
    for s, d in [(401, "No valid token"), (403, "Not allowed"), (404, "Not found"), (409, "Stale"), (422, "Invalid")]
}
router = APIRouter(prefix="/api/v1", tags=["v1"], responses=_ERRORS)
AccountDep = Annotated[Account, Depends(api_account)]
Id = Annotated[int, Path(ge=1, le=access.DB_INT_MAX)]
Version = Annotated[int, Field(ge=1, le=access.DB_INT_MAX, description="The deal's version you read.")]


class StageOut(BaseModel):
    id: int
    name: str
    position: int
    kind: str
    sla_days: float | None


class PipelineOut(BaseModel):
    id: int
    name: str
    process: str
    stages: list[StageOut]
    loss_reasons: list[str]


class DealOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)  # built from the domain dataclass

    id: int
    pipeline_id: Id
    stage_id: int
    title: str
    owner: str | None
    amount: Decimal | None
    currency: str
    source: str | None
    segment: str | None
    created_at: datetime
    stage_since: datetime
    version: int = Field(description="Send it back as expected_version: a change based on an old version is refused.")


class MoveIn(BaseModel):
    stage: int | str = Field(description="Stage id or name in the deal's pipeline.")
    expected_version: Version
    reason: str | None = Field(None, description="Loss reason (moves to a lost stage).")
    comment: str | None = None


class MoveOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)  # built from the domain dataclass

    id: int
    deal_id: Id
    from_stage_id: int | None
    stage_id: int
    at: datetime
    author: str | None
    reason: str | None
    comment: str | None


class DealPatch(BaseModel):
    expected_version: Version
    title: str | None = None
    amount: Decimal | None = None
    currency: str | None = None
    source: str | None = None
    segment: str | None = None
    owner: str | None = None


def _utc(value: datetime | None) -> datetime | None:
    """A time without a zone is taken as UTC (as everywhere in Voronka)."""
    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


class ActivityIn(BaseModel):
    kind: Literal["call", "meeting", "message", "task"]
    note: str | None = None
    due_at: Annotated[datetime | None, AfterValidator(_utc)] = Field(
        None, description="When it is due; ISO 8601, UTC when no zone is given."
    )
    done: bool = False


class ActivityOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)  # built from the domain dataclass

    id: int
    deal_id: Id
    kind: Annotated[str, BeforeValidator(lambda k: k.value if isinstance(k, ActivityKind) else k)]
    at: datetime
    due_at: datetime | None
    done: bool
    author: str | None
    note: str | None


class MeOut(BaseModel):
    id: int
    name: str
    login: str | None
    role: str
    locale: str | None


class ColumnOut(BaseModel):
    stage_id: int
    stage: str
    count: int
    sums: dict[str, Decimal]
    deals: list[int]


@router.get("/me", response_model=MeOut)
def me(account: AccountDep) -> MeOut:
    """Who the token acts as."""
    return MeOut(id=account.id, name=account.name, login=account.login, role=account.role, locale=account.locale)


@router.get("/pipelines", response_model=list[PipelineOut])
def pipelines(request: Request, account: AccountDep) -> list[PipelineOut]:
    """Every funnel with its stages in order and its loss reasons."""
    return [
        PipelineOut(
            id=p.id,
            name=p.name,
            process=p.process.value,
            stages=[
                StageOut(id=s.id, name=s.name, position=s.position, kind=s.kind.value, sla_days=s.sla_days)
                for s in p.stages
            ],
            loss_reasons=list(p.reasons),
        )
        for p in workspace(request).pipelines()
    ]


@router.get("/pipelines/{pipeline_id}/board", response_model=list[ColumnOut])
def board(
    request: Request,
    pipeline_id: Id,
    account: AccountDep,
    owner: str | None = None,
    source: str | None = None,
    segment: str | None = None,
    created_from: str | None = None,
    created_to: str | None = None,
    q: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 30,
) -> list[ColumnOut]:
    """The board's columns: count and sum per stage (over all matching deals) and the first ``limit`` deal ids."""
    ws = workspace(request)
    pipe = ws.pipeline(pipeline_id)
    f = BoardFilters.parse(
        owner=owner, source=source, segment=segment, created_from=created_from, created_to=created_to, q=q
    )
    f = BoardFilters(access.owner_scope(account, f.owner), f.source, f.segment, f.created_from, f.created_to, f.q)
    return [
        ColumnOut(stage_id=c.stage.id, stage=c.stage.name, count=c.count, sums=c.sums, deals=[x.id for x in c.cards])
        for c in build_board(ws, pipe, f, limit=limit)
    ]


@router.get("/pipelines/{pipeline_id}/funnel")
def funnel(
    request: Request,
    pipeline_id: Id,
    account: AccountDep,
    start: Annotated[str | None, Query(alias="from")] = None,
    end: Annotated[str | None, Query(alias="to")] = None,
    by: Literal["owner", "source", "segment", "month"] | None = None,
) -> dict[str, Any]:
    """The stage funnel (``ws.funnel``); a manager gets their own numbers only."""
    assert by is None or by in BREAKDOWNS
    s, e = parse_period(start, end)
    ws = workspace(request)
    d = build_dashboard(ws, ws.pipeline(pipeline_id), account, start=s, end=e, by=by)
    out = d.result.to_dict()
    if d.only_owner is not None:
        out = {
            "pipeline": out["pipeline"],
            "definition": out["definition"],
            "owner": d.only_owner,
            "stages": [s.__dict__ for s in d.stages],
            "overall": d.overall.__dict__,
        }
    return out


@router.get("/pipelines/{pipeline_id}/stuck")
def stuck(request: Request, pipeline_id: Id, account: AccountDep) -> dict[str, Any]:
    """Stuck deals (``ws.stuck``); a manager sees their own only."""
    ws = workspace(request)
    result = ws.stuck(ws.pipeline(pipeline_id).id).to_dict()
    if not account.sees_all:
        result["deals"] = [d for d in result["deals"] if d["owner"] == account.name]
    return result


@router.get("/pipelines/{pipeline_id}/forecast")
def forecast(
    request: Request,
    pipeline_id: Id,
    account: AccountDep,
    target: Annotated[float | None, Query(gt=0, le=1e15)] = None,
) -> dict[str, Any]:
    """Months 1-3 ahead: won deals and revenue as mean, p10, p50, p90 over 2,000 Monte Carlo paths, with
    ``p_target`` (the probability that revenue over the months reaches ``target``). A manager gets their own
    forecast (``owner``) and no ``p_target``; a funnel with too little history answers 422."""
    ws = workspace(request)
    return analysis.build_forecast(ws, ws.pipeline(pipeline_id), account, target=target, strict=True).to_dict()


@router.get("/pipelines/{pipeline_id}/backtest")
def backtest(request: Request, pipeline_id: Id, account: AccountDep) -> dict[str, Any]:
    """The rolling-origin backtest's summary per horizon (WAPE, bias, 80%/50% coverage); heads and admins only."""
    ws = workspace(request)
    return analysis.backtest_summary(ws, ws.pipeline(pipeline_id), account, strict=True)


@router.get("/pipelines/{pipeline_id}/diagnosis")
def diagnosis(request: Request, pipeline_id: Id, account: AccountDep) -> dict[str, Any]:
    """``ws.diagnose``: the bottleneck with its revenue impact and interval, managers flagged, hints; heads and
    admins only (it compares managers with each other)."""
    ws = workspace(request)
    return analysis.diagnosis_dict(analysis.build_diagnosis(ws, ws.pipeline(pipeline_id), account))


@router.get("/deals/{deal_id}", response_model=DealOut)
def get_deal(request: Request, deal_id: Id, account: AccountDep) -> DealOut:
    return DealOut.model_validate(visible_deal(workspace(request), account, deal_id))


@router.patch("/deals/{deal_id}", response_model=DealOut)
def patch_deal(request: Request, deal_id: Id, body: DealPatch, account: AccountDep) -> DealOut:
    """Change fields; refused (409) when ``expected_version`` is not the deal's version."""
    ws = workspace(request)
    deal = visible_deal(ws, account, deal_id)
    fields = body.model_dump(exclude_unset=True, exclude={"expected_version"})
    access.check_edit(account, fields)
    if "title" in fields and fields["title"] is None:
        raise InputError("A deal's title cannot be null; send a non-empty title or leave it out.")
    if "currency" in fields and fields["currency"] is None:
        raise InputError("A deal's currency cannot be null; send a 3-letter code or leave it out.")
    return DealOut.model_validate(ws.update_deal(deal.id, expected_version=body.expected_version, **fields))


@router.get("/deals/{deal_id}/history", response_model=list[MoveOut])
def history(request: Request, deal_id: Id, account: AccountDep) -> list[MoveOut]:
    ws = workspace(request)
    return [MoveOut.model_validate(m) for m in ws.history(visible_deal(ws, account, deal_id).id)]


@router.post("/deals/{deal_id}/move", response_model=MoveOut)
async def move(request: Request, deal_id: Id, body: MoveIn, account: AccountDep) -> MoveOut:
    """Move a deal; refused (409) when ``expected_version`` is old, (422) when a rule is broken."""
    ws = workspace(request)

    def write() -> MoveOut:
        m = ws.move_deal(
            access.movable_deal_id(ws, account, deal_id),
            body.stage,
            reason=body.reason,
            comment=body.comment,
            by=account.name,
            by_id=account.id,
            expected_version=body.expected_version,
        )
        return MoveOut.model_validate(m)

    return await in_db(request, write)


@router.get("/deals/{deal_id}/activities", response_model=list[ActivityOut])
def list_activities(request: Request, deal_id: Id, account: AccountDep) -> list[ActivityOut]:
    ws = workspace(request)
    return [ActivityOut.model_validate(a) for a in ws.activities(visible_deal(ws, account, deal_id).id)]


@router.post("/deals/{deal_id}/activities", response_model=ActivityOut, status_code=201)
def add_activity(request: Request, deal_id: Id, body: ActivityIn, account: AccountDep) -> ActivityOut:
    ws = workspace(request)
    deal = visible_deal(ws, account, deal_id)
    a = ws.add_activity(
        deal.id, ActivityKind(body.kind), due_at=body.due_at, done=body.done, by=account.name, note=body.note
    )
    return ActivityOut.model_validate(a)


@router.post("/activities/{activity_id}/complete", response_model=ActivityOut)
def complete_activity(request: Request, activity_id: Id, account: AccountDep) -> ActivityOut:
    ws = workspace(request)
    visible_activity_deal(ws, account, activity_id)
    return ActivityOut.model_validate(ws.complete_activity(activity_id))
