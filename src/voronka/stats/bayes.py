"""Bayesian comparison of two rates: probability that B beats A, and the expected loss of choosing one.

Each variant's rate has a Beta(a, b) posterior; with the uniform prior Beta(1, 1) that is
Beta(1 + successes, 1 + failures). *Probability to beat* is P(p_B > p_A). The *expected loss* of choosing B is
E[max(p_A - p_B, 0)]: how much conversion we give up, on average, if B is in truth the worse one.
"""

from __future__ import annotations

import math

import numpy as np


def _params(*xs: float) -> None:
    for x in xs:
        if not x > 0:
            raise ValueError(f"Beta parameters must be positive, got {x!r}")


def prob_to_beat(a_a: float, b_a: float, a_b: float, b_b: float) -> float:
    """P(p_B > p_A) for p_A ~ Beta(a_a, b_a) and p_B ~ Beta(a_b, b_b); exact when ``a_b`` is a whole number.

    The closed form (Evan Miller, "Formulas for Bayesian A/B testing") is a sum of ``a_b`` terms, computed in
    logs; for a fractional ``a_b`` the probability is integrated numerically.

    >>> round(prob_to_beat(1 + 10, 1 + 90, 1 + 20, 1 + 80), 4)
    0.9752
    """
    from scipy.special import betaln

    _params(a_a, b_a, a_b, b_b)
    if float(a_b).is_integer():
        i = np.arange(int(a_b), dtype=np.float64)
        logs = betaln(a_a + i, b_a + b_b) - np.log(b_b + i) - betaln(1 + i, b_b) - betaln(a_a, b_a)
        top = logs.max()
        return float(min(1.0, max(0.0, math.exp(top) * np.exp(logs - top).sum())))
    from scipy import integrate
    from scipy.stats import beta

    val, _ = integrate.quad(lambda x: beta.pdf(x, a_b, b_b) * beta.cdf(x, a_a, b_a), 0, 1, epsabs=1e-13, limit=200)
    return float(val)


def expected_loss(a_a: float, b_a: float, a_b: float, b_b: float) -> float:
    """E[max(p_A - p_B, 0)]: the conversion given up on average by choosing B when A might be better.

    E[p_A·1{p_A > p_B}] = mean_A · P(p_A' > p_B) with p_A' ~ Beta(a_a + 1, b_a), and likewise for p_B, so
    the loss is two probabilities to beat.
    """
    _params(a_a, b_a, a_b, b_b)
    mean_a, mean_b = a_a / (a_a + b_a), a_b / (a_b + b_b)
    first = mean_a * prob_to_beat(a_b, b_b, a_a + 1, b_a)  # P(p_A' > p_B)
    second = mean_b * prob_to_beat(a_b + 1, b_b, a_a, b_a)  # P(p_A > p_B')
    return max(0.0, first - second)
