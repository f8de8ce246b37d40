"""Histories generated from a known process, written straight into a FlowHistory (no database needed).

The process: deals arrive as a Poisson process into stage 0; in each open stage a deal waits an exponential time
(a constant hazard) and then goes to a destination drawn from fixed probabilities — forward, back, won, lost.
That is the flow model with one age bucket, so the model is right and its intervals must cover the truth.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from voronka.analytics.forecast.history import DAY_US, FlowHistory

T0 = 1_767_225_600_000_000  # 2026-01-01T00:00Z in microseconds


@dataclass(frozen=True)
class Process:
    hazard: tuple[float, ...]  # exits per day, per open stage
    dest: tuple[tuple[float, ...], ...]  # per open stage: probabilities over (stage 0 … n-1, won, lost)
    arrivals_per_day: float
    amount_mean: float = 100_000.0
    amount_sigma: float = 0.5  # lognormal spread of amounts; 0: every deal has exactly amount_mean

    @property
    def n(self) -> int:
        return len(self.hazard)


TWO_STAGES = Process(
    hazard=(0.2, 0.1),
    dest=((0, 0.6, 0, 0.4), (0.15, 0, 0.55, 0.3)),
    arrivals_per_day=4.0,
)


def generate(p: Process, days: float, seed: int) -> FlowHistory:
    """A history of ``days`` days from T0: every move of every deal that happened before T0 + days."""
    rng = np.random.default_rng(seed)
    count = rng.poisson(p.arrivals_per_day * days)
    starts = np.sort(rng.uniform(0, days, count))
    # the destination by inverse CDF: rng.choice with p= costs ~20 µs a call, most of a history's generation
    cdf = [np.cumsum(np.array(d) / sum(d)) for d in p.dest]
    deal, cat, at = [], [], []
    for i, t in enumerate(starts):
        s = 0
        while True:
            deal.append(i)
            cat.append(s)
            at.append(t)
            if s >= p.n:
                break
            t = t + rng.exponential(1 / p.hazard[s])
            if t >= days:
                break
            s = min(int(np.searchsorted(cdf[s], rng.random(), side="right")), p.n + 1)
    if p.amount_sigma > 0:
        amounts = p.amount_mean * rng.lognormal(-(p.amount_sigma**2) / 2, p.amount_sigma, count)
    else:
        amounts = np.full(count, p.amount_mean)
    return FlowHistory(
        pipeline="Synthetic",
        stages=tuple(f"S{k}" for k in range(p.n)),
        move_deal=np.array(deal, dtype=np.int64),
        move_cat=np.array(cat, dtype=np.int64),
        move_at=T0 + (np.array(at) * DAY_US).astype(np.int64),
        deal_amount=amounts.astype(np.float64),
        currency="RUB",
        groups={"owner": (np.arange(count, dtype=np.int64) % 2, ["A", "B"])},
    )


def at_day(day: float) -> int:
    return T0 + int(day * DAY_US)
