"""The reverse plan: how many new leads a revenue target needs, when they must enter, and where to push.

Terms (all over the *horizon*, the ``months`` from ``as_of``):

- the **open pipeline** brings revenue S (a distribution over Monte Carlo paths, from :mod:`.montecarlo`);
- new leads enter at a steady rate λ per day; with the chain's probability that a lead entering on day u is won
  by the horizon's end, their wins are Poisson and their revenue R(λ) is a sum of past win amounts;
- **leads needed** at confidence c: the smallest λ with P(S + R(λ) ≥ target) ≥ c (bisection with common random
  numbers), reported as leads per week and in total;
- **time to win**: the days from entry to the win for new leads that are won (median, p90), from the chain; a lead
  entering later than ``horizon end − median`` has less than half its chance of closing in time;
- **per channel**: the same need if every lead came from one source, scaled by the source's historical win rate
  (with a Wilson interval) and average won amount against the pipeline's;
- **stage improvements**: for each open stage, +5 percentage points of its exits moved from *closed* to the next
  stage, and the expected revenue over the horizon this adds (open deals plus the current inflow).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from voronka.analytics.forecast.chain import outlook
from voronka.analytics.forecast.history import DAY_US, FlowHistory, entries, open_deals, wins
from voronka.analytics.forecast.model import FitOptions, FlowModel, Params, draw_params, fit, mean_params
from voronka.analytics.forecast.montecarlo import month_bounds, simulate
from voronka.errors import InputError
from voronka.stats.intervals import wilson
from voronka.store.types import from_micros

BOOST = 0.05  # stage improvement tried: this share of a stage's exits moved from closed to the next stage


@dataclass
class ChannelNeed:
    channel: str
    entered: int
    won: int
    win_rate: float | None
    ci_low: float | None
    ci_high: float | None
    avg_won_amount: float | None
    leads_per_week: float | None


@dataclass
class StageImprovement:
    stage: str
    extra_revenue: float


@dataclass
class WeekShare:
    week_start: str
    share_in_time: float  # of a lead entering this week: P(won within the horizon) / P(won ever)


@dataclass
class NeedResult:
    pipeline: str
    as_of: str
    currency: str
    target: float
    months: int
    confidence: float
    horizon_end: str
    open_revenue_mean: float
    p_open_only: float
    p_current_inflow: float
    leads_per_week_now: float
    leads_per_week_needed: float
    leads_needed: float
    days_to_win_median: float | None
    days_to_win_p90: float | None
    enter_by: str | None
    schedule: list[WeekShare]
    channels: list[ChannelNeed]
    improvements: list[StageImprovement]
    notes: list[str]
    definition: str = __doc__ or ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self, **kwargs: Any) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, **kwargs)


def plan_need(
    h: FlowHistory,
    as_of: int,
    target: float,
    *,
    months: int = 3,
    confidence: float = 0.8,
    paths: int = 10_000,
    options: FitOptions | None = None,
    seed: int = 0,
) -> NeedResult:
    """How many leads ``target`` revenue over ``months`` needs at ``confidence``; see the module docstring."""
    if not target > 0:
        raise InputError(f"--target {target!r}: a revenue target must be a positive amount, e.g. 1500000.")
    if not 0.5 <= confidence < 1:
        raise InputError(f"--confidence {confidence!r}: use a probability from 0.5 to below 1, e.g. 0.8.")
    if not 1 <= months <= 12:
        raise InputError(f"--months {months}: plan between 1 and 12 months ahead, e.g. --months 3.")
    model = fit(h, as_of, options)
    rng = np.random.default_rng(seed)
    quiet = dataclasses.replace(model, entry_deals_=np.zeros(0, np.int64), inflow_days_=1e15)
    s_open = simulate(quiet, h, months=months, paths=paths, seed=seed).revenue.sum(axis=(1, 2))
    bounds = month_bounds(as_of, months)
    days = int(round((bounds[-1] - as_of) / DAY_US))
    k = min(128, paths)
    params = draw_params(model, k, rng)
    per_lead = _wins_per_daily_lead(params, days)  # (k,) expected wins in the horizon per lead/day
    pool = model.won_amounts_ if len(model.won_amounts_) else np.zeros(1)
    u = rng.random(paths)
    picks = rng.random(paths)

    def reach(rate: float) -> float:
        n = _poisson_ppf(u, rate * per_lead[np.arange(paths) % k])
        revenue = _sum_amounts(n, pool, picks)
        return float(((s_open + revenue) >= target).mean())

    rate_now = model.weekly_inflow() / 7
    needed = _bisect(reach, confidence, hi=max(rate_now, 1.0))
    notes = list(h.notes) + list(model.notes)
    if needed is None:
        notes.append("Even 100 times today's inflow does not reach the target with that confidence.")
    entry_w = _entry_curve(mean_params(model), days)
    median, p90 = _days_to_win(entry_w)
    enter_by = None if median is None else from_micros(bounds[-1] - int(median * DAY_US)).date().isoformat()
    return NeedResult(
        pipeline=h.pipeline,
        as_of=from_micros(as_of).isoformat(),
        currency=h.currency,
        target=target,
        months=months,
        confidence=confidence,
        horizon_end=from_micros(bounds[-1]).date().isoformat(),
        open_revenue_mean=float(s_open.mean()),
        p_open_only=float((s_open >= target).mean()),
        p_current_inflow=reach(rate_now),
        leads_per_week_now=7 * rate_now,
        leads_per_week_needed=float("nan") if needed is None else 7 * needed,
        leads_needed=float("nan") if needed is None else needed * days,
        days_to_win_median=median,
        days_to_win_p90=p90,
        enter_by=enter_by,
        schedule=_schedule(entry_w, as_of, days),
        channels=_channels(h, model, as_of, needed),
        improvements=_improvements(model, h, as_of, days),
        notes=notes,
    )


def _wins_per_daily_lead(p: Params, days: int) -> np.ndarray:
    """Expected wins within ``days`` from one lead a day entering over them (per parameter draw)."""
    view = outlook(p, (days,))
    n = p.q.shape[1]
    won = np.einsum("ks,kts->kt", p.entry, view.fresh[..., n])  # P(won within t days) of a new lead
    return won[:, 1:].sum(axis=1)


def _entry_curve(p: Params, days: int) -> np.ndarray:
    """``w[t]``: P(a new lead is won within t days), t = 0 … max(days, 365), under the mean parameters."""
    view = outlook(p, (max(days, 365),))
    n = p.q.shape[1]
    return np.einsum("s,ts->t", p.entry[0], view.fresh[0, :, :, n])


def _days_to_win(w: np.ndarray) -> tuple[float | None, float | None]:
    ever = w[-1]
    if ever <= 0:
        return None, None
    share = w / ever
    return float(np.searchsorted(share, 0.5)), float(np.searchsorted(share, 0.9))


def _schedule(w: np.ndarray, as_of: int, days: int) -> list[WeekShare]:
    ever = w[-1] if w[-1] > 0 else 1.0
    out = []
    for start in range(0, days, 7):
        left = days - start
        out.append(WeekShare(from_micros(as_of + start * DAY_US).date().isoformat(), float(w[left] / ever)))
    return out


def _poisson_ppf(u: np.ndarray, mean: np.ndarray) -> np.ndarray:
    """Poisson quantiles at ``u`` (so that one set of uniforms gives counts that grow with the mean)."""
    from scipy.stats import poisson

    return poisson.ppf(u, mean).astype(np.int64)


def _sum_amounts(n: np.ndarray, pool: np.ndarray, picks: np.ndarray) -> np.ndarray:
    """The revenue of ``n`` wins per path: ``n`` × the pool mean, spread by the pool's variance (normal shape,
    one fixed quantile per path so that the revenue grows with ``n``)."""
    from scipy.stats import norm

    z = norm.ppf(np.clip(picks, 1e-9, 1 - 1e-9))
    return np.maximum(n * pool.mean() + z * np.sqrt(n) * pool.std(), 0)


def _bisect(reach: Any, confidence: float, hi: float) -> float | None:
    """The smallest rate with ``reach(rate) >= confidence`` (``reach`` grows with the rate), or None."""
    if reach(0.0) >= confidence:
        return 0.0
    top = hi
    while reach(top) < confidence:
        top *= 2
        if top > 100 * hi:
            return None
    lo = 0.0
    for _ in range(30):
        mid = (lo + top) / 2
        if reach(mid) >= confidence:
            top = mid
        else:
            lo = mid
    return top


def _channels(h: FlowHistory, model: FlowModel, as_of: int, needed: float | None) -> list[ChannelNeed]:
    codes, labels = h.groups.get("source", (np.zeros(h.n_deals, np.int64), ["all"]))
    entered, _ = entries(h.before(as_of), -(2**62), as_of)
    won_ids = np.unique(wins(h, -(2**62), as_of))
    still_open = open_deals(h.before(as_of), as_of).index
    decided = entered[~np.isin(entered, still_open)]
    won_mask = np.isin(decided, won_ids)
    amounts = h.deal_amount
    pool_rate = won_mask.mean() if len(decided) else 0.0
    pool_amount = float(np.nanmean(amounts[decided[won_mask]])) if won_mask.any() else 0.0
    out = []
    for i, label in enumerate(labels):
        mine = codes[decided] == i
        n, k = int(mine.sum()), int((mine & won_mask).sum())
        if n == 0:
            continue
        low, high = wilson(k, n)
        avg = float(np.nanmean(amounts[decided[mine & won_mask]])) if k else None
        ratio = (k / n) * (avg or 0.0) / (pool_rate * pool_amount) if pool_rate * pool_amount > 0 else 0.0
        per_week = None if needed is None or ratio <= 0 else 7 * needed / ratio
        out.append(ChannelNeed(label, n, k, k / n, low, high, avg, per_week))
    return sorted(out, key=lambda c: (c.leads_per_week is None, c.leads_per_week or 0.0))


def _improvements(model: FlowModel, h: FlowHistory, as_of: int, days: int) -> list[StageImprovement]:
    """Expected extra revenue over the horizon from +5 pp conversion at each stage, largest first."""
    base = mean_params(model)
    now = open_deals(h.before(as_of), as_of)
    fill = float(model.won_amounts_.mean()) if len(model.won_amounts_) else 0.0
    amounts = np.nan_to_num(h.deal_amount[now.index], nan=fill)
    age = np.minimum(np.floor(now.age_days).astype(np.int64), model.ages - 1)

    def expected(p: Params) -> float:
        view = outlook(p, (days,))
        n = model.n
        from_open = float((amounts * view.at[0][0, now.stage, age, n]).sum())
        won = np.einsum("s,ts->t", p.entry[0], view.fresh[0, :, :, n])
        return from_open + float(p.rate[0] * won[1:].sum() * fill)

    start = expected(base)
    out = []
    for s in range(model.n):
        d = base.d.copy()
        nxt = s + 1  # the next open stage, or won (index n) from the last one
        moved = np.minimum(BOOST, d[0, s, :, model.n + 1])
        d[0, s, :, model.n + 1] -= moved
        d[0, s, :, nxt] += moved
        out.append(StageImprovement(model.stages[s], expected(dataclasses.replace(base, d=d)) - start))
    return sorted(out, key=lambda x: -x.extra_revenue)
