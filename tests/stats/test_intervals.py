"""Wilson score intervals against published values and against SciPy's independent implementation."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import norm

from tests.reference import wilson_ref
from voronka.stats import wilson, wilson_array


def wilson_by_quadratic(k: int, n: int, confidence: float) -> tuple[float, float]:
    """The Wilson bounds as the roots of (p_hat - p)^2 = z^2 p (1 - p) / n, solved for p."""
    z = norm.ppf(0.5 + confidence / 2)
    a = n + z * z
    b = -(2 * k + z * z)
    c = k * k / n
    disc = math.sqrt(b * b - 4 * a * c)
    return (-b - disc) / (2 * a), (-b + disc) / (2 * a)


def test_published_value_40_of_100() -> None:
    # The textbook example: 40 successes in 100 trials, 95%: (0.3094, 0.4980).
    low, high = wilson(40, 100)
    assert round(low, 4) == 0.3094
    assert round(high, 4) == 0.4980


CASES = [(0, 1), (1, 1), (0, 10), (10, 10), (1, 10), (5, 10), (40, 100), (3, 7), (999, 1000), (1, 100_000)]


@pytest.mark.parametrize("confidence", [0.8, 0.9, 0.95, 0.99])
@pytest.mark.parametrize(("k", "n"), CASES)
def test_wilson_matches_scipy_and_the_quadratic(k: int, n: int, confidence: float) -> None:
    low, high = wilson(k, n, confidence)
    ref_low, ref_high = wilson_ref(k, n, confidence)
    q_low, q_high = wilson_by_quadratic(k, n, confidence)
    assert low == pytest.approx(ref_low, abs=1e-9)
    assert high == pytest.approx(ref_high, abs=1e-9)
    assert low == pytest.approx(max(q_low, 0.0), abs=1e-9)
    assert high == pytest.approx(min(q_high, 1.0), abs=1e-9)
    assert 0.0 <= low <= k / n <= high <= 1.0


def test_bounds_are_exact_at_zero_and_all() -> None:
    assert wilson(0, 25)[0] == 0.0
    assert wilson(25, 25)[1] == 1.0


def test_array_matches_scalar_and_gives_nan_for_no_trials() -> None:
    k = np.array([[0, 1, 40], [3, 0, 7]])
    n = np.array([[5, 1, 100], [7, 0, 7]])
    low, high = wilson_array(k, n, 0.9)
    assert low.shape == high.shape == (2, 3)
    for i in range(2):
        for j in range(3):
            if n[i, j] == 0:
                assert math.isnan(low[i, j]) and math.isnan(high[i, j])
            else:
                ref = wilson_ref(int(k[i, j]), int(n[i, j]), 0.9)
                assert low[i, j] == pytest.approx(ref[0], abs=1e-9)
                assert high[i, j] == pytest.approx(ref[1], abs=1e-9)


def test_array_broadcasts_trials_over_stages() -> None:
    low, high = wilson_array(np.array([[10, 5, 2]]), np.array([[10]]))
    assert low.shape == (1, 3)
    assert high[0, 0] == 1.0
    assert low[0, 2] == pytest.approx(wilson_ref(2, 10)[0], abs=1e-9)


@pytest.mark.parametrize(("k", "n"), [(-1, 5), (6, 5), (0, -1)])
def test_impossible_counts_are_refused(k: int, n: int) -> None:
    with pytest.raises(ValueError, match="successes"):
        wilson(k, n)


@pytest.mark.parametrize("confidence", [0.0, 1.0, 1.5, -0.1])
def test_confidence_out_of_range_is_refused(confidence: float) -> None:
    with pytest.raises(ValueError, match="confidence"):
        wilson(1, 2, confidence)
