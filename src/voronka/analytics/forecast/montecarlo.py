"""Monte Carlo over the flow model: what the open deals and the new inflow bring in each of the next months.

A path is one possible future. Each path first takes a draw of the parameters from their posterior (so the
spread includes what we do not know about the rates, not only luck; ``draws`` distinct draws are shared out over
the paths), then:

- **open deals**: deals are grouped into cells of equal (group, stage, whole days in stage); given the draw, the
  number of a cell's deals won in month 1, 2, … is multinomial with the chain's exact probabilities (sequential
  binomials). The revenue of k wins out of a cell of n deals is the sum of k of their amounts taken at random:
  exact for a cell of one deal, otherwise its mean and variance (sampling without replacement) with a normal
  shape;
- **new deals** arrive as a Poisson process with the drawn rate; a Poisson process thinned by "won in month m" is
  again Poisson, so the wins of new deals per month are Poisson with the exact chain probability integrated over
  arrival days, and each win's amount is drawn from the amounts of past wins (of the same group when broken down);
- **stage occupancy** at each month end: its exact mean and variance given the draw, with a normal shape.

Months are ``[as_of + (m-1) months, as_of + m months)``; at a month start they are calendar months.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np
from numpy.typing import NDArray

from voronka.analytics.forecast.chain import Outlook, outlook
from voronka.analytics.forecast.history import DAY_US, FlowHistory, open_deals
from voronka.analytics.forecast.model import FlowModel, Params, draw_group_params, draw_params
from voronka.store.types import from_micros, to_micros

F64 = NDArray[np.float64]
I64 = NDArray[np.int64]
_CHUNK_CELLS = 2_000_000  # paths × cells per block: bounds memory at any number of paths
_EXACT_AMOUNTS = 20_000_000  # more new wins than this in a block: their revenue by its moments


def add_months(dt: datetime, months: int) -> datetime:
    """``dt`` moved by whole calendar months, the day clamped to the month's length (31 Jan + 1 = 28/29 Feb)."""
    y, m = divmod(dt.month - 1 + months, 12)
    year, month = dt.year + y, m + 1
    nxt = datetime(year + (month == 12), month % 12 + 1, 1, tzinfo=dt.tzinfo)
    last_day = (nxt - datetime(year, month, 1, tzinfo=dt.tzinfo)).days
    return dt.replace(year=year, month=month, day=min(dt.day, last_day))


def month_bounds(as_of: int, months: int) -> list[int]:
    """The ``months + 1`` boundaries (microseconds) of the forecast months from ``as_of``."""
    start = from_micros(as_of)
    return [to_micros(add_months(start, m)) for m in range(months + 1)]


@dataclass(frozen=True)
class Samples:
    """Simulated paths: arrays (paths, groups, months); ``stages`` is (paths, groups, months, open stages)."""

    labels: list[str]
    bounds: list[int]
    revenue: F64
    won: F64
    new: F64
    stages: F64
    open_count: I64  # open deals per group now
    open_amount: F64  # their amounts per group now
    missing_amounts: int


def simulate(
    model: FlowModel,
    h: FlowHistory,
    *,
    months: int = 3,
    paths: int = 10_000,
    draws: int = 128,
    by: str | None = None,
    seed: int = 0,
) -> Samples:
    """Simulate ``paths`` futures of the pipeline from ``model.as_of``; see the module docstring."""
    rng = np.random.default_rng(seed)
    as_of = model.as_of
    bounds = month_bounds(as_of, months)
    horizons = tuple(int(round((b - as_of) / DAY_US)) for b in bounds[1:])
    k = max(1, min(draws, paths))
    codes, labels = _groups(h, by)
    g = len(labels)
    if by is None:
        group_params = [draw_params(model, k, rng)]
    else:
        group_params = draw_group_params(model, h, codes, g, k, rng)
    views = [outlook(p, horizons) for p in group_params]
    now = open_deals(h.before(as_of), as_of)
    amounts = h.deal_amount[now.index]
    missing = int(np.isnan(amounts).sum())
    fill = float(model.won_amounts_.mean()) if len(model.won_amounts_) else 0.0
    amounts = np.where(np.isnan(amounts), fill, amounts)
    cells = _cells(codes[now.index], now.stage, now.age_days, amounts, model.ages)
    n = model.n
    rev = np.zeros((paths, g, months))
    won = np.zeros((paths, g, months))
    new = np.zeros((paths, g, months))
    occ = np.zeros((paths, g, months, n))
    draw_of = np.arange(paths) % k
    # Per draw: the probability that a cell's deal is won by each horizon (under its group's parameters).
    won_by = np.zeros((k, len(cells.n), months))
    for i, view in enumerate(views):
        sel = np.flatnonzero(cells.group == i)
        won_by[:, sel] = np.stack([a[:, cells.stage[sel], cells.age[sel], n] for a in view.at], axis=-1)
    onehot = np.zeros((len(cells.n), g))
    onehot[np.arange(len(cells.n)), cells.group] = 1.0
    occ_mean, occ_var = _occupancy([v.at for v in views], cells, onehot, n)  # (k, G, M, n)
    entry_rates = _group_rates(model, codes, g, k, rng)  # (k, G)
    cum_at = np.stack([_fresh_by_horizon(p, v, horizons) for p, v in zip(group_params, views, strict=True)], axis=1)
    won_at = np.concatenate([np.zeros((k, g, 1)), cum_at[..., n]], axis=2)
    new_won = np.diff(won_at, axis=2)  # (k, G, M): expected wins in each month per new deal a day
    days = np.diff(np.r_[0, horizons]).astype(np.float64)
    pools = _amount_pools(model, h, codes, g)
    block = max(1, _CHUNK_CELLS // max(len(cells.n), 1))
    for lo in range(0, paths, block):
        sl = slice(lo, min(paths, lo + block))
        kd = draw_of[sl]
        kw, kr = _open_wins(rng, cells, won_by[kd])
        won[sl] += np.einsum("pcm,cg->pgm", kw, onehot)
        rev[sl] += np.einsum("pcm,cg->pgm", kr, onehot)
        lam = entry_rates[kd]  # (B, G)
        nw = rng.poisson(lam[:, :, None] * new_won[kd])
        won[sl] += nw
        rev[sl] += _new_revenue(rng, nw, pools)
        new[sl] = rng.poisson(lam[:, :, None] * days[None, None, :])
        occ_new = rng.poisson(lam[:, :, None, None] * cum_at[kd][..., :n])
        z = rng.standard_normal(occ_new.shape)
        occ[sl] = np.maximum(np.round(occ_mean[kd] + z * np.sqrt(occ_var[kd])), 0) + occ_new
    return Samples(
        labels=labels,
        bounds=bounds,
        revenue=rev,
        won=won,
        new=new,
        stages=occ,
        open_count=np.bincount(cells.group, weights=cells.n, minlength=g).astype(np.int64),
        open_amount=np.bincount(cells.group, weights=cells.total, minlength=g),
        missing_amounts=missing,
    )


@dataclass(frozen=True)
class _Cells:
    group: I64
    stage: I64
    age: I64
    n: F64
    total: F64
    mean: F64
    var: F64  # the variance of the amounts within the cell (population)


def _cells(group: I64, stage: I64, age_days: F64, amount: F64, ages: int) -> _Cells:
    """Open deals grouped by (group, stage, whole days in stage, capped at the last tracked age)."""
    age = np.minimum(np.floor(age_days).astype(np.int64), ages - 1)
    key = np.stack([group, stage, age], axis=1)
    uniq, inv = np.unique(key, axis=0, return_inverse=True) if len(key) else (np.zeros((0, 3), np.int64), key)
    inv = np.asarray(inv).reshape(-1)
    c = len(uniq)
    n = np.bincount(inv, minlength=c).astype(np.float64)
    total = np.bincount(inv, weights=amount, minlength=c)
    sq = np.bincount(inv, weights=amount * amount, minlength=c)
    mean = np.divide(total, n, out=np.zeros(c), where=n > 0)
    var = np.maximum(np.divide(sq, n, out=np.zeros(c), where=n > 0) - mean * mean, 0)
    return _Cells(uniq[:, 0], uniq[:, 1], uniq[:, 2], n, total, mean, var)


def _groups(h: FlowHistory, by: str | None) -> tuple[I64, list[str]]:
    if by is None:
        return np.zeros(h.n_deals, dtype=np.int64), ["all"]
    return h.groups[by]


def _open_wins(rng: np.random.Generator, cells: _Cells, won_by: F64) -> tuple[F64, F64]:
    """Wins and their revenue per (path, cell, month), from P(won by each horizon) per (path, cell)."""
    p, c, m = won_by.shape
    wins = np.zeros((p, c, m))
    remaining = np.broadcast_to(cells.n, (p, c)).astype(np.int64)
    before = np.zeros((p, c))
    for i in range(m):
        share = np.clip(won_by[:, :, i] - before, 0, 1)
        cond = np.clip(np.divide(share, 1 - before, out=np.zeros_like(share), where=before < 1), 0, 1)
        got = rng.binomial(remaining, cond)
        wins[:, :, i] = got
        remaining = remaining - got
        before = np.maximum(won_by[:, :, i], before)
    var, n, mean = cells.var[:, None], cells.n[:, None], cells.mean[:, None]
    spread = wins * var * (n - wins) / np.maximum(n - 1, 1)
    revenue = wins * mean + rng.standard_normal(wins.shape) * np.sqrt(np.maximum(spread, 0))
    return wins, np.maximum(revenue, 0)


def _occupancy(views: list[list[F64]], cells: _Cells, onehot: F64, n: int) -> tuple[F64, F64]:
    """Mean and variance of the open deals' count in each stage at each horizon, per draw and group; ``views[g]``
    is group g's chain solution at the horizons."""
    k = views[0][0].shape[0]
    p = np.zeros((len(views[0]), k, len(cells.n), n))  # (M, k, C, n)
    for g, at in enumerate(views):
        sel = np.flatnonzero(cells.group == g)
        for m, a in enumerate(at):
            p[m][:, sel] = a[:, cells.stage[sel], cells.age[sel], :n]
    means = [np.einsum("kcj,c,cg->kgj", pm, cells.n, onehot) for pm in p]
    variances = [np.einsum("kcj,c,cg->kgj", pm * (1 - pm), cells.n, onehot) for pm in p]
    return np.stack(means, axis=2), np.stack(variances, axis=2)


def _fresh_by_horizon(p: Params, view: Outlook, horizons: tuple[int, ...]) -> F64:
    """(k, M, F): Σ over arrival days of P(in each category at the horizon) for one new deal a day."""
    fresh = np.einsum("ks,ktsj->ktj", p.entry, view.fresh)  # (k, T+1, F)
    cum = np.cumsum(fresh[:, 1:, :], axis=1)  # Σ_{τ=1..t}
    return np.stack([cum[:, t - 1] if t > 0 else np.zeros_like(cum[:, 0]) for t in horizons], axis=1)


def _group_rates(model: FlowModel, codes: I64, g: int, k: int, rng: np.random.Generator) -> F64:
    """Daily inflow rate per draw and group: Gamma(0.5 + entries, days) each."""
    counts = np.bincount(codes[model.entry_deals_], minlength=g).astype(np.float64)
    return rng.gamma(0.5 + counts, 1.0, size=(k, g)) / max(model.inflow_days_, 1.0)


def _amount_pools(model: FlowModel, h: FlowHistory, codes: I64, g: int) -> list[F64]:
    """The amounts a new win of each group is drawn from: the group's past wins, else all past wins."""
    won_codes = codes[model.won_deals_]
    amounts = h.deal_amount[model.won_deals_]
    ok = ~np.isnan(amounts)
    pools = []
    for i in range(g):
        mine = amounts[ok & (won_codes == i)]
        pools.append(mine if len(mine) else model.won_amounts_)
    return pools


def _new_revenue(rng: np.random.Generator, wins: F64, pools: list[F64]) -> F64:
    """The revenue of ``wins[p, g, m]`` new wins, each amount drawn from the group's pool."""
    out = np.zeros(wins.shape)
    for i, pool in enumerate(pools):
        count = wins[:, i, :].astype(np.int64)
        total = int(count.sum())
        if not len(pool) or total == 0:
            continue
        if total > _EXACT_AMOUNTS:
            z = rng.standard_normal(count.shape)
            out[:, i, :] = np.maximum(count * pool.mean() + z * np.sqrt(count) * pool.std(), 0)
            continue
        picks = pool[rng.integers(len(pool), size=total)]
        cell = np.repeat(np.arange(count.size), count.ravel())
        out[:, i, :] = np.bincount(cell, weights=picks, minlength=count.size).reshape(count.shape)
    return out
