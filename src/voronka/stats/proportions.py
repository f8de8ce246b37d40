"""More intervals and tests on proportions: Jeffreys, Newcombe's interval of a difference, score and exact tests.

Terms: a *proportion* is ``successes / trials``; a *difference* is always ``p1 - p2`` (the first group minus the
second). Every function is pure and takes plain counts.
"""

from __future__ import annotations

import math

from voronka.stats.intervals import _z, wilson


def _check(successes: int, trials: int) -> None:
    if trials < 0 or successes < 0 or successes > trials:
        raise ValueError(f"need 0 <= successes <= trials, got {successes} of {trials}")


def jeffreys(successes: int, trials: int, confidence: float = 0.95) -> tuple[float, float]:
    """Jeffreys interval: the equal-tailed interval of the Beta(k + 1/2, n - k + 1/2) posterior.

    The bounds are pinned to 0 at k = 0 and to 1 at k = n (as Brown, Cai and DasGupta 2001 recommend).

    >>> low, high = jeffreys(40, 100)
    >>> round(low, 4), round(high, 4)
    (0.308, 0.4977)
    """
    from scipy import stats as sps

    _check(successes, trials)
    if trials == 0:
        return math.nan, math.nan
    _z(confidence)
    alpha = 1 - confidence
    a, b = successes + 0.5, trials - successes + 0.5
    low = 0.0 if successes == 0 else float(sps.beta.ppf(alpha / 2, a, b))
    high = 1.0 if successes == trials else float(sps.beta.isf(alpha / 2, a, b))
    return low, high


def newcombe_diff(k1: int, n1: int, k2: int, n2: int, confidence: float = 0.95) -> tuple[float, float, float]:
    """Newcombe's hybrid score interval (his method 10) for ``p1 - p2``; returns (difference, low, high).

    It combines the two Wilson intervals and keeps their good coverage on small samples and near 0 and 1.

    >>> d, low, high = newcombe_diff(56, 70, 48, 80)
    >>> round(d, 4), round(low, 4), round(high, 4)
    (0.2, 0.0524, 0.3339)
    """
    _check(k1, n1)
    _check(k2, n2)
    if n1 == 0 or n2 == 0:
        return math.nan, math.nan, math.nan
    p1, p2 = k1 / n1, k2 / n2
    l1, u1 = wilson(k1, n1, confidence)
    l2, u2 = wilson(k2, n2, confidence)
    d = p1 - p2
    low = d - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2)
    high = d + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)
    return d, low, high


def score_test(k1: int, n1: int, k2: int, n2: int) -> tuple[float, float]:
    """The score (pooled two-proportion z) test of ``p1 = p2``; returns (z, two-sided p-value).

    z is positive when the first group converts better. With no variance at all (both 0% or both 100%) the
    groups cannot differ: z = 0, p = 1.
    """
    from scipy import stats as sps

    _check(k1, n1)
    _check(k2, n2)
    if n1 == 0 or n2 == 0:
        return math.nan, math.nan
    pooled = (k1 + k2) / (n1 + n2)
    var = pooled * (1 - pooled) * (1 / n1 + 1 / n2)
    if var == 0:
        return 0.0, 1.0
    z = (k1 / n1 - k2 / n2) / math.sqrt(var)
    return z, float(2 * sps.norm.sf(abs(z)))


def exact_test(k1: int, n1: int, k2: int, n2: int) -> float:
    """Fisher's exact test of ``p1 = p2`` on the 2×2 table; the two-sided p-value (for small samples)."""
    from scipy import stats as sps

    _check(k1, n1)
    _check(k2, n2)
    return float(sps.fisher_exact([[k1, n1 - k1], [k2, n2 - k2]]).pvalue)


def binomial_test(successes: int, trials: int, p: float) -> float:
    """The exact binomial test of "the true rate is ``p``"; the two-sided p-value (minimum-likelihood method)."""
    from scipy import stats as sps

    _check(successes, trials)
    if not 0 <= p <= 1:
        raise ValueError(f"rate {p!r} must be between 0 and 1")
    if trials == 0:
        return 1.0
    return float(sps.binomtest(successes, trials, p).pvalue)
