"""Power, sample size and the minimum detectable effect for comparing two conversion rates.

The test is two-sided at level ``alpha`` on Cohen's effect size h = 2·asin(√p2) − 2·asin(√p1) (the arcsine
transform makes the variance of a rate nearly independent of the rate). With n deals per variant,
power = Φ(h·√(n/2) − z) + Φ(−h·√(n/2) − z), z = Φ⁻¹(1 − alpha/2).
"""

from __future__ import annotations

import math
from statistics import NormalDist

_SQRT2 = math.sqrt(2)


def _normal_sf(x: float) -> float:
    """1 − Φ(x), exact in the far tail too (scipy's ``norm.sf`` costs a hundred times more per scalar call)."""
    return 0.5 * math.erfc(x / _SQRT2)


def effect_size(p1: float, p2: float) -> float:
    """Cohen's h from rate ``p1`` to rate ``p2``."""
    for p in (p1, p2):
        if not 0 <= p <= 1:
            raise ValueError(f"rate {p!r} must be between 0 and 1")
    return 2 * math.asin(math.sqrt(p2)) - 2 * math.asin(math.sqrt(p1))


def power(h: float, n_per_group: float, alpha: float = 0.05) -> float:
    """Probability that the two-sided test detects effect size ``h`` with ``n_per_group`` deals per variant."""
    if n_per_group <= 0:
        raise ValueError(f"sample size {n_per_group!r} must be positive")
    crit = -NormalDist().inv_cdf(alpha / 2)
    shift = abs(h) * math.sqrt(n_per_group / 2)
    return _normal_sf(crit - shift) + _normal_sf(crit + shift)


def sample_size(p1: float, p2: float, alpha: float = 0.05, target_power: float = 0.8) -> int:
    """Deals per variant needed to detect a change of the rate from ``p1`` to ``p2`` (rounded up)."""
    from scipy import optimize

    h = effect_size(p1, p2)
    if h == 0:
        raise ValueError(f"rates {p1!r} and {p2!r} are equal: no sample size detects no difference")
    n = optimize.brentq(lambda n: power(h, n, alpha) - target_power, 1e-6, 1e12, xtol=1e-12, rtol=1e-15)
    return math.ceil(n - 1e-9)


def mde(n_per_group: float, p_base: float, alpha: float = 0.05, target_power: float = 0.8) -> float:
    """Minimum detectable effect: the smallest rise of the rate from ``p_base`` (absolute, e.g. 0.05 = 5 pp)
    that ``n_per_group`` deals per variant detect with ``target_power``.

    >>> round(mde(1000, 0.2), 4)
    0.0523
    """
    from scipy import optimize

    if not 0 <= p_base < 1:
        raise ValueError(f"base rate {p_base!r} must be in [0, 1)")
    top = math.pi - 2 * math.asin(math.sqrt(p_base))  # the h that takes the rate to 1
    if power(top, n_per_group, alpha) < target_power:
        return math.nan
    h = optimize.brentq(lambda h: power(h, n_per_group, alpha) - target_power, 1e-12, top, xtol=1e-15, rtol=1e-15)
    p2 = math.sin(math.asin(math.sqrt(p_base)) + h / 2) ** 2
    return p2 - p_base
