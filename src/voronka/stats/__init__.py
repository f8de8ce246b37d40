"""Intervals and tests on counts: small pure functions.

The names are loaded on first use, so that importing :mod:`voronka.stats.intervals` (every report does) does
not import SciPy (only the tests, Bayesian comparisons, shrinkage and power need it).
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from voronka.stats.intervals import wilson, wilson_array

_WHERE = {
    "expected_loss": "bayes",
    "prob_to_beat": "bayes",
    "benjamini_hochberg": "multiple",
    "effect_size": "sizing",
    "mde": "sizing",
    "power": "sizing",
    "sample_size": "sizing",
    "binomial_test": "proportions",
    "exact_test": "proportions",
    "jeffreys": "proportions",
    "newcombe_diff": "proportions",
    "score_test": "proportions",
    "BetaPrior": "shrinkage",
    "Shrunk": "shrinkage",
    "fit_beta_prior": "shrinkage",
    "shrink": "shrinkage",
    "kaplan_meier": "survival",
    "km_median": "survival",
}

__all__ = [
    "BetaPrior",
    "Shrunk",
    "benjamini_hochberg",
    "binomial_test",
    "effect_size",
    "exact_test",
    "expected_loss",
    "fit_beta_prior",
    "jeffreys",
    "kaplan_meier",
    "km_median",
    "mde",
    "newcombe_diff",
    "power",
    "prob_to_beat",
    "sample_size",
    "score_test",
    "shrink",
    "wilson",
    "wilson_array",
]

if TYPE_CHECKING:
    from voronka.stats.bayes import expected_loss, prob_to_beat
    from voronka.stats.multiple import benjamini_hochberg
    from voronka.stats.proportions import binomial_test, exact_test, jeffreys, newcombe_diff, score_test
    from voronka.stats.shrinkage import BetaPrior, Shrunk, fit_beta_prior, shrink
    from voronka.stats.sizing import effect_size, mde, power, sample_size
    from voronka.stats.survival import kaplan_meier, km_median


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'voronka.stats' has no attribute {name!r}")
    value = getattr(import_module(f"voronka.stats.{module}"), name)
    globals()[name] = value
    return value
