"""Empirical-Bayes (beta-binomial) shrinkage of many rates, e.g. each manager's conversion at a stage.

Each group's true rate is taken as a draw from Beta(α, β) fitted to all the groups (by maximum marginal
likelihood of the beta-binomial); a group's *shrunk rate* is its posterior mean (k + α) / (n + α + β). Small
groups move most towards the team's mean, large ones hardly at all. When the groups differ no more than chance
allows, the fitted concentration α + β runs to its upper bound and every shrunk rate is the pooled mean.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

MAX_CONCENTRATION = 1e7


@dataclass(frozen=True)
class BetaPrior:
    """The fitted Beta(alpha, beta) prior: ``mean`` = α/(α+β), ``concentration`` = α+β (like a sample size)."""

    alpha: float
    beta: float

    @property
    def mean(self) -> float:
        return self.alpha / (self.alpha + self.beta)

    @property
    def concentration(self) -> float:
        return self.alpha + self.beta


@dataclass(frozen=True)
class Shrunk:
    """Shrunk rates and their equal-tailed posterior intervals, one per group, and the prior they came from."""

    prior: BetaPrior
    rate: NDArray[np.float64]
    low: NDArray[np.float64]
    high: NDArray[np.float64]


def beta_binomial_loglik(successes: ArrayLike, trials: ArrayLike, alpha: float, beta: float) -> float:
    """The beta-binomial log likelihood of the counts, without the binomial coefficients (they do not depend
    on α, β)."""
    from scipy.special import betaln

    k = np.asarray(successes, dtype=np.float64)
    n = np.asarray(trials, dtype=np.float64)
    return float(np.sum(betaln(k + alpha, n - k + beta) - betaln(alpha, beta)))


def fit_beta_prior(successes: ArrayLike, trials: ArrayLike) -> BetaPrior:
    """Maximum-marginal-likelihood Beta prior for the groups' rates (groups with no trials are ignored)."""
    from scipy import optimize
    from scipy.special import expit, logit

    k = np.asarray(successes, dtype=np.float64)
    n = np.asarray(trials, dtype=np.float64)
    if k.shape != n.shape or np.any(k < 0) or np.any(k > n):
        raise ValueError("need 0 <= successes <= trials for every group, arrays of the same length")
    k, n = k[n > 0], n[n > 0]
    if not len(n):
        raise ValueError("no group has any trials: nothing to fit")
    pooled = float(np.clip(k.sum() / n.sum(), 1e-6, 1 - 1e-6))
    if len(n) < 2:
        return BetaPrior(pooled * MAX_CONCENTRATION, (1 - pooled) * MAX_CONCENTRATION)

    def neg(x: NDArray[np.float64]) -> float:
        m, c = expit(x[0]), np.exp(x[1])
        return -beta_binomial_loglik(k, n, m * c, (1 - m) * c)

    # Start from the best point of a coarse grid of concentrations (the likelihood can be flat in it), then polish
    # with Nelder-Mead in (logit mean, log concentration); the concentration is capped at MAX_CONCENTRATION.
    lo, hi = np.log(1e-3), np.log(MAX_CONCENTRATION)
    grid = np.linspace(lo, hi, 40)
    x0 = min((np.array([logit(pooled), g]) for g in grid), key=neg)

    def capped(x: NDArray[np.float64]) -> float:
        return neg(np.array([np.clip(x[0], -20, 20), np.clip(x[1], lo, hi)]))

    opts = {"xatol": 1e-7, "fatol": 1e-10, "maxiter": 800}
    best = optimize.minimize(capped, x0, method="Nelder-Mead", options=opts)
    best.x = np.array([np.clip(best.x[0], -20, 20), np.clip(best.x[1], lo, hi)])
    m, c = float(expit(best.x[0])), float(np.exp(best.x[1]))
    return BetaPrior(m * c, (1 - m) * c)


def shrink(successes: ArrayLike, trials: ArrayLike, confidence: float = 0.95) -> Shrunk:
    """Empirical-Bayes shrunk rates of the groups with their posterior intervals.

    >>> s = shrink([5, 50, 500], [10, 100, 1000])
    >>> [round(float(r), 3) for r in s.rate]
    [0.5, 0.5, 0.5]
    """
    from scipy.stats import beta as beta_dist

    k = np.asarray(successes, dtype=np.float64)
    n = np.asarray(trials, dtype=np.float64)
    prior = fit_beta_prior(k, n)
    a, b = k + prior.alpha, n - k + prior.beta
    tail = (1 - confidence) / 2
    return Shrunk(prior, a / (a + b), beta_dist.ppf(tail, a, b), beta_dist.isf(tail, a, b))
