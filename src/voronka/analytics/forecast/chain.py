"""The flow model as a daily Markov chain on (stage, days in stage), solved exactly for every starting state.

A deal in open stage s at age a (whole days in the stage) leaves it during the next day with probability
``q[s, a]`` and goes to category j with probability ``d[s, a, j]`` (an open stage, entered at age 0, or won /
closed, which are absorbing); otherwise it stays and its age grows by one day (ages past the last one tracked
stand for themselves: the hazard is constant there).

``outlook`` runs the backward equation ``V_t(s, a) = q Σ_j d_j V_{t-1}(j, 0) + (1 - q) V_{t-1}(s, a + 1)``, where
``V_t(s, a)[j]`` is the probability that a deal now at (s, a) is in category j after t days. It is vectorised over
parameter draws, stages and ages, so one pass gives the answer for every open deal and every new one at once.
``absorption`` gives the t → ∞ limit in closed form (a small linear system), the data-driven P(win).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from voronka.analytics.forecast.model import Params

F64 = NDArray[np.float64]


@dataclass(frozen=True)
class Outlook:
    """``at[i][k, s, a, j]``: P(category j after ``horizons[i]`` days | at (s, a) now), per draw k.
    ``fresh[k, t, s, j]``: the same for a deal entering stage s (age 0), for every t from 0 to the last horizon."""

    horizons: tuple[int, ...]
    at: list[F64]
    fresh: F64


def outlook(p: Params, horizons: tuple[int, ...]) -> Outlook:
    """Solve the chain for ``horizons`` (days, increasing); see the module docstring."""
    k, n, ages = p.q.shape
    f = n + 2
    v = np.zeros((k, n, ages, f))
    v[:, np.arange(n), :, np.arange(n)] = 1.0
    last = max(horizons) if horizons else 0
    fresh = np.empty((k, last + 1, n, f))
    fresh[:, 0] = v[:, :, 0, :]
    d_open = p.d[..., :n].reshape(k, n * ages, n)
    q = p.q[..., None]
    at: dict[int, F64] = {}
    if 0 in horizons:
        at[0] = v.copy()
    d_won, d_lost = p.d[..., n], p.d[..., n + 1]
    for t in range(1, last + 1):
        moved = np.matmul(d_open, v[:, :, 0, :]).reshape(k, n, ages, f)
        moved[..., n] += d_won
        moved[..., n + 1] += d_lost
        stay = np.empty_like(v)  # a day older: age a takes the answer of age a + 1 (the last age keeps its own)
        stay[:, :, :-1] = v[:, :, 1:]
        stay[:, :, -1] = v[:, :, -1]
        moved -= stay
        moved *= q
        stay += moved  # q · moved + (1 - q) · stay
        v = stay
        fresh[:, t] = v[:, :, 0, :]
        if t in horizons:
            at[t] = v
    return Outlook(horizons=tuple(horizons), at=[at[t] for t in horizons], fresh=fresh)


def absorption(p: Params) -> F64:
    """``x[k, s, a, c]``: the probability that a deal at (s, a) ends won (c = 0) or closed (c = 1), ever.

    Solved in closed form: along a stage's age axis the answer is affine in the answers at age 0 of every stage
    (``x(s, a) = α(s, a) + β(s, a) · y``), which then solve the n × n system ``y = α(·, 0) + β(·, 0) y``. A stage
    that is never left (zero hazard at its last age) keeps its deals open forever: they end neither way.
    """
    k, n, ages = p.q.shape
    q = p.q
    alpha = np.zeros((k, n, ages, 2))
    beta = np.zeros((k, n, ages, n))
    ends = p.d[..., n : n + 2]
    opens = p.d[..., :n]
    last = ages - 1
    stuck = q[:, :, last] <= 0
    alpha[:, :, last] = np.where(stuck[..., None], 0.0, ends[:, :, last])
    beta[:, :, last] = np.where(stuck[..., None], 0.0, opens[:, :, last])
    for a in range(last - 1, -1, -1):
        qa = q[:, :, a, None]
        alpha[:, :, a] = qa * ends[:, :, a] + (1 - qa) * alpha[:, :, a + 1]
        beta[:, :, a] = qa * opens[:, :, a] + (1 - qa) * beta[:, :, a + 1]
    system = np.eye(n)[None] - beta[:, :, 0, :]
    y = np.linalg.solve(system, alpha[:, :, 0, :])  # (k, n, 2)
    return alpha + np.einsum("ksaj,kjc->ksac", beta, y)


def p_win(p: Params, stage: NDArray[np.int64], age_days: F64) -> F64:
    """P(the deal is won, ever) for deals in open ``stage`` after ``age_days`` there, under the first draw of p."""
    x = absorption(Params(p.q[:1], p.d[:1], p.entry[:1], p.rate[:1]))[0]
    a = np.minimum(np.floor(np.asarray(age_days)).astype(np.int64), p.q.shape[2] - 1)
    return x[np.asarray(stage), a, 0]
