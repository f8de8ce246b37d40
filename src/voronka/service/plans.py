"""Plans and plan vs fact: targets per metric, period, pipeline and manager, and how far the fact has got.

Terms:

- **Metric**: ``revenue`` (amounts of deals moved to a won stage in the period, by the deal's owner), ``won``
  (such moves, counted), ``leads`` (deals created in the period, by owner), ``activities`` (activities logged
  in the period, by their author).
- **Period**: an ISO week (Monday first), a calendar month or a quarter, in UTC; given by any day in it.
- **Scope**: a pipeline (or all of them) and a manager (or the whole team: every manager together).
- **% done** = fact so far / target; **run rate** = fact / elapsed share of the period, the fact the period ends
  with if it goes on at the same pace.

Amounts in another currency than the plan's are converted at the rate of the day of the win (see
:mod:`voronka.service.rates`); wins whose currency has no rate on or before that day are left out of the fact and
counted in ``skipped_other_currency``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, select

from voronka.domain.parse import parse_amount, parse_time
from voronka.errors import InputError
from voronka.service.rates import Rates, load_rates
from voronka.store.schema import activities, deals, pipelines, plans, stage_moves, stages, users
from voronka.store.workspace import WorkspaceStore

if TYPE_CHECKING:
    import pandas as pd

METRICS = ("revenue", "won", "leads", "activities")
PERIODS = ("week", "month", "quarter")


def period_bounds(period: str, day: date) -> tuple[date, date]:
    """The ``[start, end)`` of the week, month or quarter that contains ``day``."""
    if period == "week":
        start = day - timedelta(days=day.weekday())
        return start, start + timedelta(days=7)
    if period == "month":
        start = day.replace(day=1)
    elif period == "quarter":
        start = date(day.year, 3 * ((day.month - 1) // 3) + 1, 1)
    else:
        raise InputError(f"Unknown period {period!r}: use one of {', '.join(PERIODS)}.")
    months = 1 if period == "month" else 3
    y, m = divmod(start.month - 1 + months, 12)
    return start, date(start.year + y, m + 1, 1)


def parse_day(text: str | date | None, what: str = "--start") -> date:
    """A day from ``2026-12-07``, ``2026-12`` (its first day) or ``2026-Q4`` (the quarter's first day)."""
    if text is None:
        return datetime.now(UTC).date()
    if isinstance(text, date):
        return text
    t = text.strip().upper()
    if len(t) == 7 and t[4] == "-" and t[5] == "Q" and t[:4].isdigit() and t[6] in "1234":
        return date(int(t[:4]), 3 * (int(t[6]) - 1) + 1, 1)
    if len(t) == 7 and t[4] == "-" and t[:4].isdigit() and t[5:].isdigit() and 1 <= int(t[5:]) <= 12:
        return date(int(t[:4]), int(t[5:]), 1)
    return parse_time(text, what=f"{what} date (e.g. 2026-12-07, 2026-12 or 2026-Q4)").date()


@dataclass
class Plan:
    metric: str
    period: str
    start: str
    end: str
    pipeline: str
    owner: str
    target: float
    currency: str


def set_plan(
    store: WorkspaceStore,
    metric: str,
    period: str,
    start: str | date | None,
    target: str | float | Decimal,
    *,
    pipeline: str | int | None = None,
    owner: str | None = None,
    currency: str | None = None,
) -> Plan:
    """Set (insert or replace) the target of ``metric`` for the period containing ``start`` and the scope."""
    if metric not in METRICS:
        raise InputError(f"Unknown metric {metric!r}: use one of {', '.join(METRICS)}.")
    a, b = period_bounds(period, parse_day(start))
    amount = parse_amount(target, what="--target") if not isinstance(target, Decimal) else target
    if amount <= 0:
        raise InputError(f"--target {target!r}: a plan's target must be positive.")
    if metric != "revenue" and amount != amount.to_integral_value():
        raise InputError(f"--target {target!r}: a {metric} plan counts whole things; give a whole number.")
    pipe = "" if pipeline is None else store.pipeline(pipeline).name
    who = "" if owner is None else _known_user(store, owner)
    cur = (currency or "RUB").strip().upper() if metric == "revenue" else ""
    if metric == "revenue" and (len(cur) != 3 or not cur.isalpha()):
        raise InputError(f"Malformed currency {currency!r}: use a 3-letter ISO code such as RUB, USD, EUR.")
    key = and_(
        plans.c.metric == metric,
        plans.c.period == period,
        plans.c.start == a,
        plans.c.pipeline == pipe,
        plans.c.owner == who,
    )
    values = {"target": amount, "currency": cur, "updated_at": datetime.now(UTC)}
    with store.transaction() as conn:
        if conn.execute(plans.update().where(key).values(**values)).rowcount == 0:
            conn.execute(
                plans.insert().values(metric=metric, period=period, start=a, pipeline=pipe, owner=who, **values)
            )
    return Plan(metric, period, a.isoformat(), b.isoformat(), pipe, who, float(amount), cur)


def _known_user(store: WorkspaceStore, name: str) -> str:
    names = store.users()
    for n in names:
        if n.casefold() == name.strip().casefold():
            return n
    raise InputError(f"Unknown manager {name!r}. Use one of: {', '.join(repr(n) for n in names) or '(no users yet)'}.")


@dataclass
class PlanFactRow:
    metric: str
    pipeline: str
    owner: str
    target: float | None
    currency: str
    fact: float
    pct_done: float | None
    run_rate: float | None
    run_rate_pct: float | None


@dataclass
class PlanFactWeek:
    metric: str
    pipeline: str
    owner: str
    week_start: str
    fact: float
    cumulative: float
    planned_cumulative: float | None
    pct_done: float | None


@dataclass
class PlanFactResult:
    """Plan vs fact over one period: a row per plan (and per manager with a fact but no plan), weekly rows."""

    period: str
    start: str
    end: str
    now: str
    elapsed: float
    rows: list[PlanFactRow]
    weeks: list[PlanFactWeek]
    skipped_other_currency: int = 0
    definition: str = field(default=__doc__ or "")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self, **kwargs: Any) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, **kwargs)

    def to_pandas(self) -> pd.DataFrame:
        import pandas as pd

        return pd.DataFrame([asdict(r) for r in self.rows])


def plan_fact(
    store: WorkspaceStore,
    period: str = "month",
    day: str | date | None = None,
    *,
    pipeline: str | int | None = None,
    now: datetime | str | None = None,
) -> PlanFactResult:
    """Plan vs fact for the period containing ``day`` (default today), as of ``now`` (default now)."""
    a, b = period_bounds(period, parse_day(day))
    at = parse_time(now, what="--now date") if isinstance(now, str) else (now or datetime.now(UTC))
    pipe = None if pipeline is None else store.pipeline(pipeline).name
    lo, hi = _utc(a), _utc(b)
    elapsed = min(max((at - lo) / (hi - lo), 0.0), 1.0)
    with store.engine.connect() as conn:
        found = conn.execute(
            select(plans).where(plans.c.period == period, plans.c.start == a).order_by(plans.c.metric, plans.c.owner)
        ).all()
    wanted = [p for p in found if pipe is None or p.pipeline in ("", pipe)]
    facts = _facts(store, lo, min(hi, at))
    rates = load_rates(store)
    rows, weeks = [], []
    skipped = 0
    for p in wanted:
        df = _scope(facts, p.metric, p.pipeline, p.owner)
        if p.metric == "revenue":
            df, missing = _in_currency(df, p.currency, rates)
            skipped += missing
        rows.append(_row(p.metric, p.pipeline, p.owner, float(p.target), p.currency, df, elapsed))
        weeks += _weeks(p.metric, p.pipeline, p.owner, float(p.target), df, a, min(b, at.date() + timedelta(days=1)), b)
    # Managers side by side: every manager with a fact in a planned team metric gets a row, planned or not.
    for p in wanted:
        if p.owner:
            continue
        df = _scope(facts, p.metric, p.pipeline, "")
        planned = {r.owner for r in rows if r.metric == p.metric and r.pipeline == (p.pipeline or "(all)")}
        for who in sorted(set(df["owner"]) - planned):
            mine = df[df["owner"] == who]
            if p.metric == "revenue":
                mine = _in_currency(mine, p.currency, rates)[0]
            rows.append(_row(p.metric, p.pipeline, who, None, p.currency, mine, elapsed))
    return PlanFactResult(period, a.isoformat(), b.isoformat(), at.isoformat(), elapsed, rows, weeks, skipped)


def _in_currency(df: pd.DataFrame, currency: str, rates: Rates) -> tuple[pd.DataFrame, int]:
    """Revenue facts converted to ``currency`` at their day's rate; those with no rate are dropped and counted."""
    values, keep = [], []
    for value, cur, at in zip(df["value"], df["currency"], df["at"], strict=True):
        try:
            values.append(rates.convert(value, cur, currency, at))
            keep.append(True)
        except InputError:
            values.append(0.0)
            keep.append(False)
    out = df.assign(value=values)[keep] if len(df) else df
    return out, len(df) - int(sum(keep))


def _utc(d: date) -> datetime:
    return datetime(d.year, d.month, d.day, tzinfo=UTC)


def _row(
    metric: str, pipe: str, owner: str, target: float | None, cur: str, df: pd.DataFrame, elapsed: float
) -> PlanFactRow:
    fact = float(df["value"].sum())
    run = fact / elapsed if elapsed > 0 else None
    pct = fact / target if target else None
    return PlanFactRow(
        metric,
        pipe or "(all)",
        owner or "(team)",
        target,
        cur,
        fact,
        pct,
        run,
        run / target if run is not None and target else None,
    )


def _weeks(
    metric: str, pipe: str, owner: str, target: float, df: pd.DataFrame, a: date, until: date, b: date
) -> list[PlanFactWeek]:
    """Weekly rows of one plan from the period's start ``a`` to ``until`` (the weeks begun so far)."""
    out = []
    total_days = (b - a).days
    cumulative = 0.0
    week = a - timedelta(days=a.weekday())
    while week < until:
        lo, hi = max(week, a), min(week + timedelta(days=7), b)
        fact = float(df[(df["at"] >= _utc(lo)) & (df["at"] < _utc(hi))]["value"].sum())
        cumulative += fact
        planned = target * (hi - a).days / total_days
        who = owner or "(team)"
        out.append(
            PlanFactWeek(metric, pipe or "(all)", who, lo.isoformat(), fact, cumulative, planned, cumulative / target)
        )
        week += timedelta(days=7)
    return out


def _scope(facts: pd.DataFrame, metric: str, pipe: str, owner: str) -> pd.DataFrame:
    df = facts[facts["metric"] == metric]
    if pipe:
        df = df[df["pipeline"] == pipe]
    if owner:
        df = df[df["owner"] == owner]
    return df


def _facts(store: WorkspaceStore, lo: datetime, hi: datetime) -> pd.DataFrame:
    """Every fact event in ``[lo, hi)``: metric, time, pipeline, owner, value, currency."""
    import pandas as pd

    owner = users.c.name.label("owner")
    won = (
        select(stage_moves.c.at, pipelines.c.name.label("pipeline"), owner, deals.c.amount, deals.c.currency)
        .join(stages, stages.c.id == stage_moves.c.stage_id)
        .join(deals, deals.c.id == stage_moves.c.deal_id)
        .join(pipelines, pipelines.c.id == stage_moves.c.pipeline_id)
        .outerjoin(users, users.c.id == deals.c.owner_id)
        .where(stages.c.kind == "won", stage_moves.c.at >= lo, stage_moves.c.at < hi)
    )
    leads = (
        select(deals.c.created_at.label("at"), pipelines.c.name.label("pipeline"), owner)
        .join(pipelines, pipelines.c.id == deals.c.pipeline_id)
        .outerjoin(users, users.c.id == deals.c.owner_id)
        .where(deals.c.created_at >= lo, deals.c.created_at < hi)
    )
    acts = (
        select(activities.c.at, pipelines.c.name.label("pipeline"), owner)
        .join(deals, deals.c.id == activities.c.deal_id)
        .join(pipelines, pipelines.c.id == deals.c.pipeline_id)
        .outerjoin(users, users.c.id == activities.c.author_id)
        .where(activities.c.at >= lo, activities.c.at < hi)
    )
    rows: list[dict[str, Any]] = []
    with store.engine.connect() as conn:
        for r in conn.execute(won):
            base = {"at": r.at, "pipeline": r.pipeline, "owner": r.owner or "(none)", "currency": r.currency}
            rows.append({**base, "metric": "revenue", "value": float(r.amount or 0)})
            rows.append({**base, "metric": "won", "value": 1.0})
        for metric, stmt in (("leads", leads), ("activities", acts)):
            for r in conn.execute(stmt):
                rows.append(
                    {
                        "at": r.at,
                        "pipeline": r.pipeline,
                        "owner": r.owner or "(none)",
                        "currency": "",
                        "metric": metric,
                        "value": 1.0,
                    }
                )
    columns = ["metric", "at", "pipeline", "owner", "value", "currency"]
    return pd.DataFrame(rows, columns=columns)
