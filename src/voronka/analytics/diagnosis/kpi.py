"""KPIs by channel and month, with marketing costs.

Deals are the *leads*; a deal's channel is its ``source``, matched to the costs' channel by name (case and spaces
ignored). A deal belongs to the month it entered (UTC). A cost row covering ``[start, end)`` is spread over its
days evenly, so each month gets its share.

- **Leads**: deals that entered. **Won**: of them, won now. **Revenue**: the amounts of the won ones.
- **Win rate** = won / decided (won, lost or moved out; open deals are not yet decided), Wilson 95% interval.
- **CPL** = cost / leads. **CAC** = cost / won. **ROMI** = (revenue × margin − cost) / cost.
- **Average deal** = revenue / won.
- **Cycle length**: median days from entry to won, from the Kaplan–Meier curve in which open deals are censored
  at their current age (they may still win) and lost deals are left out (they never win).
- **Sales velocity** (per month) = open deals × win rate × average deal / cycle length in months.
- **LTV** = average deal × margin × (1 + repeat ratio), where the repeat ratio is the revenue of the repeat-sales
  pipelines over that of the new-client pipelines in the same period — every won client is assumed to bring the
  average repeat revenue. With ``churn`` (the monthly share of clients who stop buying) given instead:
  LTV = ARPA × margin / churn, ARPA = revenue per won client per month of the period.
- **CAC payback** (months) = CAC / (LTV / lifetime months), lifetime = 1 / churn; without churn, the number of
  average deals' margin it takes to earn back the CAC (``cac_payback_deals``).
``margin`` is the gross margin share (default 1: revenue, not profit — say so when you read ROMI and LTV).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
import pandas as pd

from voronka.analytics.diagnosis._common import Result, months_between
from voronka.errors import InputError
from voronka.stats import wilson
from voronka.stats.survival import km_median

DAYS_PER_MONTH = 30.4375


@dataclass
class KPIRow:
    channel: str
    month: str  # "YYYY-MM" or "(all)"
    leads: int
    won: int
    decided: int
    open: int
    revenue: float
    cost: float | None
    cpl: float | None
    cac: float | None
    romi: float | None
    avg_deal: float | None
    win_rate: float | None
    win_rate_low: float | None
    win_rate_high: float | None
    cycle_days: float | None
    velocity_per_month: float | None
    ltv: float | None
    cac_payback_months: float | None
    cac_payback_deals: float | None


@dataclass
class KPIResult(Result):
    pipelines: list[str]
    start: datetime | None
    end: datetime | None
    margin: float
    churn: float | None
    repeat_ratio: float | None
    rows: list[KPIRow]
    unmatched_costs: dict[str, float]
    assumptions: list[str]
    definition: str = field(default=__doc__ or "")

    def to_pandas(self) -> pd.DataFrame:
        return pd.DataFrame([r.__dict__ for r in self.rows])


def _key(text: object) -> str:
    return " ".join(str(text).split()).casefold()


def spread_costs(costs: pd.DataFrame) -> pd.DataFrame:
    """Cost rows (channel, start, end exclusive, amount) spread over months: columns channel, month, cost."""
    out: list[tuple[str, str, float]] = []
    for r in costs.itertuples():
        days = pd.date_range(pd.Timestamp(r.start), pd.Timestamp(r.end) - pd.Timedelta(days=1), freq="D")
        if not len(days):
            continue
        per_day = float(r.amount) / len(days)
        for month, count in pd.Series(days.strftime("%Y-%m")).value_counts().items():
            out.append((str(r.channel), str(month), per_day * int(count)))
    frame = pd.DataFrame(out, columns=["channel", "month", "cost"])
    return frame.groupby(["channel", "month"], as_index=False)["cost"].sum()


def compute_kpis(
    deals: pd.DataFrame,
    costs: pd.DataFrame,
    *,
    pipelines: list[str],
    now: datetime,
    start: datetime | None = None,
    end: datetime | None = None,
    margin: float = 1.0,
    churn: float | None = None,
    repeat_revenue: float | None = None,
) -> KPIResult:
    """KPIs of ``deals`` (the per-deal frame of the new-client pipelines) with ``costs`` (channel, start, end,
    amount); ``repeat_revenue`` is the won revenue of the repeat-sales pipelines in the same period."""
    if not 0 < margin <= 1:
        raise InputError(f"--margin {margin!r} must be a share in (0, 1], e.g. 0.35 for 35% gross margin.")
    if churn is not None and not 0 < churn <= 1:
        raise InputError(f"--churn {churn!r} must be a monthly share in (0, 1], e.g. 0.05.")
    f = deals
    if start is not None:
        f = f[f["entry"] >= pd.Timestamp(start)]
    if end is not None:
        f = f[f["entry"] < pd.Timestamp(end)]
    f = f.assign(
        month=f["entry"].dt.tz_convert("UTC").dt.strftime("%Y-%m"),
        channel_key=f["source"].map(_key),
    )
    spread = spread_costs(costs) if len(costs) else pd.DataFrame(columns=["channel", "month", "cost"])
    if start is not None:
        spread = spread[spread["month"] >= pd.Timestamp(start).strftime("%Y-%m")]
    if end is not None:
        spread = spread[spread["month"] < pd.Timestamp(end).strftime("%Y-%m")]
    spread = spread.assign(channel_key=spread["channel"].map(_key))
    names = dict(zip(f["channel_key"], f["source"], strict=False))
    unmatched = spread[~spread["channel_key"].isin(names)].groupby("channel")["cost"].sum()
    new_revenue = float(f.loc[f["status"] == "won", "amount"].sum())
    ratio = repeat_revenue / new_revenue if repeat_revenue is not None and new_revenue > 0 else None
    span = months_between(f["entry"].min(), pd.Timestamp(end or now)) if len(f) else 1.0
    ctx = _Ctx(now=pd.Timestamp(now), margin=margin, churn=churn, ratio=ratio, span=span)
    rows: list[KPIRow] = []
    for key in sorted(names):
        g = f[f["channel_key"] == key]
        c = spread[spread["channel_key"] == key]
        for month in sorted(g["month"].unique()):
            cost = float(c.loc[c["month"] == month, "cost"].sum()) if len(c) else None
            rows.append(_row(names[key], month, g[g["month"] == month], cost, ctx, cycle=False))
        rows.append(_row(names[key], "(all)", g, float(c["cost"].sum()) if len(c) else None, ctx, cycle=True))
    total_cost = float(spread["cost"].sum()) if len(spread) else None
    rows.append(_row("(all)", "(all)", f, total_cost, ctx, cycle=True))
    assumptions = [
        f"margin {margin:.0%} of revenue" + (" (revenue, not profit)" if margin == 1 else ""),
        (
            f"LTV = ARPA × margin / churn with churn {churn:.1%} a month"
            if churn
            else "LTV = average deal × margin × (1 + repeat revenue / new-client revenue)"
            + ("" if ratio is not None else "; no repeat-sales pipeline, so the repeat ratio is 0")
        ),
        "costs spread evenly over the days of each cost row; channels matched by name",
    ]
    return KPIResult(
        pipelines=pipelines,
        start=start,
        end=end,
        margin=margin,
        churn=churn,
        repeat_ratio=ratio,
        rows=rows,
        unmatched_costs={str(k): float(v) for k, v in unmatched.items()},
        assumptions=assumptions,
    )


@dataclass
class _Ctx:
    now: pd.Timestamp
    margin: float
    churn: float | None
    ratio: float | None
    span: float


def _div(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or b == 0 else a / b


def _row(channel: str, month: str, g: pd.DataFrame, cost: float | None, ctx: _Ctx, *, cycle: bool) -> KPIRow:
    won_mask = g["status"] == "won"
    won, leads = int(won_mask.sum()), len(g)
    open_ = int((g["status"] == "open").sum())
    decided = leads - open_
    revenue = float(g.loc[won_mask, "amount"].sum())
    avg = _div(revenue, won)
    rate = _div(won, decided)
    lo, hi = wilson(won, decided) if decided else (None, None)
    cyc = _cycle(g, ctx.now) if cycle else None
    velocity = None
    if cyc and rate is not None and avg is not None:
        velocity = open_ * rate * avg / (cyc / DAYS_PER_MONTH)
    ltv = payback_m = payback_d = None
    if avg is not None:
        if ctx.churn:
            arpa = revenue / won / max(ctx.span, 1.0)
            ltv = arpa * ctx.margin / ctx.churn
        else:
            ltv = avg * ctx.margin * (1 + (ctx.ratio or 0.0))
    cac = _div(cost, won)
    if cac is not None and ltv:
        if ctx.churn:
            payback_m = cac / (ltv * ctx.churn)
        payback_d = _div(cac, (avg or 0) * ctx.margin)
    return KPIRow(
        channel=channel,
        month=month,
        leads=leads,
        won=won,
        decided=decided,
        open=open_,
        revenue=revenue,
        cost=cost,
        cpl=_div(cost, leads),
        cac=cac,
        romi=None if not cost else (revenue * ctx.margin - cost) / cost,
        avg_deal=avg,
        win_rate=rate,
        win_rate_low=lo,
        win_rate_high=hi,
        cycle_days=cyc,
        velocity_per_month=velocity,
        ltv=ltv,
        cac_payback_months=payback_m,
        cac_payback_deals=payback_d,
    )


def _cycle(g: pd.DataFrame, now: pd.Timestamp) -> float | None:
    keep = g[g["status"].isin(["won", "open"])]
    if keep.empty:
        return None
    won = (keep["status"] == "won").to_numpy()
    stop = keep["closed_at"].where(pd.Series(won, index=keep.index), now)
    days = ((stop - keep["entry"]).dt.total_seconds() / 86_400).clip(lower=0).to_numpy()
    med = km_median(days, won)
    return None if np.isnan(med) else round(med, 2)
