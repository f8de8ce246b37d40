"""The flow model of a pipeline, fitted on its move log.

States are the open stages, with two absorbing states: *won* and *closed* (lost, or left the pipeline). A deal in
an open stage leaves it with a **hazard** (exits per day) that depends on how long it has already been there: the
age axis is cut into buckets at quantiles of the observed stay lengths, and the hazard is constant within a
bucket (piecewise-constant, the "piecewise exponential" model). Where it goes when it leaves — a later stage, an
earlier one (moves back are part of the model), won or closed — has probabilities that depend on the stage and the
age bucket too. New deals arrive as a Poisson process whose rate is the recent weekly inflow.

Estimation (conjugate, so parameter uncertainty is drawn exactly):

- hazard of stage s, bucket b: ``Gamma(m + exits, m / h_s + exposure)``; the prior centres on the stage's own
  pooled hazard ``h_s`` with the weight of ``m`` exits, so a sparse bucket shrinks towards its stage;
- destinations of stage s: ``Dirichlet(0.5 + exits to each place)``; of a bucket: ``Dirichlet(c p_s + exits)``,
  shrunk towards the stage's draw ``p_s`` with the weight of ``c`` exits;
- inflow per day: ``Gamma(0.5 + entries, days in the window)``; entry stage: ``Dirichlet(0.5 + entries there)``.

When history is thin (fewer than ``min_exits_full`` finished stays), every stage gets one bucket: the simple,
memoryless model (constant hazards), and the model says so in ``notes``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from voronka.analytics.forecast.history import DAY_US, FlowHistory, Stays, entries, first_time, stays, wins
from voronka.errors import InputError

I64 = NDArray[np.int64]
F64 = NDArray[np.float64]


@dataclass(frozen=True)
class FitOptions:
    """Settings of :func:`fit`; the defaults are the ones the backtest in docs/forecast.md measured."""

    inflow_weeks: int = 13  # the inflow rate is the mean over this many recent weeks
    prior_exits: float = 2.0  # weight of a bucket's hazard prior, in exits
    prior_dest: float = 4.0  # weight of a bucket's destination prior, in exits
    exits_per_bucket: int = 50  # an age bucket per this many exits of a stage ...
    max_buckets: int = 6  # ... up to this many (then doubling tail buckets up to max_age_days)
    max_age_days: int = 120  # hazards are constant past this age
    min_exits_full: int = 200  # fewer finished stays: the simple model (no age effect)
    min_exits: int = 10  # fewer: too thin to forecast at all


@dataclass(frozen=True)
class FlowModel:
    """A fitted flow model. Attributes ending in ``_`` are estimates; see the module docstring for the terms.

    ``edges_[s]`` are the lower age edges (days) of stage s's buckets; ``bucket_of_[s, a]`` the bucket of age ``a``
    days (``a`` up to ``ages - 1``, the last age standing for every later one).
    """

    pipeline: str
    stages: tuple[str, ...]
    as_of: int
    kind: Literal["age", "simple"]
    notes: list[str]
    edges_: list[list[int]]
    bucket_of_: I64
    exits_: F64  # (n, B)
    exposure_: F64  # (n, B) days
    dest_counts_: F64  # (n, B, F)
    stage_hazard_: F64  # (n,)
    entry_counts_: F64  # (n,)
    entry_deals_: I64  # deals that entered in the inflow window
    inflow_days_: float
    won_amounts_: F64  # amounts of deals won before as_of (the amounts new wins are drawn from)
    won_deals_: I64
    options: FitOptions = field(default_factory=FitOptions)

    @property
    def n(self) -> int:
        return len(self.stages)

    @property
    def n_final(self) -> int:
        """Categories a deal can be in: the open stages, won (index n), closed (index n + 1)."""
        return self.n + 2

    @property
    def ages(self) -> int:
        return int(self.bucket_of_.shape[1])

    @property
    def n_exits(self) -> int:
        return int(self.exits_.sum())

    def weekly_inflow(self) -> float:
        """Mean new deals per week in the inflow window."""
        return 7 * len(self.entry_deals_) / self.inflow_days_ if self.inflow_days_ > 0 else 0.0


def fit(h: FlowHistory, as_of: int, options: FitOptions | None = None) -> FlowModel:
    """Fit the flow model on the log ``h`` as it stood at ``as_of`` (microseconds since the epoch)."""
    opt = options or FitOptions()
    h = h.before(as_of)
    n = h.n
    st = stays(h, as_of)
    total_exits = int(st.exited.sum())
    if total_exits < opt.min_exits:
        raise InputError(
            f"Pipeline {h.pipeline!r} has too little history to forecast: {total_exits} finished stays in stages "
            f"before {_date(as_of)}; at least {opt.min_exits} are needed. Import the deals' stage history "
            f"(voronka import moves) or wait for more moves."
        )
    notes: list[str] = []
    simple = total_exits < opt.min_exits_full
    if simple:
        notes.append(
            f"Thin history: {total_exits} finished stays (< {opt.min_exits_full}), so this is the SIMPLE model — "
            f"constant exit rates per stage, no effect of time already spent in a stage. Treat it as rough."
        )
    edges = [_edges(st.days[(st.stage == s) & st.exited], opt, simple) for s in range(n)]
    ages = max(max(e[-1] for e in edges), 0) + 1
    bmax = max(len(e) for e in edges)
    bucket_of, exits, exposure, dest = _tabulate(st, edges, ages, bmax, n)
    for s in range(n):
        if not (st.stage == s).any():
            notes.append(f"Stage {h.stages[s]!r} has no history: its rates are the pipeline's average.")
    all_rate = (exits.sum() + 1) / (exposure.sum() + 1)
    stage_hazard = (exits.sum(axis=1) + 1) / (exposure.sum(axis=1) + 1 / all_rate)
    start = max(as_of - opt.inflow_weeks * 7 * DAY_US, first_time(h) or as_of)
    new_deals, new_stage = entries(h, start, as_of)
    new_stage = new_stage[new_stage < n]
    inflow_days = (as_of - start) / DAY_US
    if inflow_days < 28:
        notes.append(f"Only {inflow_days:.0f} days of history for the inflow of new deals: its rate is uncertain.")
    won = wins(h, -(2**62), as_of)
    amounts = h.deal_amount[won]
    if not len(won):
        notes.append("No deal has been won yet: the forecast of wins and revenue rests on the priors alone.")
    return FlowModel(
        pipeline=h.pipeline,
        stages=h.stages,
        as_of=as_of,
        kind="simple" if simple else "age",
        notes=notes,
        edges_=edges,
        bucket_of_=bucket_of,
        exits_=exits,
        exposure_=exposure,
        dest_counts_=dest,
        stage_hazard_=stage_hazard,
        entry_counts_=np.bincount(new_stage, minlength=n).astype(np.float64),
        entry_deals_=new_deals,
        inflow_days_=inflow_days,
        won_amounts_=amounts[~np.isnan(amounts)],
        won_deals_=won,
        options=opt,
    )


def _tabulate(st: Stays, edges: list[list[int]], ages: int, bmax: int, n: int) -> tuple[I64, F64, F64, F64]:
    """Per (stage, age bucket): the bucket of each age, exits, days of exposure, exits to each destination."""
    bucket_of = np.zeros((n, ages), dtype=np.int64)
    exits = np.zeros((n, bmax))
    exposure = np.zeros((n, bmax))
    dest = np.zeros((n, bmax, n + 2))
    for s in range(n):
        e = np.array(edges[s], dtype=np.float64)
        bucket_of[s] = np.searchsorted(e, np.arange(ages), side="right") - 1
        mine = st.stage == s
        days = st.days[mine]
        upper = np.r_[e[1:], np.inf]
        exposure[s, : len(e)] = np.clip(days[:, None] - e[None, :], 0, upper - e).sum(axis=0)
        out = st.exited[mine]
        b = np.searchsorted(e, np.floor(days[out]), side="right") - 1
        np.add.at(exits[s], b, 1.0)
        np.add.at(dest[s], (b, st.dest[mine][out]), 1.0)
    return bucket_of, exits, exposure, dest


def _edges(exit_days: F64, opt: FitOptions, simple: bool) -> list[int]:
    """Lower edges (whole days, from 0) of a stage's age buckets: quantiles of its stay lengths."""
    k = 1 if simple else int(np.clip(len(exit_days) // opt.exits_per_bucket, 1, opt.max_buckets))
    if k == 1:
        return [0]
    q = np.quantile(exit_days, np.arange(1, k) / k)
    cuts = np.unique(np.clip(np.round(q), 1, opt.max_age_days).astype(int)).tolist()
    # Past the usual stay lengths, buckets doubling in width: a deal forgotten in a stage for months must not
    # share the exit rate of one a few days over the usual time.
    while cuts[-1] * 2 <= opt.max_age_days:
        cuts.append(cuts[-1] * 2)
    return [0, *cuts]


def _date(us: int) -> str:
    return str(np.datetime64(us, "us").astype("datetime64[D]"))


@dataclass(frozen=True)
class Params:
    """Parameters of the daily chain, one set per draw k: exit probability per day ``q[k, s, age]``, destination
    probabilities ``d[k, s, age, category]``, entry stage probabilities ``entry[k, s]`` and the daily inflow rate
    ``rate[k]`` (all groups together)."""

    q: F64
    d: F64
    entry: F64
    rate: F64


def _dest_mask(n: int) -> NDArray[np.bool_]:
    """Where a deal in stage s may go: every category but s itself."""
    mask = np.ones((n, n + 2), dtype=bool)
    mask[np.arange(n), np.arange(n)] = False
    return mask


def _dirichlet(rng: np.random.Generator, alpha: F64, mask: NDArray[np.bool_]) -> F64:
    g = rng.standard_gamma(np.where(mask, alpha, 1.0)) * mask
    total = g.sum(axis=-1, keepdims=True)
    return np.divide(g, total, out=np.zeros_like(g), where=total > 0)


def draw_params(model: FlowModel, k: int, rng: np.random.Generator) -> Params:
    """``k`` draws of the parameters from their posterior (parameter uncertainty)."""
    return _expand(model, *_draw_raw(model, k, rng))


def _draw_raw(model: FlowModel, k: int, rng: np.random.Generator) -> tuple[F64, F64, F64, F64]:
    """Posterior draws per (stage, bucket): hazards (k, n, B), destinations (k, n, B, F), entry, inflow rate."""
    n, f = model.n, model.n_final
    prior_rate = model.options.prior_exits / model.stage_hazard_[:, None]
    hazard = rng.gamma(
        model.options.prior_exits + model.exits_, 1.0 / (prior_rate + model.exposure_), size=(k, *model.exits_.shape)
    )
    mask = _dest_mask(n)
    stage_counts = model.dest_counts_.sum(axis=1)
    p_stage = _dirichlet(rng, np.broadcast_to(0.5 + stage_counts, (k, n, f)), np.broadcast_to(mask, (k, n, f)))
    alpha = model.options.prior_dest * p_stage[:, :, None, :] + model.dest_counts_[None]
    d = _dirichlet(rng, alpha, np.broadcast_to(mask[:, None, :], alpha.shape))
    entry = _dirichlet(rng, np.broadcast_to(0.5 + model.entry_counts_, (k, n)), np.ones((k, n), dtype=bool))
    rate = rng.gamma(0.5 + len(model.entry_deals_), 1.0, size=k) / max(model.inflow_days_, 1.0)
    return hazard, d, entry, rate


# Groups (owners, sources) get rates of their own, shrunk towards the pipeline's with the weight of this many
# exits per (stage, bucket): a manager with little history forecasts like the pipeline, one with much like himself.
GROUP_PRIOR_EXITS = 10.0
GROUP_PRIOR_DEST = 20.0


def draw_group_params(
    model: FlowModel, h: FlowHistory, codes: I64, groups: int, k: int, rng: np.random.Generator
) -> list[Params]:
    """``k`` draws of each group's parameters: per draw, the pipeline's draw is the prior of every group's
    (hierarchical shrinkage), updated with the group's own exits and exposure."""
    hazard, d, entry, rate = _draw_raw(model, k, rng)
    st = stays(h.before(model.as_of), model.as_of)
    bmax = model.exits_.shape[1]
    mask = np.broadcast_to(_dest_mask(model.n)[:, None, :], d.shape[1:])
    out = []
    for g in range(groups):
        mine = codes[st.deal] == g
        part = Stays(st.stage[mine], st.days[mine], st.exited[mine], st.dest[mine], st.deal[mine])
        _, exits, exposure, dest = _tabulate(part, model.edges_, model.ages, bmax, model.n)
        h_g = rng.gamma(GROUP_PRIOR_EXITS + exits, 1.0 / (GROUP_PRIOR_EXITS / hazard + exposure))
        alpha = GROUP_PRIOR_DEST * d + dest[None]
        d_g = _dirichlet(rng, alpha, np.broadcast_to(mask, alpha.shape))
        out.append(_expand(model, h_g, d_g, entry, rate))
    return out


def mean_params(model: FlowModel) -> Params:
    """The posterior means of the parameters, as one draw."""
    n, f = model.n, model.n_final
    mask = _dest_mask(n)
    prior_rate = model.options.prior_exits / model.stage_hazard_[:, None]
    hazard = (model.options.prior_exits + model.exits_) / (prior_rate + model.exposure_)
    stage_alpha = (0.5 + model.dest_counts_.sum(axis=1)) * mask
    p_stage = stage_alpha / stage_alpha.sum(axis=1, keepdims=True)
    alpha = (model.options.prior_dest * p_stage[:, None, :] + model.dest_counts_) * mask[:, None, :]
    d = alpha / alpha.sum(axis=2, keepdims=True)
    entry = (0.5 + model.entry_counts_) / (0.5 * n + model.entry_counts_.sum())
    rate = np.array([(0.5 + len(model.entry_deals_)) / max(model.inflow_days_, 1.0)])
    del f
    return _expand(model, hazard[None], d[None], entry[None], rate)


def _expand(model: FlowModel, hazard: F64, d: F64, entry: F64, rate: F64) -> Params:
    """Per-bucket parameters onto the age axis (days)."""
    s = np.arange(model.n)[:, None]
    b = model.bucket_of_
    q = -np.expm1(-hazard[:, s, b])
    return Params(q=q, d=d[:, s, b, :], entry=entry, rate=rate)
