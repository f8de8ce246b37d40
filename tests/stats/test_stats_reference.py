"""The statistics functions against SciPy / statsmodels (independent implementations) on grids of inputs."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy import integrate, optimize
from scipy.stats import beta, betabinom, binomtest, fisher_exact
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.power import NormalIndPower
from statsmodels.stats.proportion import confint_proportions_2indep, proportion_confint, proportions_ztest

from voronka import stats
from voronka.stats.shrinkage import beta_binomial_loglik

COUNTS = [(0, 5), (1, 5), (5, 5), (3, 17), (40, 100), (99, 100), (250, 1000), (1, 3000)]
PAIRS = list(itertools.combinations(COUNTS, 2))
CONF = [0.8, 0.95, 0.99]


@pytest.mark.parametrize("conf", CONF)
@pytest.mark.parametrize(("k", "n"), COUNTS)
def test_jeffreys_matches_statsmodels(k: int, n: int, conf: float) -> None:
    low, high = stats.jeffreys(k, n, conf)
    ref = proportion_confint(k, n, alpha=1 - conf, method="jeffreys")
    # statsmodels keeps the Beta quantile at k = 0 and k = n; Brown-Cai-DasGupta (and we) pin 0 and 1 there.
    assert low == (0.0 if k == 0 else pytest.approx(ref[0], abs=1e-9))
    assert high == (1.0 if k == n else pytest.approx(ref[1], abs=1e-9))


@pytest.mark.parametrize("conf", CONF)
@pytest.mark.parametrize(("a", "b"), PAIRS)
def test_newcombe_matches_statsmodels(a: tuple[int, int], b: tuple[int, int], conf: float) -> None:
    d, low, high = stats.newcombe_diff(*a, *b, confidence=conf)
    ref = confint_proportions_2indep(*a, *b, method="newcomb", alpha=1 - conf)
    assert d == pytest.approx(a[0] / a[1] - b[0] / b[1], abs=1e-12)
    assert low == pytest.approx(ref[0], abs=1e-9)
    assert high == pytest.approx(ref[1], abs=1e-9)


def test_newcombe_published_example() -> None:
    # Newcombe (1998), Statistics in Medicine 17:873, table II example (a): 56/70 vs 48/80 → 0.0524 to 0.3339.
    _, low, high = stats.newcombe_diff(56, 70, 48, 80)
    assert (round(low, 4), round(high, 4)) == (0.0524, 0.3339)


@pytest.mark.parametrize(("a", "b"), PAIRS)
def test_score_test_matches_statsmodels(a: tuple[int, int], b: tuple[int, int]) -> None:
    z, p = stats.score_test(*a, *b)
    if (a[0] + b[0]) in (0, a[1] + b[1]):
        assert (z, p) == (0.0, 1.0)
        return
    ref_z, ref_p = proportions_ztest([a[0], b[0]], [a[1], b[1]])
    assert z == pytest.approx(ref_z, abs=1e-9)
    assert p == pytest.approx(ref_p, abs=1e-9)


@pytest.mark.parametrize(("a", "b"), PAIRS)
def test_exact_tests_match_scipy(a: tuple[int, int], b: tuple[int, int]) -> None:
    ref = fisher_exact([[a[0], a[1] - a[0]], [b[0], b[1] - b[0]]]).pvalue
    assert stats.exact_test(*a, *b) == pytest.approx(ref, abs=1e-12)
    assert stats.binomial_test(a[0], a[1], 0.3) == pytest.approx(binomtest(a[0], a[1], 0.3).pvalue, abs=1e-12)


def _beat_by_quadrature(a_a: float, b_a: float, a_b: float, b_b: float) -> float:
    f = lambda x: beta.pdf(x, a_b, b_b) * beta.cdf(x, a_a, b_a)  # noqa: E731
    lo, hi = beta.ppf([1e-15, 1 - 1e-15], a_b, b_b)
    return integrate.quad(f, lo, hi, epsabs=1e-14, epsrel=1e-12, limit=500)[0]


POSTERIORS = [(1, 1, 1, 1), (11, 91, 21, 81), (3, 5, 4, 4), (120, 880, 135, 865), (1, 30, 2, 29), (51, 51, 40, 62)]


@pytest.mark.parametrize("params", POSTERIORS)
def test_prob_to_beat_matches_quadrature(params: tuple[int, int, int, int]) -> None:
    assert stats.prob_to_beat(*params) == pytest.approx(_beat_by_quadrature(*params), abs=1e-9)
    # The fractional-parameter path integrates; it must agree with the closed form next to it.
    a_a, b_a, a_b, b_b = params
    assert stats.prob_to_beat(a_a, b_a, a_b + 1e-9, b_b) == pytest.approx(stats.prob_to_beat(*params), abs=1e-7)


@pytest.mark.parametrize("params", POSTERIORS)
def test_expected_loss_matches_double_integral(params: tuple[int, int, int, int]) -> None:
    a_a, b_a, a_b, b_b = params
    # E[max(pA - pB, 0)] = ∫ f_A(x) ∫_0^x (x - y) f_B(y) dy dx = ∫ f_A(x) (x F_B(x) - mean_B F_B'(x)) dx.
    mean_b = a_b / (a_b + b_b)
    inner = lambda x: x * beta.cdf(x, a_b, b_b) - mean_b * beta.cdf(x, a_b + 1, b_b)  # noqa: E731
    ref = integrate.quad(lambda x: beta.pdf(x, a_a, b_a) * inner(x), 0, 1, epsabs=1e-14, epsrel=1e-12, limit=500)[0]
    assert stats.expected_loss(*params) == pytest.approx(ref, abs=1e-9)


def test_bh_matches_statsmodels() -> None:
    rng = np.random.default_rng(3)
    for _ in range(50):
        p = np.r_[rng.uniform(0, 1, 20), rng.uniform(0, 0.01, int(rng.integers(0, 6)))]
        reject, adj = stats.benjamini_hochberg(p, 0.05)
        ref_reject, ref_adj, _, _ = multipletests(p, alpha=0.05, method="fdr_bh")
        assert reject.tolist() == ref_reject.tolist()
        np.testing.assert_allclose(adj, ref_adj, atol=1e-12)


def test_bh_ignores_nan() -> None:
    reject, adj = stats.benjamini_hochberg([0.001, math.nan, 0.5])
    assert reject.tolist() == [True, False, False]
    assert math.isnan(adj[1])


@pytest.mark.parametrize("n", [10, 100, 1234])
@pytest.mark.parametrize("h", [0.05, 0.2, 0.5])
def test_power_matches_statsmodels(n: int, h: float) -> None:
    ref = NormalIndPower().power(effect_size=h, nobs1=n, alpha=0.05, ratio=1.0)
    assert stats.power(h, n) == pytest.approx(ref, abs=1e-9)


@pytest.mark.parametrize("n", [50, 400, 5000])
@pytest.mark.parametrize("p", [0.05, 0.3, 0.8])
def test_mde_and_sample_size_agree_with_statsmodels(n: int, p: float) -> None:
    lift = stats.mde(n, p)
    h = stats.effect_size(p, p + lift)
    ref_h = NormalIndPower().solve_power(nobs1=n, alpha=0.05, power=0.8, ratio=1.0)
    assert h == pytest.approx(ref_h, rel=1e-4)  # statsmodels stops its root search early (rel. error ~4e-6)
    assert stats.power(h, n) == pytest.approx(0.8, abs=1e-9)
    needed = stats.sample_size(p, p + lift)
    assert needed in (n, n + 1)


def test_sample_size_textbook() -> None:
    # 10% → 15%, alpha 0.05 two-sided, power 0.8: 680.1 per group by the arcsine formula → 681.
    assert stats.sample_size(0.10, 0.15) == 681


def _loglik_scipy(k: np.ndarray, n: np.ndarray, a: float, b: float) -> float:
    return float(betabinom.logpmf(k, n, a, b).sum())


def test_beta_binomial_loglik_matches_scipy_up_to_the_binomial_coefficients() -> None:
    k, n = np.array([3, 10, 0, 7]), np.array([10, 20, 5, 7])
    coef = float(
        sum(math.lgamma(x + 1) - math.lgamma(y + 1) - math.lgamma(x - y + 1) for x, y in zip(n, k, strict=True))
    )
    for a, b in [(0.5, 0.5), (2, 3), (40, 10)]:
        ours = beta_binomial_loglik(k, n, a, b)
        assert ours + coef == pytest.approx(_loglik_scipy(k, n, a, b), abs=1e-9)


def test_shrinkage_fit_is_the_maximum_likelihood() -> None:
    rng = np.random.default_rng(11)
    n = rng.integers(20, 400, 12)
    k = rng.binomial(n, rng.beta(6, 14, 12))
    prior = stats.fit_beta_prior(k, n)
    ref = optimize.minimize(
        lambda x: -_loglik_scipy(k, n, math.exp(x[0]), math.exp(x[1])),
        [0.0, 0.0],
        method="Nelder-Mead",
        options={"xatol": 1e-10, "fatol": 1e-12, "maxiter": 20_000},
    )
    assert -_loglik_scipy(k, n, prior.alpha, prior.beta) <= ref.fun + 1e-7
    assert prior.alpha == pytest.approx(math.exp(ref.x[0]), rel=1e-3)
    s = stats.shrink(k, n)
    raw = k / n
    # Shrunk rates lie between the raw rate and the prior mean, and keep their order.
    assert np.all((s.rate - raw) * (prior.mean - raw) >= -1e-12)
    assert np.all(np.abs(s.rate - prior.mean) <= np.abs(raw - prior.mean) + 1e-12)
    assert np.all((s.low < s.rate) & (s.rate < s.high))


def test_shrinkage_without_overdispersion_pools() -> None:
    s = stats.shrink([30, 31, 29, 30], [100, 100, 100, 100])
    assert s.prior.concentration > 1e5
    np.testing.assert_allclose(s.rate, 0.3, atol=1e-4)


@pytest.mark.parametrize(
    "call",
    [
        lambda: stats.jeffreys(5, 3),
        lambda: stats.newcombe_diff(-1, 3, 1, 3),
        lambda: stats.benjamini_hochberg([0.1], 2),
    ],
)
def test_bad_input_is_refused(call) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError):
        call()


@pytest.mark.parametrize("module", ["bayes", "multiple", "sizing", "proportions", "shrinkage", "survival"])
def test_docstring_examples_run(module: str) -> None:
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(f"voronka.stats.{module}"))
    assert result.failed == 0 and result.attempted > 0


def test_kaplan_meier_matches_statsmodels() -> None:
    from statsmodels.duration.survfunc import SurvfuncRight

    from voronka.stats.survival import kaplan_meier, km_median

    rng = np.random.default_rng(5)
    for _ in range(20):
        n = int(rng.integers(5, 300))
        d = np.round(rng.exponential(10, n), 1)
        e = rng.random(n) < 0.6
        if not e.any():
            continue
        t, s = kaplan_meier(d, e)
        ref = SurvfuncRight(d, e.astype(int))
        np.testing.assert_allclose(t, ref.surv_times, atol=1e-12)
        np.testing.assert_allclose(s, ref.surv_prob, atol=1e-12)
        med = km_median(d, e)
        ref_med = ref.quantile(0.5)
        assert (math.isnan(med) and math.isnan(ref_med)) or med == pytest.approx(ref_med, abs=1e-12)
